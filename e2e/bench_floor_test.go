package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// floorServer is a running e2e/floorserver.
type floorServer struct {
	cmd  *exec.Cmd
	base string
}

// startFloor builds and starts e2e/floorserver with Gatehouse's answer for
// bs's token, and checks that it answers that token as Gatehouse does.
func startFloor(b *testing.B, bs *benchServer) *floorServer {
	b.Helper()
	answer := introspectOnce(b, bs.base, bs.token)
	if !bytes.Contains(answer, []byte(`"active":true`)) {
		b.Fatalf("Gatehouse answers the benchmark's token with %s", answer)
	}
	bin := filepath.Join(b.TempDir(), "floorserver")
	if out, err := exec.Command("go", "build", "-o", bin, "gatehouse.dev/e2e/floorserver").CombinedOutput(); err != nil {
		b.Fatalf("build floorserver: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "127.0.0.1:0", bs.token)
	cmd.Env = []string{"GATEHOUSE_MATRIX_SECRET=" + homeserverSecret, "FLOOR_ANSWER=" + string(answer)}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("floorserver printed no address: %v", err)
	}
	f := &floorServer{cmd: cmd, base: "http://" + strings.TrimSpace(addr) + "/"}
	if got := introspectOnce(b, f.base, bs.token); !bytes.Equal(got, answer) {
		b.Fatalf("floorserver answers %s, Gatehouse %s", got, answer)
	}
	return f
}

// introspectOnce is the body of base's 200 answer to the homeserver's
// introspection of token.
func introspectOnce(b *testing.B, base, token string) []byte {
	b.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+homeserverSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("introspection at %s: %d %s %v", base, resp.StatusCode, body, err)
	}
	return body
}

// runFloor runs load against the floor server and reports the generator's
// figures with the floor server's CPU per request, as runExternal does for
// Gatehouse.
func runFloor(b *testing.B, f *floorServer, load func() loadResult) {
	_, cpu0 := treeCPU(f.cmd.Process.Pid)
	b.ResetTimer()
	r := load()
	b.StopTimer()
	_, cpu := treeCPU(f.cmd.Process.Pid)
	if r.failed > 0 || r.requests == 0 {
		b.Fatalf("%d requests succeeded and %d failed", r.requests, r.failed)
	}
	reportLatency(b, r.requests, r.elapsed, r.p50, r.p99)
	b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(r.requests), "server-cpu-µs/op")
	b.ReportMetric(float64(r.cpu.Microseconds())/float64(r.requests), "generator-cpu-µs/op")
}
