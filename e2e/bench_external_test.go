package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	endian "encoding/binary" // the package has a variable named binary
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/testkit"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// BenchmarkLoadExternal is BenchmarkLoad's hot paths driven by load
// generators made for the job, each a process of its own on the same two
// cores: wrk (HTTP/1.1, keep-alive) for HTTP introspection and
// client_credentials on 64 connections, h2load (HTTP/2 with gRPC's
// framing) for gRPC introspection with 64 streams on one connection, as a
// gRPC channel carries them (and as BenchmarkLoad's gRPC client does).
// They spend a few µs of CPU per request where the Go clients of
// BenchmarkLoad spend tens, so more of the machine is left to the server:
// these are the numbers to size from; BenchmarkLoad's are the floor.
//
// Nothing is taken on trust from the generators: each load's outcome is
// read from the server's own counters (gatehouse_introspections_total with
// outcome active, gatehouse_token_grants_total with outcome ok), which must
// have grown by every request the generator completed. Each load runs for
// GATEHOUSE_BENCH_SECONDS (10 by default) once per benchmark run: run it
// with -benchtime 1x. GATEHOUSE_BENCH_PROFILE=<dir> saves the server's
// profiles, as for BenchmarkLoad (the loads must then run for more than
// profileSeconds). wrk and h2load come from Debian's wrk and
// nghttp2-client packages (make bench installs them).
func BenchmarkLoadExternal(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("wrk is not installed (Debian package wrk; make bench installs it)")
	}
	h2load, err := exec.LookPath("h2load")
	if err != nil {
		b.Fatal("h2load is not installed (Debian package nghttp2-client; make bench installs it)")
	}
	seconds := testkit.Count(b, "GATEHOUSE_BENCH_SECONDS", 10)
	bs := startBench(b)
	introspected := series{"gatehouse_introspections_total", map[string]string{"caller": "homeserver", "outcome": "active"}}
	b.Run("introspect-http-wrk", func(b *testing.B) {
		script := wrkScript(b, "POST", url.Values{"token": {bs.token}}.Encode(), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer " + homeserverSecret})
		runExternal(b, bs.s, introspected.with("transport", "http"), func() loadResult {
			return runWrk(b, wrk, script, seconds, bs.base+"oauth2/introspect")
		})
	})
	grpcBody := grpcFrame(b, &tokenv1.IntrospectRequest{Token: bs.token})
	grpcTarget := "http://" + bs.s.grpc + "/" + tokenv1.TokenService_Introspect_FullMethodName[1:]
	grpcHeaders := []string{"content-type: application/grpc", "te: trailers", "authorization: Bearer " + homeserverSecret}
	b.Run("introspect-grpc-h2load", func(b *testing.B) {
		runExternal(b, bs.s, introspected.with("transport", "grpc"), func() loadResult {
			return runH2load(b, h2load, h2Load{clients: 1, streams: loadClients}, grpcBody, seconds, grpcTarget, grpcHeaders...)
		})
	})
	// The targets' rates, held: issue 16 asks for 25,000 HTTP and 36,000
	// gRPC introspections a second with p99 ≤ 5 ms. Above, the generators
	// send as fast as answers come back, so each request also waits behind
	// the 63 others in flight on a saturated machine; here h2load paces the
	// same 64 connections (streams) to the target's rate. achieved-% is the
	// rate reached as a share of the target: under 99, the server did not
	// keep up, and the p99 leaves out the requests that were not sent.
	b.Run("introspect-http-h2load-25000-per-s", func(b *testing.B) {
		body := []byte(url.Values{"token": {bs.token}}.Encode())
		runExternal(b, bs.s, introspected.with("transport", "http"), func() loadResult {
			return runPaced(b, 25000, func() loadResult {
				return runH2load(b, h2load, h2Load{clients: loadClients, streams: 1, h1: true, rps: 25000 / loadClients}, body, seconds,
					bs.base+"oauth2/introspect", "content-type: application/x-www-form-urlencoded", "authorization: Bearer "+homeserverSecret)
			})
		})
	})
	// The same rate and connections, the connections out of step: four
	// h2load processes of 16, started a quarter of a pacing period apart,
	// as the workers of a homeserver send their questions each on its own
	// clock. In step (above), each tick sends 64 requests at once.
	b.Run("introspect-http-h2load-25000-per-s-spread", func(b *testing.B) {
		body := []byte(url.Values{"token": {bs.token}}.Encode())
		runExternal(b, bs.s, introspected.with("transport", "http"), func() loadResult {
			return runPaced(b, 25000, func() loadResult {
				return runH2load(b, h2load, h2Load{clients: loadClients, streams: 1, h1: true, rps: 25000 / loadClients, procs: 4}, body, seconds,
					bs.base+"oauth2/introspect", "content-type: application/x-www-form-urlencoded", "authorization: Bearer "+homeserverSecret)
			})
		})
	})
	// The floor: a bare net/http server (e2e/floorserver) answering the same
	// introspection under the same paced loads, in step and spread. Its
	// latency is what this machine allows any Go HTTP/1.1 server at this
	// rate; Gatehouse's above is that plus what it does besides.
	for _, procs := range []int{1, 4} {
		name := "introspect-http-floor-h2load-25000-per-s"
		if procs > 1 {
			name += "-spread"
		}
		b.Run(name, func(b *testing.B) {
			body := []byte(url.Values{"token": {bs.token}}.Encode())
			floor := startFloor(b, bs)
			runFloor(b, floor, func() loadResult {
				return runPaced(b, 25000, func() loadResult {
					return runH2load(b, h2load, h2Load{clients: loadClients, streams: 1, h1: true, rps: 25000 / loadClients, procs: procs}, body, seconds,
						floor.base+"oauth2/introspect", "content-type: application/x-www-form-urlencoded", "authorization: Bearer "+homeserverSecret)
				})
			})
		})
	}
	b.Run("introspect-grpc-h2load-36000-per-s", func(b *testing.B) {
		runExternal(b, bs.s, introspected.with("transport", "grpc"), func() loadResult {
			return runPaced(b, 36000, func() loadResult {
				return runH2load(b, h2load, h2Load{clients: 1, streams: loadClients, rps: 36000}, grpcBody, seconds, grpcTarget, grpcHeaders...)
			})
		})
	})
	b.Run("client-credentials-wrk", func(b *testing.B) {
		basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(bs.cc.ClientID) + ":" + url.QueryEscape(bs.cc.ClientSecret)))
		script := wrkScript(b, "POST", "grant_type=client_credentials", map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic " + basic})
		granted := series{"gatehouse_token_grants_total", map[string]string{"grant": "client_credentials", "outcome": "ok"}}
		runExternal(b, bs.s, granted, func() loadResult {
			return runWrk(b, wrk, script, seconds, bs.base+"oauth2/token")
		})
	})
}

