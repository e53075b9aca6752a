package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// The load test drives a running `gatehouse serve` from loadClients
// concurrent clients in the test process, which shares the machine's cores
// with the server: the numbers are those of the server and its load
// generator together. With GATEHOUSE_BENCH_PROFILE=<dir>, every load runs
// for at least profileSeconds more while the server's CPU and allocation
// profiles are taken (ops.pprof), written to <dir>/<load>.cpu.pprof and
// <dir>/<load>.allocs.pprof for `go tool pprof`.
const (
	loadClients    = 64
	profileSeconds = 8
)

// benchServer is one `gatehouse serve` shared by the load tests, with a
// confidential client and a token to introspect.
type benchServer struct {
	s         *server
	base      string
	cc        clientcredentials.Config
	token     string
	client    *http.Client
	aliceOnce sync.Once
}

func startBench(b *testing.B) *benchServer {
	b.Helper()
	s := startServe(b, dataDir(b), "GATEHOUSE_MATRIX_SECRET="+homeserverSecret, "GATEHOUSE_LOG_LEVEL=error", "GATEHOUSE_OPS_PPROF=true")
	bs := &benchServer{s: s, base: "http://" + s.http + "/", client: loadHTTPClient()}
	bs.cc = benchCCClient(b, bs.base)
	tok, err := bs.cc.Token(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	bs.token = tok.AccessToken
	return bs
}

// loadHTTPClient keeps a connection per load client alive.
func loadHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * loadClients, MaxConnsPerHost: 2 * loadClients}}
}

// benchCCClient registers a confidential client_credentials client at base.
func benchCCClient(b testing.TB, base string) clientcredentials.Config {
	b.Helper()
	body, _ := json.Marshal(map[string]any{
		"client_uri": "https://bench.example.com/", "application_type": "web",
		"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"},
	})
	resp, err := http.Post(base+"oauth2/registration", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	var reg map[string]any
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("register: %d %v", resp.StatusCode, reg)
	}
	return clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), TokenURL: base + "oauth2/token"}
}

// report sorts durations and reports p50/p99 and requests/s over elapsed.
func report(b *testing.B, all []time.Duration, elapsed time.Duration) {
	if len(all) > 0 {
		p50, p99 := percentiles(all)
		reportLatency(b, int64(len(all)), elapsed, p50, p99)
	}
}

// percentiles sorts all (not empty) and returns its median and 99th percentile.
func percentiles(all []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(all)
	return all[len(all)/2], all[len(all)*99/100]
}

// reportLatency reports n requests over elapsed, with their p50 and p99.
func reportLatency(b *testing.B, n int64, elapsed, p50, p99 time.Duration) {
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n), "ns/op")
}

// drive drives fn from loadClients concurrent clients, b.N requests in all.
func drive(b *testing.B, fn func() error) { driveProfiled(b, nil, fn) }

