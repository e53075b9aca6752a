package main

import (
	"bytes"
	"context"
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

	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/testkit"
)

// binary is the gatehouse binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gatehouse")
	build := exec.Command("go", "build", "-o", binary, ".")
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

// cli runs an admin command in process against the server.
func (s *server) cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "--grpc", s.grpc)
	code = run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

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

// Restart the whole process, after a clean stop and after a crash: every user
// and audit entry is still there.
func TestServeKeepsEverythingAcrossRestarts(t *testing.T) {
	dir := dataDir(t)
	s := startServe(t, dir)
	mustCLI(t, s, "user", "add", "--username", "alice", "--password", "alice's password", "--email", "alice@example.com", "--admin")
	mustCLI(t, s, "user", "add", "--username", "bob", "--password", "bob's password")
	mustCLI(t, s, "user", "lock", "bob", "--reason", "testing")
	// The audit projection follows the stream on its own (commands wait only
	// for the users read model), so reads wait until it holds every event.
	entries := 6 // alice: 3 events, bob: 2, the lock: 1
	auditBefore := auditOf(t, s, entries)
	if !strings.Contains(auditBefore, "locked: testing") {
		t.Fatalf("audit before restart:\n%s", auditBefore)
	}

	for _, how := range []string{"stop", "crash"} {
		if how == "stop" {
			s.stop(t)
		} else {
			s.crash()
		}
		s = startServe(t, dir)
		list := mustCLI(t, s, "user", "list")
		for _, want := range []string{"alice", "alice@example.com", "bob", "locked"} {
			if !strings.Contains(list, want) {
				t.Fatalf("after %s: user list lacks %q:\n%s", how, want, list)
			}
		}
		audit := auditOf(t, s, entries)
		if audit != auditBefore {
			t.Fatalf("after %s: audit changed:\nbefore:\n%s\nafter:\n%s", how, auditBefore, audit)
		}
		// A new command lands after the restart too.
		mustCLI(t, s, "user", "unlock", "bob")
		mustCLI(t, s, "user", "lock", "bob", "--reason", "testing")
		entries += 2
		auditBefore = auditOf(t, s, entries)
	}

	// A rebuild from the stream gives the same read model.
	listBefore := mustCLI(t, s, "user", "list")
	out := mustCLI(t, s, "projections", "rebuild", "accounts.users")
	if !strings.Contains(out, "rebuilt accounts.users") {
		t.Fatalf("rebuild output: %s", out)
	}
	if list := mustCLI(t, s, "user", "list"); list != listBefore {
		t.Fatalf("after rebuild:\n%s\nbefore:\n%s", list, listBefore)
	}
	if out := mustCLI(t, s, "projections", "list"); !strings.Contains(out, "accounts.audit") || !strings.Contains(out, "accounts.users") {
		t.Fatalf("projections list:\n%s", out)
	}
}

// Bad input to every CLI command gets a clear message and exit code, never a panic.
func TestCLIBadInput(t *testing.T) {
	s := startServe(t, dataDir(t))
	mustCLI(t, s, "user", "add", "--username", "carol", "--password", "carol's password")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"user without subcommand", []string{"user"}, 2, "subcommand"},
		{"unknown user subcommand", []string{"user", "explode"}, 2, "unknown user subcommand"},
		{"add without username", []string{"user", "add", "--password", "long enough"}, 2, "--username is required"},
		{"add invalid username", []string{"user", "add", "--username", "Carol!", "--password", "long enough"}, 1, "Usernames may only contain"},
		{"add taken username", []string{"user", "add", "--username", "carol", "--password", "long enough"}, 1, "already taken"},
		{"add short password", []string{"user", "add", "--username", "dave", "--password", "short"}, 1, "at least 8 characters"},
		{"add unknown flag", []string{"user", "add", "--username", "dave", "--colour", "blue"}, 2, "flag provided but not defined"},
		{"lock without user", []string{"user", "lock"}, 2, "expected 1 argument"},
		{"lock unknown user", []string{"user", "lock", "nobody"}, 1, "No such user"},
		{"set-password without password", []string{"user", "set-password", "carol"}, 2, "new password is required"},
		{"list bad status", []string{"user", "list", "--status", "sleepy"}, 2, "--status must be"},
		{"rebuild unknown projection", []string{"projections", "rebuild", "accounts.nothing"}, 1, "no projection named"},
		{"rebuild without name", []string{"projections", "rebuild"}, 2, "expected 1 argument"},
		{"projections unknown", []string{"projections", "explode"}, 2, "unknown projections subcommand"},
		{"config unknown", []string{"config", "explode"}, 2, "unknown config subcommand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := s.cli(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tt.code, tt.want)
			}
		})
	}
}

func TestCLIWithoutServer(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"user", "list", "--grpc", freeAddr(t)}, nil, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "gatehouse serve") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestConfigCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"config", "generate"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("generate: exit %d: %s", code, errOut.String())
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(good, nil); err != nil {
		t.Fatalf("generated configuration does not load: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("http:\n  addr: nonsense\nunknown_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file string
		code int
		want string
	}{
		{good, 0, "configuration is valid"},
		{bad, 1, "unknown_key"},
		{filepath.Join(dir, "missing.yaml"), 1, "missing.yaml"},
	}
	for _, tt := range tests {
		out.Reset()
		errOut.Reset()
		code := run(context.Background(), []string{"config", "check", "--config", tt.file}, nil, &out, &errOut)
		if code != tt.code || !strings.Contains(out.String()+errOut.String(), tt.want) {
			t.Errorf("check %s: exit %d, out %q, err %q", filepath.Base(tt.file), code, out.String(), errOut.String())
		}
	}
}
