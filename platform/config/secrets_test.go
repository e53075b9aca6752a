package config_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gatehouse.dev/platform/config"
)

// Two key-encryption keys, base64 of 32 bytes.
var (
	testKEK     = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	previousKEK = base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
)

func TestValidateSecretsAndNATS(t *testing.T) {
	split := func(c *config.Config) {
		c.Services.Endpoints = map[string]string{"accounts": "accounts:9090"}
		c.Internal.Secret = "0123456789abcdef0123456789abcdef"
	}
	external := func(c *config.Config) { c.NATS.URL = "nats://nats:4222" }
	tests := []struct {
		name   string
		change func(c *config.Config)
		want   string // "" means valid
	}{
		{"nothing configured, one process", func(c *config.Config) {}, ""},
		{"key", func(c *config.Config) { c.Secrets.EncryptionKey = config.Secret(testKEK) }, ""},
		{"key file", func(c *config.Config) { c.Secrets.EncryptionKeyFile = "/run/secrets/kek" }, ""},
		{"key and file", func(c *config.Config) {
			c.Secrets.EncryptionKey, c.Secrets.EncryptionKeyFile = config.Secret(testKEK), "/run/secrets/kek"
		}, "secrets.encryption_key: set either secrets.encryption_key or secrets.encryption_key_file, not both"},
		{"key not base64", func(c *config.Config) { c.Secrets.EncryptionKey = "correct horse battery staple!" }, "secrets.encryption_key: is not base64"},
		{"key too short", func(c *config.Config) {
			c.Secrets.EncryptionKey = config.Secret(base64.StdEncoding.EncodeToString(make([]byte, 16)))
		},
			"secrets.encryption_key: is 16 bytes once decoded, want 32"},
		{"rotation", func(c *config.Config) {
			c.Secrets.EncryptionKey, c.Secrets.PreviousKeys = config.Secret(testKEK), []config.Secret{config.Secret(previousKEK)}
		}, ""},
		{"previous key bad", func(c *config.Config) {
			c.Secrets.EncryptionKey, c.Secrets.PreviousKeys = config.Secret(testKEK), []config.Secret{"abc"}
		}, "secrets.previous_keys[0]: is 2 bytes once decoded"},
		{"previous key is the current one", func(c *config.Config) {
			c.Secrets.EncryptionKey, c.Secrets.PreviousKeys = config.Secret(testKEK), []config.Secret{config.Secret(testKEK)}
		}, "secrets.previous_keys[0]: is the current key"},
		{"previous keys without a current one", func(c *config.Config) { c.Secrets.PreviousKeyFiles = []string{"/old"} },
			"secrets.previous_keys: need a current key"},
		{"split deployment without a key", split, "secrets.encryption_key: must be set when services run in several processes"},
		{"one service of several without a key", func(c *config.Config) {
			c.Services.Run = []string{"notify"}
			c.Internal.Secret = "0123456789abcdef0123456789abcdef"
		}, "secrets.encryption_key: must be set when services run in several processes"},
		{"split deployment with a key", func(c *config.Config) { split(c); c.Secrets.EncryptionKeyFile = "/kek" }, ""},
		{"web alone needs no key", func(c *config.Config) { split(c); c.Services.Run = []string{"web"} }, ""},
		{"cluster without a key", func(c *config.Config) { external(c); c.NATS.Replicas = 3 }, "secrets.encryption_key: must be set with a NATS cluster"},
		{"external NATS, one process, no key", external, ""},

		{"listen on every address", func(c *config.Config) { c.NATS.Listen = "0.0.0.0:4222" }, ""},
		{"listen bad", func(c *config.Config) { c.NATS.Listen = "4222" }, `nats.listen: "4222" is not host:port`},
		{"listen with external NATS", func(c *config.Config) { external(c); c.NATS.Listen = "127.0.0.1:4222" }, "nats.listen: applies to the embedded server only"},
		{"user and password", func(c *config.Config) { c.NATS.User, c.NATS.Password = "gatehouse", "pw" }, ""},
		{"user without password", func(c *config.Config) { c.NATS.User = "gatehouse" }, "nats.password: must be set with nats.user"},
		{"password without user", func(c *config.Config) { c.NATS.Password = "pw" }, "nats.user: must be set with nats.password"},
		{"nkey", func(c *config.Config) { c.NATS.NkeySeedFile = "/seed" }, ""},
		{"creds and password", func(c *config.Config) {
			external(c)
			c.NATS.CredsFile, c.NATS.User, c.NATS.Password = "/gh.creds", "gatehouse", "pw"
		}, "nats: authenticate one way, not with nats.user/nats.password and nats.creds_file together"},
		{"nkey and creds", func(c *config.Config) { external(c); c.NATS.NkeySeedFile, c.NATS.CredsFile = "/seed", "/gh.creds" },
			"nats.nkey_seed_file and nats.creds_file"},
		{"URL credentials and password", func(c *config.Config) {
			c.NATS.URL, c.NATS.User, c.NATS.Password = "nats://u:p@nats:4222", "gatehouse", "pw"
		}, "credentials in nats.url"},
		{"creds with the embedded server", func(c *config.Config) { c.NATS.CredsFile = "/gh.creds" }, "nats.creds_file: needs an external NATS"},
		{"TLS with the embedded server", func(c *config.Config) { c.NATS.TLS.CAFile = "/ca.pem" }, "nats.tls: applies to an external NATS"},
		{"TLS", func(c *config.Config) {
			external(c)
			c.NATS.TLS = config.NATSTLS{CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem"}
			c.NATS.CredsFile = "/gh.creds"
		}, ""},
		{"TLS cert without key", func(c *config.Config) { external(c); c.NATS.TLS.CertFile = "/c.pem" }, "nats.tls: cert_file and key_file go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("Validate() = nil, want %q", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %q, want it to contain %q", err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), testKEK) || strings.Contains(err.Error(), "\"pw\"")) {
				t.Fatalf("the message repeats a secret: %v", err)
			}
		})
	}
}

