package main

// Tests of the command line that need no running server. Everything that
// starts the binary lives in the e2e module.

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gatehouse.dev/platform/config"
)

func TestCLIWithoutServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	// The admin credential is at hand (an internal secret configured), the
	// server is not.
	t.Setenv("GATEHOUSE_DATA_DIR", t.TempDir())
	t.Setenv("GATEHOUSE_INTERNAL_SECRET", strings.Repeat("s", 32))
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"user", "list", "--grpc", addr}, nil, &out, &errOut)
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

// Bad `gatehouse homeserver` command lines are usage errors. (Every other
// end-to-end test runs with provisioning off: no matrix.homeserver_url.)
func TestHomeserverSyncCommandLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"homeserver"}, "homeserver needs a subcommand"},
		{[]string{"homeserver", "explode"}, "unknown homeserver subcommand"},
		{[]string{"homeserver", "sync", "extra"}, "expected 0 argument"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), tt.args, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("%v: exit %d, %q", tt.args, code, errOut.String())
		}
	}
}
