// Package e2e tests Gatehouse from the outside: it builds the real
// `gatehouse` binary once per test run, starts it (all five services in one
// process, or split into several processes sharing NATS and PostgreSQL),
// stops, crashes and restarts it, and drives it the way its users do — OAuth
// and OpenID Connect clients, Matrix clients, a headless Chromium, the admin
// CLI and the homeserver stand-in.
//
// The shared harness lives in the harness*_test.go files; every other file is
// one flow.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/grpcx"
	"gatehouse.dev/platform/host"
	"gatehouse.dev/platform/secretfile"
	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// gatehousePackage is the binary under test (a tool of this module, see go.mod).
const gatehousePackage = "gatehouse.dev/cmd/gatehouse"

// binary is the gatehouse binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gatehouse")
	build := exec.Command("go", "build", "-o", binary, gatehousePackage)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gatehouse:", err)
		os.Exit(1)
	}
	code := testkit.Run(m) // stops the PostgreSQL cluster that multi-process tests share
	os.RemoveAll(dir)
	os.Exit(code)
}

// dataDir returns a fresh data directory that an unprivileged PostgreSQL can
// traverse (t.TempDir's parent is private to the user running the tests).
func dataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gatehouse-data-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// freeAddrs returns n distinct free loopback addresses: the listeners are all
// open at once while they are picked, so the kernel cannot hand one out twice.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

// freeAddr returns a free loopback address.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// server is a running `gatehouse serve` process.
type server struct {
	cmd             *exec.Cmd
	grpc, http, ops string
	dataDir         string
	log             *bytes.Buffer
	exited          chan struct{}
	// secret is the internal secret its gRPC credentials derive from.
	secret []byte
}

// startServe runs `gatehouse serve` on dataDir with embedded NATS and a
// private PostgreSQL cluster, and waits until its health endpoint answers.
func startServe(t testing.TB, dataDir string, env ...string) *server {
	t.Helper()
	addrs := freeAddrs(t, 3)
	s := &server{grpc: addrs[0], http: addrs[1], ops: addrs[2], dataDir: dataDir}
	base := append(os.Environ(),
		"GATEHOUSE_DATA_DIR="+dataDir,
		"GATEHOUSE_GRPC_ADDR="+s.grpc,
		"GATEHOUSE_HTTP_ADDR="+s.http,
		"GATEHOUSE_OPS_ADDR="+s.ops,
		"GATEHOUSE_PUBLIC_URL=http://"+s.http+"/",
		"GATEHOUSE_LOG_LEVEL=warn",
		// The suite sends everything from 127.0.0.1, far faster than people
		// do: the anonymous OAuth endpoints' per-address limits are lifted
		// here, and tested at their defaults in abuse_limits_test.go.
		"GATEHOUSE_RATE_LIMIT_AUTHORIZATION_BURST=100000",
		"GATEHOUSE_RATE_LIMIT_CLIENT_REGISTRATION_BURST=100000",
		"GATEHOUSE_RATE_LIMIT_DEVICE_AUTHORIZATION_BURST=100000",
	)
	return startServeOn(t, s, append(base, env...))
}

// startServeOn starts the process for s with the given environment and waits
// until its health endpoint answers.
func startServeOn(t testing.TB, s *server, env []string) *server {
	t.Helper()
	s.log, s.exited = &bytes.Buffer{}, make(chan struct{})
	s.cmd = exec.Command(binary, "serve")
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + s.ops + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.secret = internalSecret(t, env)
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("gatehouse serve exited during start:\n%s", s.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatehouse serve not healthy after 90s:\n%s", s.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// internalSecret is the secret a process with env derives gRPC credentials
// from: the one env configures, or else the one it generated under its data
// directory on first start (a single-machine deployment).
func internalSecret(t testing.TB, env []string) []byte {
	t.Helper()
	var cfg config.Config
	secret := ""
	for _, kv := range env { // the last value of a key wins, as for the process
		if v, ok := strings.CutPrefix(kv, "GATEHOUSE_INTERNAL_SECRET="); ok {
			secret = v
		}
		if v, ok := strings.CutPrefix(kv, "GATEHOUSE_DATA_DIR="); ok {
			cfg.DataDir = v
		}
	}
	if secret != "" {
		return []byte(secret)
	}
	b, err := secretfile.Load(host.InternalSecretPath(cfg))
	if err != nil {
		t.Fatalf("the internal secret gatehouse serve generated: %v", err)
	}
	return b
}

// dial connects to the process's gRPC API calling every method as a caller
// its access option allows (an administrator or a service; the web service
// acting for a person when the context carries a browser session, see signIn).
func (s *server) dial(t testing.TB) *grpc.ClientConn {
	t.Helper()
	return testkit.DialAutoTo(t, s.grpc, s.secret)
}

// signIn signs a user in as the sign-in page does (see browserSession) and
// returns a context carrying the session, for the calls the web service makes
// for a signed-in person (approving a grant or a device, login tokens, ...).
func signIn(t testing.TB, conn *grpc.ClientConn, username, password string) context.Context {
	t.Helper()
	return grpcx.WithBrowserSession(context.Background(), browserSession(t, conn, username, password, nil).GetSecret())
}

// browserSession starts a browser session as the sign-in page does: the
// password checked by accounts, then the session started with the proof
// that check gives; edit may set the request's user agent and address.
func browserSession(t testing.TB, conn *grpc.ClientConn, username, password string, edit func(*accountsv1.StartBrowserSessionRequest)) *accountsv1.StartBrowserSessionResponse {
	t.Helper()
	ctx := context.Background()
	accounts := accountsv1.NewAccountsServiceClient(conn)
	v, err := accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: username, Password: password})
	if err != nil {
		t.Fatalf("sign in %s: %v", username, err)
	}
	req := &accountsv1.StartBrowserSessionRequest{UserId: v.GetUser().GetId(), AuthProof: v.GetAuthProof()}
	if edit != nil {
		edit(req)
	}
	bs, err := accounts.StartBrowserSession(ctx, req)
	if err != nil {
		t.Fatalf("browser session of %s: %v", username, err)
	}
	return bs
}

