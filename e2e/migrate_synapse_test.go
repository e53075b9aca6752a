package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/migrate/synapse/synapsetest"
	"gatehouse.dev/platform/testkit"
)

// `gatehouse migrate synapse --check` on a generated Synapse database, as an
// operator runs it: the report's findings, its formats and its exit codes.
func TestMigrateSynapseCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbURL := testkit.Postgres(t)
	ds, err := synapsetest.Generate(ctx, dbURL, synapsetest.Options{Users: 300, Pepper: "pepper"})
	if err != nil {
		t.Fatal(err)
	}
	hs := filepath.Join(t.TempDir(), "homeserver.yaml")
	if err := os.WriteFile(hs, []byte("server_name: example.org\npassword_config: {pepper: pepper}\n"+
		"oidc_providers: [{idp_id: github, client_id: x}, {idp_id: google, client_id: y}]\nsaml2_config: {sp_config: {}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GATEHOUSE_DATA_DIR="+dataDir(t), "GATEHOUSE_MATRIX_SERVER_NAME=example.org",
		"GATEHOUSE_BCRYPT_PEPPER=pepper")
	check := func(t *testing.T, env []string, extra ...string) (int, []map[string]any, string) {
		t.Helper()
		args := append([]string{"migrate", "synapse", "--check", "--synapse-database", dbURL, "--synapse-config", hs}, extra...)
		code, out, errOut := runCLI(t, env, args...)
		var lines []map[string]any
		if slices.Contains(extra, "json") {
			sc := bufio.NewScanner(strings.NewReader(out))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatalf("not JSON lines: %q: %v", sc.Text(), err)
				}
				lines = append(lines, m)
			}
		}
		return code, lines, out + errOut
	}
	findings := func(lines []map[string]any, severity string) map[string]bool {
		out := map[string]bool{}
		for _, l := range lines {
			if l["type"] == "finding" && l["severity"] == severity {
				out[l["code"].(string)] = true
			}
		}
		return out
	}

	t.Run("links to providers Gatehouse does not have yet stop it", func(t *testing.T) {
		code, lines, _ := check(t, env, "--format", "json")
		if errs := findings(lines, "error"); code != 10 || len(errs) != 1 || !errs["provider-not-configured"] {
			t.Fatalf("exit %d, errors %v", code, errs)
		}
	})
	t.Run("with --ignore-missing-auth-providers only warnings remain", func(t *testing.T) {
		code, lines, _ := check(t, env, "--format", "json", "--ignore-missing-auth-providers")
		warnings := findings(lines, "warning")
		if code != 11 || len(findings(lines, "error")) != 0 {
			t.Fatalf("exit %d, errors %v", code, findings(lines, "error"))
		}
		for _, w := range []string{"guest-users", "appservice-users", "non-email-threepids", "localpart-not-valid",
			"user-without-credentials", "provider-not-configured", "orphan-rows", "puppet-tokens"} {
			if !warnings[w] {
				t.Errorf("no %s warning: %v", w, warnings)
			}
		}
		last := lines[len(lines)-1]
		if last["type"] != "summary" || last["exit_code"] != float64(11) {
			t.Errorf("summary %v", last)
		}
		var users map[string]any
		for _, l := range lines {
			if l["type"] == "stream" && l["stream"] == "users" {
				users = l
			}
		}
		if users == nil || users["emitted"] != float64(ds.Expect.Emitted["users"]) {
			t.Errorf("users stream %v, want %d emitted", users, ds.Expect.Emitted["users"])
		}
	})
	t.Run("text for people", func(t *testing.T) {
		code, _, out := check(t, env, "--format", "text", "--ignore-missing-auth-providers")
		if code != 11 || !strings.Contains(out, "Warnings — read and decide") || !strings.Contains(out, "exit code 11") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		for _, secret := range []string{"syt_", "$2b$", "pepper\n"} {
			if strings.Contains(out, secret) {
				t.Errorf("the report shows %q", secret)
			}
		}
	})
	t.Run("another server name", func(t *testing.T) {
		other := append(env[:len(env):len(env)], "GATEHOUSE_MATRIX_SERVER_NAME=chat.example.org")
		code, lines, _ := check(t, other, "--format", "json", "--ignore-missing-auth-providers")
		if code != 10 || !findings(lines, "error")["server-name-mismatch"] {
			t.Fatalf("exit %d, errors %v", code, findings(lines, "error"))
		}
	})
}