// loadResult is what a load generator measured.
type loadResult struct {
	requests int64         // completed with a success status
	failed   int64         // anything else: errors, other statuses, timeouts
	elapsed  time.Duration // how long the load ran
	p50, p99 time.Duration
	cpu      time.Duration // the generator's own CPU time
}

// generatorCPU is the CPU time a finished generator process spent.
func generatorCPU(cmd *exec.Cmd) time.Duration {
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// runExternal runs load, checks that the server's counter s grew by every
// request the generator completed, and reports the generator's figures with
// the server's CPU per request.
func runExternal(b *testing.B, s *server, ok series, load func() loadResult) {
	before := ok.read(b, s)
	cpu0, self0 := treeCPU(s.cmd.Process.Pid)
	b.ResetTimer()
	profile := startProfiles(b, s, strings.TrimPrefix(b.Name(), "BenchmarkLoadExternal/"))
	gc0 := collections(b, s)
	r := load()
	b.StopTimer()
	gcs := collections(b, s) - gc0
	settled := settle(s)
	cpu, self := treeCPU(s.cmd.Process.Pid)
	profile.wait(b)
	after := ok.read(b, s)
	if r.failed > 0 || r.requests == 0 {
		b.Fatalf("%d requests succeeded and %d failed", r.requests, r.failed)
	}
	// A request completed as the load ended may not be counted by the
	// generator: the server's count may be ahead by the connections' worth.
	if grew := int64(after - before); grew < r.requests || grew > r.requests+2*loadClients {
		b.Fatalf("the generator completed %d requests, the server counted %d with %s", r.requests, grew, ok)
	}
	reportLatency(b, r.requests, r.elapsed, r.p50, r.p99)
	b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(r.requests), "server-cpu-µs/op")
	b.ReportMetric(float64((self-self0).Microseconds())/float64(r.requests), "gatehouse-cpu-µs/op")
	b.ReportMetric(float64(settled.Milliseconds()), "settle-ms")
	b.ReportMetric(float64(gcs)/r.elapsed.Seconds(), "gc/s")
	b.ReportMetric(float64(r.cpu.Microseconds())/float64(r.requests), "generator-cpu-µs/op")
}