func TestSecretsFromEnvAndFiles(t *testing.T) {
	dir := t.TempDir()
	currentFile, oldFile := filepath.Join(dir, "kek"), filepath.Join(dir, "old")
	os.WriteFile(currentFile, []byte(testKEK+"\n"), 0o600)
	os.WriteFile(oldFile, []byte(previousKEK), 0o600)
	third := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32))

	c, err := config.Load("", []string{
		"GATEHOUSE_SECRETS_ENCRYPTION_KEY_FILE=" + currentFile,
		"GATEHOUSE_SECRETS_PREVIOUS_KEYS=" + third + ", " + previousKEK,
		"GATEHOUSE_SECRETS_PREVIOUS_KEY_FILES=" + oldFile,
		"GATEHOUSE_NATS_URL=tls://nats:4222",
		"GATEHOUSE_NATS_USER=gatehouse", "GATEHOUSE_NATS_PASSWORD=nats-password-value",
		"GATEHOUSE_NATS_TLS_CA_FILE=/ca.pem", "GATEHOUSE_NATS_TLS_CERT_FILE=/c.pem", "GATEHOUSE_NATS_TLS_KEY_FILE=/k.pem",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.User != "gatehouse" || c.NATS.Password != "nats-password-value" || c.NATS.TLS != (config.NATSTLS{CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem"}) {
		t.Fatalf("nats = %#v", c.NATS)
	}
	current, previous, err := c.Secrets.Keys()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{2}, 32)}
	if !bytes.Equal(current, bytes.Repeat([]byte{1}, 32)) || fmt.Sprint(previous) != fmt.Sprint(want) {
		t.Fatalf("Keys() = %x, %x", current, previous)
	}

	// A key file that is not a key is an error naming the file, not its content.
	os.WriteFile(currentFile, []byte("hunter2"), 0o600)
	if _, _, err := c.Secrets.Keys(); err == nil || !strings.Contains(err.Error(), currentFile) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Keys() with a bad file: %v", err)
	}
	os.Remove(currentFile)
	if _, _, err := c.Secrets.Keys(); err == nil {
		t.Fatal("Keys() with a missing file succeeded")
	}
	if cur, prev, err := config.Default().Secrets.Keys(); cur != nil || prev != nil || err != nil {
		t.Fatalf("Keys() of nothing configured = %x, %x, %v", cur, prev, err)
	}
}

// The NATS password and the key-encryption keys never show in any printed
// form of the configuration.
func TestSecretsRedacted(t *testing.T) {
	c := config.Default()
	c.NATS.User, c.NATS.Password = "gatehouse", "nats-password-value"
	c.Secrets.EncryptionKey = config.Secret(testKEK)
	c.Secrets.PreviousKeys = []config.Secret{config.Secret(previousKEK)}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs, text bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("starting", "config", c)
	slog.New(slog.NewTextHandler(&text, nil)).Info("starting", "config", c, "nats", c.NATS, "secrets", c.Secrets)
	forms := map[string]string{
		"String": c.String(), "%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"nats %+v": fmt.Sprintf("%+v", c.NATS), "secrets %+v": fmt.Sprintf("%+v %#v", c.Secrets, c.Secrets),
		"json log": logs.String(), "text log": text.String(),
	}
	for name, out := range forms {
		for _, s := range []string{"nats-password-value", testKEK, previousKEK} {
			if strings.Contains(out, s) {
				t.Errorf("%s reveals %q:\n%s", name, s, out)
			}
		}
	}
	for _, want := range []string{`"nats_password":"[redacted]"`, `"secrets_encryption_key":"[redacted]"`, `"secrets_previous_keys":1`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("json log lacks %s:\n%s", want, logs.String())
		}
	}
	if string(c.Secrets.PreviousKeys[0]) != previousKEK {
		t.Error("Redacted changed the original")
	}
	// The YAML written for a config file keeps them.
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(writeFile(t, string(out)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.NATS.Password != c.NATS.Password || string(got.Secrets.EncryptionKey) != testKEK || len(got.Secrets.PreviousKeys) != 1 {
		t.Fatalf("YAML round trip lost secrets: %#v", got.Secrets)
	}
}