// driveProfiled is drive that, when profiling, also goes on for as long as
// the profiles of s (when not nil) take.
func driveProfiled(b *testing.B, s *server, fn func() error) {
	var (
		next    atomic.Int64
		failed  atomic.Bool
		wg      sync.WaitGroup
		mu      sync.Mutex
		all     = make([]time.Duration, 0, b.N)
		profile = profileDuring(b, s)
	)
	var cpu0, self0 time.Duration
	if s != nil {
		cpu0, self0 = treeCPU(s.cmd.Process.Pid)
	}
	b.ResetTimer()
	start := time.Now()
	for range loadClients {
		wg.Go(func() {
			mine := make([]time.Duration, 0, b.N/loadClients+1)
			defer func() {
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			}()
			for !failed.Load() {
				if next.Add(1) > int64(b.N) && profile.done() {
					return
				}
				t0 := time.Now()
				if err := fn(); err != nil {
					b.Error(err)
					failed.Store(true)
					return
				}
				mine = append(mine, time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if s != nil && len(all) > 0 {
		// The server's own CPU per request: what a core of it serves,
		// whatever else (the load generator, other work) the machine runs.
		cpu, self := treeCPU(s.cmd.Process.Pid)
		cpu, self = cpu-cpu0, self-self0
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "server-cpu-µs/op")
		// Of which gatehouse itself (the rest: its PostgreSQL).
		b.ReportMetric(float64(self.Microseconds())/float64(len(all)), "gatehouse-cpu-µs/op")
		b.ReportMetric(float64(len(all))/cpu.Seconds(), "req/s/server-core")
	}
	profile.wait(b)
	report(b, all, elapsed)
}

// profiles are the server's profiles being taken during a load.
type profiles struct {
	finished chan struct{} // nil: not profiling
	errs     []error
}

// profileDuring starts taking s's CPU and allocation profiles, for
// profileSeconds, when GATEHOUSE_BENCH_PROFILE names a directory.
func profileDuring(b *testing.B, s *server) *profiles {
	if b.N == 1 { // the framework's first, probing run
		return &profiles{}
	}
	return startProfiles(b, s, strings.TrimPrefix(b.Name(), "BenchmarkLoad/"))
}

// startProfiles starts taking s's CPU and allocation profiles, for
// profileSeconds, when GATEHOUSE_BENCH_PROFILE names a directory; name
// names their files.
func startProfiles(b *testing.B, s *server, name string) *profiles {
	dir := os.Getenv("GATEHOUSE_BENCH_PROFILE")
	p := &profiles{}
	if dir == "" || s == nil {
		return p
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	name = strings.ReplaceAll(name, "/", "-")
	p.finished = make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	for kind, path := range map[string]string{"cpu": "profile", "allocs": "allocs"} {
		wg.Go(func() {
			err := fetchProfile(fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", s.ops, path, profileSeconds),
				filepath.Join(dir, name+"."+kind+".pprof"))
			mu.Lock()
			p.errs = append(p.errs, err)
			mu.Unlock()
		})
	}
	go func() { wg.Wait(); close(p.finished) }()
	return p
}

// done reports whether the profiles are taken (true when not profiling).
func (p *profiles) done() bool {
	if p.finished == nil {
		return true
	}
	select {
	case <-p.finished:
		return true
	default:
		return false
	}
}

// wait waits for the profiles and fails on an error taking one.
func (p *profiles) wait(b *testing.B) {
	if p.finished == nil {
		return
	}
	<-p.finished
	for _, err := range p.errs {
		if err != nil {
			b.Error(err)
		}
	}
}

// fetchProfile saves the profile at url to path.
func fetchProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BenchmarkLoad is the load test of a running system: introspection over HTTP
// and gRPC as a homeserver calls them (with its shared secret),
// client_credentials issuance, and refreshes on the Matrix login API.
func BenchmarkLoad(b *testing.B) {
	bs := startBench(b)
	form := url.Values{"token": {bs.token}}.Encode()
	active := []byte(`"active":true`)
	b.Run("introspect-http", func(b *testing.B) {
		driveProfiled(b, bs.s, func() error {
			req, _ := http.NewRequest(http.MethodPost, bs.base+"oauth2/introspect", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+homeserverSecret)
			resp, err := bs.client.Do(req)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && (resp.StatusCode != http.StatusOK || !bytes.Contains(body, active)) {
				return fmt.Errorf("introspection: %d %s", resp.StatusCode, body)
			}
			return err
		})
	})
	b.Run("introspect-grpc", func(b *testing.B) {
		conn, err := grpc.NewClient(bs.s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		c := tokenv1.NewTokenServiceClient(conn)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+homeserverSecret)
		driveProfiled(b, bs.s, func() error {
			resp, err := c.Introspect(ctx, &tokenv1.IntrospectRequest{Token: bs.token})
			if err == nil && !resp.GetActive() {
				return fmt.Errorf("token inactive")
			}
			return err
		})
	})
	b.Run("client-credentials", func(b *testing.B) {
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, bs.client)
		driveProfiled(b, bs.s, func() error {
			_, err := bs.cc.Token(ctx)
			return err
		})
	})
	b.Run("refresh-compat", func(b *testing.B) {
		// loadClients devices of one user, each refreshed in turn: every
		// refresh loads its session from the stream, appends the rotation
		// and waits for the read model (sessions.go, rotate).
		refreshes := make(chan string, loadClients)
		for range loadClients {
			refreshes <- bs.compatLogin(b)
		}
		driveProfiled(b, bs.s, func() error {
			next, err := bs.compatRefresh(<-refreshes)
			if err != nil {
				return err
			}
			refreshes <- next
			return nil
		})
	})
}

// compatLogin signs alice in on the Matrix login API with a refresh token
// and returns it (alice is registered on first use).
func (bs *benchServer) compatLogin(b *testing.B) string {
	b.Helper()
	bs.aliceOnce.Do(func() {
		conn := bs.s.dial(b)
		if _, err := accountsv1.NewAccountsServiceClient(conn).Register(context.Background(),
			&accountsv1.RegisterRequest{Username: "alice", Password: "alice's password"}); err != nil {
			b.Fatal(err)
		}
	})
	refresh, err := bs.refreshTokenFrom("login", alicePassword(map[string]any{"refresh_token": true}))
	if err != nil {
		b.Fatal(err)
	}
	return refresh
}

// compatRefresh exchanges a compat refresh token for the next one.
func (bs *benchServer) compatRefresh(token string) (string, error) {
	return bs.refreshTokenFrom("refresh", map[string]string{"refresh_token": token})
}

// refreshTokenFrom posts body to the Matrix client API's endpoint and
// returns the refresh token its answer carries.
func (bs *benchServer) refreshTokenFrom(endpoint string, body any) (string, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	resp, err := bs.client.Post(bs.base+"_matrix/client/v3/"+endpoint, "application/json", bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.RefreshToken == "" {
		return "", fmt.Errorf("%s: %d %v", endpoint, resp.StatusCode, err)
	}
	return out.RefreshToken, nil
}