// collections is how many garbage collections the server has run.
func collections(b *testing.B, s *server) uint64 {
	m := scrapeMetrics(b, "http://"+s.ops+"/metrics")["go_gc_duration_seconds"].GetMetric()
	if len(m) == 0 {
		b.Fatal("the server's /metrics has no go_gc_duration_seconds")
	}
	return m[0].GetSummary().GetSampleCount()
}

// settle waits until the server is idle again after a load, at most 30 s,
// and returns how long that took: what the load left to do (read models
// and followers applying its events) is counted in its CPU per request, and
// a load that only looks fast because its work was left behind shows.
func settle(s *server) time.Duration {
	const (
		every = 250 * time.Millisecond
		idle  = every / 10 // under a tenth of a core
	)
	start := time.Now()
	prev, _ := treeCPU(s.cmd.Process.Pid)
	for time.Since(start) < 30*time.Second {
		time.Sleep(every)
		cpu, _ := treeCPU(s.cmd.Process.Pid)
		if cpu-prev < idle {
			break
		}
		prev = cpu
	}
	return time.Since(start)
}

// wrkScript writes the Lua script that makes wrk send method with body and
// headers, and print, when done, what runWrk reads back.
func wrkScript(b *testing.B, method, body string, headers map[string]string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "wrk.method = %q\nwrk.body = %q\n", method, body)
	for k, v := range headers {
		fmt.Fprintf(&sb, "wrk.headers[%q] = %q\n", k, v)
	}
	sb.WriteString(`
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("result requests=%d failed=%d elapsed_us=%d p50_us=%d p99_us=%d\n",
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
`)
	path := filepath.Join(b.TempDir(), "load.lua")
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// runWrk runs wrk with script against target for seconds.
func runWrk(b *testing.B, wrk, script string, seconds int, target string) loadResult {
	cmd := exec.Command(wrk, "-t", "1", "-c", strconv.Itoa(loadClients), "-d", strconv.Itoa(seconds)+"s",
		"--timeout", "5s", "-s", script, target)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		rest, found := strings.CutPrefix(line, "result ")
		if !found {
			continue
		}
		f := fields(b, rest)
		// wrk counts a non-2xx answer among requests and among errors.
		return loadResult{requests: f["requests"] - f["failed"], failed: f["failed"],
			elapsed: time.Duration(f["elapsed_us"]) * time.Microsecond,
			p50:     time.Duration(f["p50_us"]) * time.Microsecond, p99: time.Duration(f["p99_us"]) * time.Microsecond,
			cpu: generatorCPU(cmd)}
	}
	b.Fatalf("wrk printed no result:\n%s", out)
	return loadResult{}
}

// fields parses "k=v k=v" with integer values.
func fields(b *testing.B, s string) map[string]int64 {
	out := map[string]int64{}
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("%q: %v", kv, err)
		}
		out[k] = n
	}
	return out
}

// grpcFrame is m in gRPC's length-prefixed framing, uncompressed.
func grpcFrame(b *testing.B, m proto.Message) []byte {
	raw, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	frame := endian.BigEndian.AppendUint32([]byte{0}, uint32(len(raw))) // not compressed, length
	return append(frame, raw...)
}

// runPaced runs a load paced to rate requests a second and reports the
// rate it reached as a share of rate.
func runPaced(b *testing.B, rate int, load func() loadResult) loadResult {
	r := load()
	b.ReportMetric(100*float64(r.requests)/r.elapsed.Seconds()/float64(rate), "achieved-%")
	return r
}