// stop ends the process gracefully (SIGTERM) and waits for it.
func (s *server) stop(t testing.TB) {
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("gatehouse serve did not stop within 60s:\n%s", s.log)
	}
}

// crash kills the process without warning.
func (s *server) crash() {
	s.cmd.Process.Kill()
	<-s.exited
}

// restart kills the process without warning and starts it again on the same
// addresses and data.
func (s *server) restart(t *testing.T) *server {
	t.Helper()
	s.crash()
	next := &server{grpc: s.grpc, http: s.http, ops: s.ops, dataDir: s.dataDir}
	return startServeOn(t, next, s.cmd.Env)
}

// splitDeployment runs services in separate processes that share a NATS
// server and a PostgreSQL database, as a scaled deployment does.
type splitDeployment struct {
	natsURL, dbURL string
	// secret is the internal secret every process is configured with.
	secret string
	// kek is the key-encryption key (base64) every process is configured with.
	kek string
}

func newSplitDeployment(t testing.TB) *splitDeployment {
	t.Helper()
	secret, kek := make([]byte, 32), make([]byte, 32)
	rand.Read(secret)
	rand.Read(kek)
	return &splitDeployment{natsURL: testkit.StartNATS(t).ClientURL(), dbURL: testkit.Postgres(t), secret: hex.EncodeToString(secret),
		kek: base64.StdEncoding.EncodeToString(kek)}
}

// process starts `gatehouse serve` running only the named services; the
// others are reached at the gRPC address of `peer` (when given).
func (d *splitDeployment) process(t testing.TB, services string, peer *server, publicURL string, extra ...string) *server {
	t.Helper()
	env := append([]string{
		"GATEHOUSE_NATS_URL=" + d.natsURL,
		"GATEHOUSE_DATABASE_URL=" + d.dbURL,
		"GATEHOUSE_SERVICES=" + services,
		"GATEHOUSE_MATRIX_SECRET=" + homeserverSecret,
		"GATEHOUSE_INTERNAL_SECRET=" + d.secret,
		"GATEHOUSE_SECRETS_ENCRYPTION_KEY=" + d.kek,
	}, extra...)
	if publicURL != "" {
		env = append(env, "GATEHOUSE_PUBLIC_URL="+publicURL)
	}
	if peer != nil {
		for _, svc := range []string{"accounts", "authorize", "token", "notify", "web"} {
			if !strings.Contains(services, svc) {
				env = append(env, "GATEHOUSE_ENDPOINT_"+strings.ToUpper(svc)+"="+peer.grpc)
			}
		}
	}
	return startServe(t, dataDir(t), env...)
}

// cli runs an admin command of the binary against the server, with the
// server's environment (so it finds the internal secret the admin credential
// derives from, as on the server's machine), and returns its exit code and
// output; stdin is empty.
func (s *server) cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLI(t, s.cmd.Env, append(args, "--grpc", s.grpc)...)
}

// runCLI runs `gatehouse args...` with the environment env and an empty
// stdin, and returns its exit code and output.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader("")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.Exited():
		code = exit.ExitCode()
	default:
		t.Fatalf("gatehouse %v: %v\n%s", args, err, errOut.String())
	}
	return code, out.String(), errOut.String()
}

// mustCLI runs an admin command against s and returns its output; any exit
// code but 0 fails the test.
func mustCLI(t *testing.T, s *server, args ...string) string {
	t.Helper()
	code, out, errOut := s.cli(t, args...)
	if code != 0 {
		t.Fatalf("gatehouse %v: exit %d: %s", args, code, errOut)
	}
	return out
}

// auditOf returns the audit log once it lists n entries (it may still be
// catching up with the stream); more than n is a failure.
func auditOf(t *testing.T, s *server, n int) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := mustCLI(t, s, "user", "audit")
		got := len(strings.Split(strings.TrimSpace(out), "\n")) - 1 // minus the header
		switch {
		case got == n:
			return out
		case got > n:
			t.Fatalf("audit lists %d entries, want %d:\n%s", got, n, out)
		case time.Now().After(deadline):
			t.Fatalf("audit lists %d entries after 20s, want %d:\n%s", got, n, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFor polls fn until it returns true or the timeout passes.
func waitFor(timeout time.Duration, fn func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := fn()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("timed out")
			}
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail is the end of a process log.
func tail(log string) string {
	if len(log) > 6000 {
		return log[len(log)-6000:]
	}
	return log
}
