package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

// The numbers deploy/README.md's capacity model is made of, besides
// BenchmarkLoad's: how soon a revocation on one token replica is seen by
// another, and the resident memory of idle processes.

// BenchmarkRevocationVisibility revokes, b.N times, a token on one token
// replica while another is asked about it as fast as it answers, and
// reports how long after the revocation's 200 the other answered inactive.
func BenchmarkRevocationVisibility(b *testing.B) {
	d := newSplitDeployment(b)
	a := d.process(b, "accounts,authorize,token,notify,web", nil, "", "GATEHOUSE_LOG_LEVEL=error")
	aBase := "http://" + a.http + "/"
	r := d.process(b, "token", a, aBase, "GATEHOUSE_LOG_LEVEL=error")
	rBase := "http://" + r.http + "/"
	cc := benchCCClient(b, aBase)
	client := loadHTTPClient()
	var delays []time.Duration
	b.ResetTimer()
	for range b.N {
		tok, err := cc.Token(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if !introspectActive(b, client, aBase, tok.AccessToken) {
			b.Fatal("a token just issued by replica A is inactive on A")
		}
		revokeAt(b, client, rBase, cc, tok.AccessToken)
		revoked := time.Now()
		for introspectActive(b, client, aBase, tok.AccessToken) {
			if time.Since(revoked) > 10*time.Second {
				b.Fatal("replica A still reports the token active 10s after replica B revoked it")
			}
		}
		delays = append(delays, time.Since(revoked))
	}
	b.StopTimer()
	slices.Sort(delays)
	b.ReportMetric(float64(delays[len(delays)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(delays[len(delays)-1].Microseconds()), "max-µs")
}

// introspectActive asks base about token with the homeserver's secret.
func introspectActive(b testing.TB, client *http.Client, base, token string) bool {
	req, _ := http.NewRequest(http.MethodPost, base+"oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+homeserverSecret)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("introspection: %d %s", resp.StatusCode, body)
	}
	return bytes.Contains(body, []byte(`"active":true`))
}

// revokeAt revokes token at base as the client it was issued to.
func revokeAt(b testing.TB, client *http.Client, base string, cc clientcredentials.Config, token string) {
	req, _ := http.NewRequest(http.MethodPost, base+"oauth2/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(cc.ClientID), url.QueryEscape(cc.ClientSecret))
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
}

// idleSettle is how long processes are left alone before their memory is read.
const idleSettle = 10 * time.Second

// BenchmarkIdleMemory reports the resident memory (VmRSS) of idle
// processes: `gatehouse serve` with every service (embedded NATS; its
// private PostgreSQL is a process of its own, not counted), and one process
// per service sharing a NATS server and PostgreSQL with a peer running the
// others. Run it with -benchtime 1x.
func BenchmarkIdleMemory(b *testing.B) {
	for range b.N {
		aio := startServe(b, dataDir(b), "GATEHOUSE_MATRIX_SECRET="+homeserverSecret, "GATEHOUSE_LOG_LEVEL=error")
		d := newSplitDeployment(b)
		peer := d.process(b, "accounts,authorize,token,notify,web,admin", nil, "", "GATEHOUSE_LOG_LEVEL=error")
		single := map[string]*server{}
		for _, svc := range []string{"accounts", "authorize", "token", "notify", "web", "admin"} {
			single[svc] = d.process(b, svc, peer, "http://"+peer.http+"/", "GATEHOUSE_LOG_LEVEL=error")
		}
		time.Sleep(idleSettle)
		b.ReportMetric(rssMiB(b, aio), "all-in-one-MiB")
		for svc, s := range single {
			b.ReportMetric(rssMiB(b, s), svc+"-MiB")
		}
	}
}

// rssMiB is a running process's resident memory in MiB.
func rssMiB(b testing.TB, s *server) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kib / 1024
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", s.cmd.Process.Pid)
	return 0
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times
// (100 on every Linux this runs on).
const clockTicks = 100

// treeCPU is the CPU time used so far by the process pid and its children
// (gatehouse serve's private PostgreSQL), and by pid alone, from /proc.
func treeCPU(pid int) (tree, self time.Duration) {
	parents := map[int]int{}
	cpu := map[int]time.Duration{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range dirs {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime: fields 14 and 15, counted
		// after the command, which may hold spaces.
		end := bytes.LastIndexByte(raw, ')')
		if end < 0 {
			continue
		}
		id, _ := strconv.Atoi(string(bytes.Fields(raw[:end])[0]))
		f := strings.Fields(string(raw[end+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		parents[id] = ppid
		cpu[id] = time.Duration(utime+stime) * time.Second / clockTicks
	}
	for id, t := range cpu {
		for p := id; p != 0; p = parents[p] {
			if p == pid {
				tree += t
				break
			}
		}
	}
	return tree, cpu[pid]
}