// h2Load is how h2load loads: clients connections with streams requests in
// flight on each (HTTP/2), or HTTP/1.1 connections (h1: one request in
// flight each); rps, when set, paces each connection to that many requests
// a second instead of sending as fast as answers come back. procs, when
// above 1, spreads the clients over that many h2load processes whose starts
// are spaced a pacing period apart divided by procs: one h2load fires all
// its paced connections on the same tick, so that 64 connections send 64
// requests at once and wait, where callers of their own (a homeserver's
// workers) are not in step.
type h2Load struct {
	clients, streams, rps, procs int
	h1                           bool
}

// runH2load runs h2load as l says, posting body to target with headers for
// seconds; the latencies come from its per-request log, each from the
// request's sending to its answer. HTTP/2's status is 200 for any gRPC
// answer: the server's counter (runExternal) tells the active ones.
func runH2load(b *testing.B, h2load string, l h2Load, body []byte, seconds int, target string, headers ...string) loadResult {
	dir := b.TempDir()
	data := filepath.Join(dir, "body")
	if err := os.WriteFile(data, body, 0o600); err != nil {
		b.Fatal(err)
	}
	procs := max(l.procs, 1)
	if l.clients%procs != 0 {
		b.Fatalf("%d clients do not split over %d h2load processes", l.clients, procs)
	}
	var spacing time.Duration
	if l.rps > 0 {
		spacing = time.Second / time.Duration(l.rps*procs)
	}
	type run struct {
		cmd     *exec.Cmd
		log     string
		out     bytes.Buffer
		started chan error
	}
	runs := make([]*run, procs)
	start := time.Now()
	for i := range runs {
		r := &run{log: filepath.Join(dir, fmt.Sprintf("requests-%d.log", i))}
		args := []string{"-c", strconv.Itoa(l.clients / procs), "-m", strconv.Itoa(l.streams), "-t", "1", "-D", strconv.Itoa(seconds),
			"-d", data, "--log-file", r.log}
		if l.h1 {
			args = append(args, "--h1")
		}
		if l.rps > 0 {
			args = append(args, "--rps", strconv.Itoa(l.rps))
		}
		for _, h := range headers {
			args = append(args, "-H", h)
		}
		r.cmd = exec.Command(h2load, append(args, target)...)
		r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
		if i > 0 {
			time.Sleep(spacing)
		}
		if err := r.cmd.Start(); err != nil {
			b.Fatalf("h2load: %v", err)
		}
		runs[i] = r
	}
	res := loadResult{}
	var (
		lat   []time.Duration
		first = int64(-1)
		last  int64
	)
	for _, r := range runs {
		if err := r.cmd.Wait(); err != nil {
			b.Fatalf("h2load: %v\n%s", err, r.out.String())
		}
		res.cpu += generatorCPU(r.cmd)
		f, err := os.Open(r.log)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() { // start time (µs since the epoch), status, elapsed (µs)
			cols := strings.Fields(sc.Text())
			if len(cols) < 3 {
				continue
			}
			started, _ := strconv.ParseInt(cols[0], 10, 64)
			took, _ := strconv.ParseInt(cols[2], 10, 64)
			if cols[1] != "200" {
				res.failed++
				continue
			}
			res.requests++
			lat = append(lat, time.Duration(took)*time.Microsecond)
			if first < 0 || started < first {
				first = started
			}
			last = max(last, started+took)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	if len(lat) == 0 {
		b.Fatalf("h2load logged no request:\n%s", runs[0].out.String())
	}
	res.p50, res.p99 = percentiles(lat)
	res.elapsed = time.Duration(last-first) * time.Microsecond
	if res.elapsed <= 0 || res.elapsed > elapsed {
		res.elapsed = elapsed
	}
	return res
}

// series names one counter of the server's /metrics: the sum of the series
// of name whose labels include labels.
type series struct {
	name   string
	labels map[string]string
}

// with is s also matching label k=v.
func (s series) with(k, v string) series {
	labels := map[string]string{k: v}
	for lk, lv := range s.labels {
		labels[lk] = lv
	}
	return series{s.name, labels}
}

func (s series) String() string { return fmt.Sprintf("%s%v", s.name, s.labels) }

// read scrapes the server's /metrics and sums the counter's matching series.
func (s series) read(b *testing.B, srv *server) float64 {
	families := scrapeMetrics(b, "http://"+srv.ops+"/metrics")
	var sum float64
	for _, m := range families[s.name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range s.labels {
			match = match && have[k] == v
		}
		if match {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
