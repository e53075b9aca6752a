package host

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gatehouse.dev/platform/config"
)

// Without a configured key, one is generated under the data dir on first
// start (said at INFO, never shown) and used again after a restart; a
// configured key replaces it, and the forgotten generated key is warned about.
func TestKeyringGeneratedThenConfigured(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	first, err := openKeyring(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, KEKFile)
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", info, err)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(logs.String(), "generated the key-encryption key") || !strings.Contains(logs.String(), path) {
		t.Fatalf("the generation is not logged with its file:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), strings.TrimSpace(string(raw))) {
		t.Fatal("the log shows the key")
	}

	logs.Reset()
	again, err := openKeyring(cfg, logger)
	if err != nil || again.CurrentID() != first.CurrentID() {
		t.Fatalf("after a restart: %v, %v", again, err)
	}
	if strings.Contains(logs.String(), "generated") {
		t.Fatalf("a restart generated a key again:\n%s", logs.String())
	}

	// Configured: the generated key is not used, and not forgotten silently.
	cfg.Secrets.EncryptionKey = config.Secret(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32)))
	logs.Reset()
	configured, err := openKeyring(cfg, logger)
	if err != nil || configured.CurrentID() == first.CurrentID() {
		t.Fatalf("configured keyring: %v, %v", configured, err)
	}
	if !strings.Contains(logs.String(), "secrets.previous_key_files") || !strings.Contains(logs.String(), first.CurrentID()) {
		t.Fatalf("no warning about the generated key:\n%s", logs.String())
	}
	// With the generated file as a previous key, both open and no warning.
	cfg.Secrets.PreviousKeyFiles = []string{path}
	logs.Reset()
	rotating, err := openKeyring(cfg, logger)
	if err != nil || len(rotating.IDs()) != 2 || rotating.IDs()[1] != first.CurrentID() {
		t.Fatalf("rotating keyring: %v, %v", rotating.IDs(), err)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("warned although the generated key is configured:\n%s", logs.String())
	}
}

// A service's own binary runs that service alone: the web binary of a split
// deployment needs no key-encryption key, the token binary does.
func TestServiceBinaryRunsItsServiceAlone(t *testing.T) {
	t.Setenv("GATEHOUSE_ENDPOINT_ACCOUNTS", "accounts:9090")
	t.Setenv("GATEHOUSE_LOG_LEVEL", "loud") // invalid, so Main stops after validation
	for name, wantKeyProblem := range map[string]bool{"web": false, "token": true, "gatehouse": true} {
		var stderr bytes.Buffer
		if code := Main(name, nil, &stderr, nil); code != 2 {
			t.Fatalf("%s: exit %d, want 2:\n%s", name, code, stderr.String())
		}
		if got := strings.Contains(stderr.String(), "secrets.encryption_key"); got != wantKeyProblem {
			t.Errorf("%s: asks for a key-encryption key: %v, want %v:\n%s", name, got, wantKeyProblem, stderr.String())
		}
	}
}
