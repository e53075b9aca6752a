package main

// Tests of the command line that need no running server. Everything that
// starts the binary lives in the e2e module.

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/migrate/synapse"
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

// `gatehouse migrate synapse` refuses wrong command lines with a clear message.
func TestMigrateSynapseCommandLine(t *testing.T) {
	t.Setenv("GATEHOUSE_DATA_DIR", t.TempDir())
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"migrate"}, 2, "migrate needs a source: synapse"},
		{[]string{"migrate", "dendrite"}, 2, `unknown migration source "dendrite"`},
		{[]string{"migrate", "synapse", "--check", "--dry-run", "--synapse-database", "postgres://localhost/synapse"}, 2, "not both"},
		{[]string{"migrate", "synapse", "--batch", "0", "--synapse-database", "postgres://localhost/synapse"}, 2, "--batch must be"},
		{[]string{"migrate", "synapse", "--check"}, 2, "give --synapse-database"},
		{[]string{"migrate", "synapse", "--check", "--format", "yaml", "--synapse-database", "postgres://x/y"}, 2, "--format must be"},
		{[]string{"migrate", "synapse", "--check", "--synapse-config", "/nonexistent/homeserver.yaml"}, 1, "/nonexistent/homeserver.yaml"},
		{[]string{"migrate", "synapse", "--check", "extra"}, 2, "expected 0 argument"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), tt.args, nil, &out, &errOut); code != tt.code || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("%v: exit %d, %q; want %d mentioning %q", tt.args, code, errOut.String(), tt.code, tt.want)
		}
	}
	// Nothing listens: the check fails to connect, exit 1, without the password.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"migrate", "synapse", "--check", "--synapse-database",
		"postgres://synapse:hunter2secret@" + addr + "/synapse?connect_timeout=5"}, nil, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "connect") || strings.Contains(errOut.String(), "hunter2secret") {
		t.Errorf("unreachable database: exit %d, %q", code, errOut.String())
	}
	var help bytes.Buffer
	run(context.Background(), []string{"help"}, nil, &help, &errOut)
	if !strings.Contains(help.String(), "migrate synapse [--check | --dry-run]") || !strings.Contains(help.String(), "resumable") {
		t.Errorf("help does not tell about migrate: %s", help.String())
	}
}

// `gatehouse config generate --synapse-config` prints a configuration that
// loads, with Synapse's server name and what was not carried over.
func TestConfigGenerateFromSynapse(t *testing.T) {
	dir := t.TempDir()
	hs := filepath.Join(dir, "homeserver.yaml")
	if err := os.WriteFile(hs, []byte(`server_name: example.org
public_baseurl: https://matrix.example.org/
enable_registration: false
password_config: {pepper: "the pepper"}
email: {smtp_host: mail.example.org, smtp_port: 465, force_tls: true, notif_from: "Chat <chat@example.org>"}
allow_guest_access: true
oidc_providers:
  - {idp_id: keycloak, idp_name: Company SSO, issuer: "https://sso.example.org/realms/staff", client_id: synapse, client_secret: s3cret}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"config", "generate", "--synapse-config", hs}, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("generated configuration does not load: %v\n%s", err, out.String())
	}
	if cfg.Matrix.ServerName != "example.org" || cfg.PublicURL != "https://auth.example.org/" ||
		string(cfg.Passwords.BcryptPepper) != "the pepper" || cfg.SMTP.URL != "smtps://mail.example.org:465" ||
		cfg.Account.Registration != "closed" {
		t.Errorf("derived %+v", cfg)
	}
	if p, ok := cfg.Upstream.Provider("keycloak"); !ok || p.SynapseIdpID != "oidc-keycloak" || p.Issuer != "https://sso.example.org/realms/staff" {
		t.Errorf("the upstream provider was not carried over: %+v", cfg.Upstream.Providers)
	}
	for _, want := range []string{"synapse_idp_id: oidc-keycloak", "allow_guest_access", "Not carried over"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(errOut.String(), "not carried over") {
		t.Errorf("stderr %q", errOut.String())
	}
}

// The import's progress: a line redrawn in place on a terminal, with counts,
// percentage, rate and ETA; JSON lines otherwise.
func TestMigrateProgress(t *testing.T) {
	var out, errOut bytes.Buffer
	show := progressPrinter(&out, &errOut, true)
	show(synapse.Progress{Phase: "users", Done: 2500, Total: 10000, Rate: 1250, ETA: 6 * time.Second})
	show(synapse.Progress{Phase: "users", Done: 10000, Total: 10000, Rate: 1300, Final: true})
	got := errOut.String()
	for _, want := range []string{"\rusers", "2500 / 10000", "25.0%", "1250/s", "ETA 6s", "10000 / 10000", "100.0%", "done\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal progress lacks %q: %q", want, got)
		}
	}
	if out.Len() != 0 {
		t.Errorf("terminal progress wrote to stdout: %q", out.String())
	}
	out.Reset()
	errOut.Reset()
	show = progressPrinter(&out, &errOut, false)
	show(synapse.Progress{Phase: "sessions", Done: 10, Total: 20, Rate: 5, ETA: 2 * time.Second})
	var line struct {
		Progress synapse.Progress `json:"progress"`
	}
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || line.Progress.Phase != "sessions" || line.Progress.Done != 10 || line.Progress.ETA != 2*time.Second {
		t.Errorf("JSON progress %q: %v", out.String(), err)
	}
}
