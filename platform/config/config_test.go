package config_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/platform/config"
)

// writeFile writes a config file into a temporary directory.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaultValidates(t *testing.T) {
	if err := config.Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	got, err := config.Load("", nil)
	if err != nil {
		t.Fatalf("Load(\"\", nil) = %v", err)
	}
	if !reflect.DeepEqual(got, config.Default()) {
		t.Errorf("Load without file or env = %#v, want defaults", got)
	}
}

func TestLoadFileThenEnv(t *testing.T) {
	path := writeFile(t, `
public_url: https://auth.example.org
http:
  addr: 0.0.0.0:8000
log:
  level: debug
nats:
  url: nats://n1:4222,nats://n2:4222
  replicas: 3
services:
  run: [web]
  endpoints:
    accounts: accounts:9090
`)
	env := []string{
		"GATEHOUSE_HTTP_ADDR=0.0.0.0:8443",
		"GATEHOUSE_LOG_FORMAT=json",
		"GATEHOUSE_DATABASE_MAX_CONNS=25",
		"GATEHOUSE_TRACE_SAMPLE_RATIO=0.25",
		"GATEHOUSE_ENDPOINT_TOKEN=dns:///token.internal:9090",
		"GATEHOUSE_MATRIX_SECRET=0123456789abcdef0123",
		"GATEHOUSE_BCRYPT_PEPPER=pepper from env",
		"GATEHOUSE_INTERNAL_SECRET=0123456789abcdef0123456789abcdef",
		"GATEHOUSE_DATA_DIR=", // empty counts as unset
		"HOME=/root",
	}
	c, err := config.Load(path, env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"public_url normalised from file", c.PublicURL, "https://auth.example.org/"},
		{"http.addr from env over file", c.HTTP.Addr, "0.0.0.0:8443"},
		{"log.level from file", c.Log.Level, "debug"},
		{"log.format from env", c.Log.Format, "json"},
		{"nats.replicas from file", c.NATS.Replicas, 3},
		{"database.max_conns from env", c.Database.MaxConns, 25},
		{"sample ratio from env", c.Telemetry.SampleRatio, 0.25},
		{"empty env leaves default", c.DataDir, "./data"},
		{"grpc.addr default", c.GRPC.Addr, "127.0.0.1:9090"},
		{"services.run from file", c.Services.Run, []string{"web"}},
		{"secret from env", string(c.Matrix.Secret), "0123456789abcdef0123"},
		{"bcrypt pepper from env", string(c.Passwords.BcryptPepper), "pepper from env"},
		{"endpoint from file", c.Endpoint("accounts"), "accounts:9090"},
		{"endpoint from env", c.Endpoint("token"), "dns:///token.internal:9090"},
		{"endpoint defaults to own grpc addr", c.Endpoint("notify"), "127.0.0.1:9090"},
		{"runs web", c.Runs("web"), true},
		{"does not run token", c.Runs("token"), false},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

func TestEndpointOfWildcardAddr(t *testing.T) {
	c := config.Default()
	for addr, want := range map[string]string{
		"0.0.0.0:9090":  "localhost:9090",
		":9090":         "localhost:9090",
		"[::]:9090":     "localhost:9090",
		"10.0.0.7:9090": "10.0.0.7:9090",
	} {
		c.GRPC.Addr = addr
		if got := c.Endpoint(config.ServiceAccounts); got != want {
			t.Errorf("grpc.addr %q: Endpoint = %q, want %q", addr, got, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		file  string // "" for no file
		env   []string
		wants []string
	}{
		{
			name:  "unknown key names key and line",
			file:  "log:\n  level: info\n  colour: true\n",
			wants: []string{`line 3: unknown key "colour"`},
		},
		{
			name:  "unknown top-level key",
			file:  "public_url: http://x/\nhttp_addr: 1\n",
			wants: []string{"line 2", "http_addr"},
		},
		{
			name:  "wrong type",
			file:  "nats:\n  replicas: three\n",
			wants: []string{"line 2", "three"},
		},
		{
			name:  "two documents",
			file:  "log:\n  level: info\n---\nlog:\n  level: debug\n",
			wants: []string{"more than one YAML document"},
		},
		{
			name:  "bad env numbers all reported with validation",
			env:   []string{"GATEHOUSE_NATS_REPLICAS=x", "GATEHOUSE_TRACE_SAMPLE_RATIO=half", "GATEHOUSE_LOG_LEVEL=loud"},
			wants: []string{`GATEHOUSE_NATS_REPLICAS: "x" is not an integer`, `GATEHOUSE_TRACE_SAMPLE_RATIO: "half" is not a number`, `log.level: "loud" is not one of`},
		},
		{
			name:  "endpoint env of unknown service",
			env:   []string{"GATEHOUSE_ENDPOINT_BILLING=billing:9090"},
			wants: []string{`GATEHOUSE_ENDPOINT_BILLING: "billing" is not a service`},
		},
		{
			name:  "missing file",
			file:  "-",
			wants: []string{"no such file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			switch tt.file {
			case "":
			case "-":
				path = filepath.Join(t.TempDir(), "absent.yaml")
			default:
				path = writeFile(t, tt.file)
			}
			_, err := config.Load(path, tt.env)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, want := range tt.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestEmptyFileGivesDefaults(t *testing.T) {
	c, err := config.Load(writeFile(t, "# nothing set\n"), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(c, config.Default()) {
		t.Errorf("got %#v, want defaults", c)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *config.Config)
		want   string // "" means valid
	}{
		{"public_url https with path", func(c *config.Config) { c.PublicURL = "https://example.org/auth/" }, ""},
		{"web.secret empty", func(c *config.Config) { c.Web.Secret = "" }, ""},
		{"web.secret 32 characters", func(c *config.Config) { c.Web.Secret = webSecret }, ""},
		{"web.secret long", func(c *config.Config) { c.Web.Secret = config.Secret(strings.Repeat("x", 128)) }, ""},
		{"web.secret 31 characters", func(c *config.Config) { c.Web.Secret = config.Secret(webSecret[1:]) }, "web.secret: is 31 characters, want at least 32"},
		{"web.secret one character", func(c *config.Config) { c.Web.Secret = "x" }, "web.secret: is 1 characters, want at least 32"},
		{"public_url empty", func(c *config.Config) { c.PublicURL = "" }, "public_url: must not be empty"},
		{"public_url relative", func(c *config.Config) { c.PublicURL = "/auth/" }, `public_url: scheme "" is not one of http, https`},
		{"public_url ftp", func(c *config.Config) { c.PublicURL = "ftp://example.org/" }, `public_url: scheme "ftp" is not one of http, https`},
		{"public_url no trailing slash", func(c *config.Config) { c.PublicURL = "https://example.org/auth" }, `public_url: "https://example.org/auth" must end with "/"`},
		{"public_url query", func(c *config.Config) { c.PublicURL = "https://example.org/?a=b" }, "must not have a query or fragment"},
		{"public_url credentials", func(c *config.Config) { c.PublicURL = "https://u:p@example.org/" }, "must not contain credentials"},
		{"data_dir empty", func(c *config.Config) { c.DataDir = "" }, "data_dir: must not be empty"},
		{"http.addr not host:port", func(c *config.Config) { c.HTTP.Addr = "abc" }, `http.addr: "abc" is not host:port`},
		{"grpc.addr bad port", func(c *config.Config) { c.GRPC.Addr = "localhost:http" }, `grpc.addr: "localhost:http" does not have a port number 0..65535`},
		{"ops.addr port too big", func(c *config.Config) { c.Ops.Addr = ":70000" }, `ops.addr: ":70000" does not have a port number`},
		{"ops.addr same as http", func(c *config.Config) { c.Ops.Addr = c.HTTP.Addr }, `ops.addr: "127.0.0.1:8080" is also http.addr`},
		{"port 0 may repeat", func(c *config.Config) {
			c.HTTP.Addr, c.GRPC.Addr, c.Ops.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		}, ""},
		{"database.url postgres", func(c *config.Config) { c.Database.URL = "postgres://gh:pw@db:5432/gatehouse?sslmode=require" }, ""},
		{"database.url socket", func(c *config.Config) { c.Database.URL = "postgresql:///gatehouse?host=/run/postgresql" }, ""},
		{"database.url mysql", func(c *config.Config) { c.Database.URL = "mysql://u:hunter2@db/x" }, `database.url: scheme "mysql" is not one of postgres, postgresql`},
		{"database.max_conns 0", func(c *config.Config) { c.Database.MaxConns = 0 }, "database.max_conns: 0 is not between 1 and 1000"},
		{"nats.url list", func(c *config.Config) { c.NATS.URL = "nats://a:4222, tls://b:4222" }, ""},
		{"nats.url http", func(c *config.Config) { c.NATS.URL = "http://a:4222" }, `nats.url: scheme "http" is not one of nats, tls, ws, wss`},
		{"nats.replicas 6", func(c *config.Config) { c.NATS.URL, c.NATS.Replicas = "nats://a", 6 }, "nats.replicas: 6 is not between 1 and 5"},
		{"nats.replicas 0", func(c *config.Config) { c.NATS.Replicas = 0 }, "nats.replicas: 0 is not between 1 and 5"},
		{"nats.replicas embedded", func(c *config.Config) { c.NATS.Replicas = 3 }, "nats.replicas: must be 1 with the embedded server"},
		{"log.level", func(c *config.Config) { c.Log.Level = "trace" }, `log.level: "trace" is not one of debug, info, warn, error`},
		{"log.format", func(c *config.Config) { c.Log.Format = "xml" }, `log.format: "xml" is not one of text, json`},
		{"telemetry.traces", func(c *config.Config) { c.Telemetry.Traces = "jaeger" }, `telemetry.traces: "jaeger" is not one of none, stdout, otlp`},
		{"telemetry.metrics", func(c *config.Config) { c.Telemetry.Metrics = "statsd" }, `telemetry.metrics`},
		{"otlp protocol", func(c *config.Config) { c.Telemetry.OTLP.Protocol = "http/json" }, `telemetry.otlp.protocol`},
		{"otlp headers", func(c *config.Config) { c.Telemetry.OTLP.Headers = "no-equals-sign" }, `telemetry.otlp.headers`},
		{"otlp interval", func(c *config.Config) { c.Telemetry.OTLP.MetricsInterval = 0 }, `telemetry.otlp.metrics_interval`},
		{"otlp everything", func(c *config.Config) {
			c.Telemetry.Traces, c.Telemetry.Metrics = "otlp", "both"
			c.Telemetry.OTLP = config.OTLP{Endpoint: "collector:4318", Protocol: "http/protobuf", Headers: "api-key=s3cret,x=%20y", MetricsInterval: time.Second}
		}, ""},
		{"telemetry.traces stdout", func(c *config.Config) { c.Telemetry.Traces = "stdout" }, ""},
		{"sample ratio", func(c *config.Config) { c.Telemetry.SampleRatio = 1.5 }, "telemetry.sample_ratio: 1.5 is not between 0 and 1"},
		{"argon2 memory weak", func(c *config.Config) { c.Passwords.Argon2.MemoryKiB = 4096 }, "passwords.argon2.memory_kib: 4096 is weaker than the OWASP minimum of 19456"},
		{"argon2 memory huge", func(c *config.Config) { c.Passwords.Argon2.MemoryKiB = 8 << 20 }, "passwords.argon2.memory_kib: 8388608 is above the maximum of 4194304"},
		{"argon2 iterations weak", func(c *config.Config) { c.Passwords.Argon2.Iterations = 1 }, "passwords.argon2.iterations: 1 is weaker than the OWASP minimum of 2"},
		{"argon2 parallelism weak", func(c *config.Config) { c.Passwords.Argon2.Parallelism = 0 }, "passwords.argon2.parallelism: 0 is weaker than the OWASP minimum of 1"},
		{"argon2 stronger", func(c *config.Config) {
			c.Passwords.Argon2 = config.Argon2{MemoryKiB: 65536, Iterations: 3, Parallelism: 4}
		}, ""},
		{"server_name with port", func(c *config.Config) { c.Matrix.ServerName = "matrix.example.org:8448" }, ""},
		{"server_name ipv6", func(c *config.Config) { c.Matrix.ServerName = "[::1]:8448" }, ""},
		{"server_name url", func(c *config.Config) { c.Matrix.ServerName = "https://example.org" }, `matrix.server_name: "https://example.org" is not a server name`},
		{"server_name empty", func(c *config.Config) { c.Matrix.ServerName = "" }, "matrix.server_name: must not be empty"},
		{"homeserver_url", func(c *config.Config) { c.Matrix.HomeserverURL = "synapse:8008" }, "matrix.homeserver_url: "},
		{"secret short", func(c *config.Config) { c.Matrix.Secret = "hunter2" }, "matrix.secret: is 7 characters, want at least 16"},
		{"services none", func(c *config.Config) { c.Services.Run = nil }, "services.run: must name at least one service"},
		{"services unknown", func(c *config.Config) { c.Services.Run = []string{"web", "billing"} }, `services.run: "billing" is not a service`},
		{"services twice", func(c *config.Config) { c.Services.Run = []string{"web", "token", "web"} }, `services.run: "web" is listed twice`},
		{"endpoint unknown service", func(c *config.Config) { c.Services.Endpoints = map[string]string{"billing": "b:1"} }, `services.endpoints.billing: "billing" is not a service`},
		{"endpoint bad", func(c *config.Config) { c.Services.Endpoints = map[string]string{"accounts": "accounts"} }, `services.endpoints.accounts: "accounts" is not host:port`},
		{"endpoint no host", func(c *config.Config) { c.Services.Endpoints = map[string]string{"accounts": ":9090"} }, `services.endpoints.accounts: ":9090" has no host`},
		{"endpoint unix", func(c *config.Config) {
			c.Services.Endpoints = map[string]string{"accounts": "unix:///run/gh.sock"}
			c.Internal.Secret = "0123456789abcdef0123456789abcdef"
			c.Secrets.EncryptionKey = config.Secret(testKEK)
		}, ""},
		{"split deployment without a shared secret", func(c *config.Config) { c.Services.Endpoints = map[string]string{"accounts": "accounts:9090"} }, "internal.secret"},
		{"split deployment with mutual TLS", func(c *config.Config) {
			c.Services.Run = []string{"token"}
			c.GRPC.TLS = config.GRPCTLS{CertFile: "token.pem", KeyFile: "token-key.pem", CAFile: "ca.pem"}
			c.Secrets.EncryptionKey = config.Secret(testKEK)
		}, ""},
		{"short internal secret", func(c *config.Config) { c.Internal.Secret = "short" }, "internal.secret"},
		{"TLS key without certificate", func(c *config.Config) { c.GRPC.TLS.KeyFile = "k.pem" }, "grpc.tls"},
		{"CA without certificate", func(c *config.Config) { c.GRPC.TLS.CAFile = "ca.pem" }, "grpc.tls.ca_file"},
		{"request timeout too short", func(c *config.Config) { c.Timeouts.Request = time.Millisecond }, "timeouts.request"},
		{"request timeout too long", func(c *config.Config) { c.Timeouts.Request = time.Hour }, "timeouts.request"},
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
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := config.Default()
	c.HTTP.Addr = "abc"
	c.Log.Level = "loud"
	c.Passwords.Argon2.MemoryKiB = 1024
	c.Database.URL = "mysql://root:hunter2@db/x"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 4 {
		t.Errorf("got %d problems, want 4:\n%v", len(lines), err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("validation message leaks the database password: %v", err)
	}
}

func TestRedaction(t *testing.T) {
	c := config.Default()
	c.Matrix.Secret = "matrix-shared-secret-value"
	c.Passwords.BcryptPepper = "synapse-pepper-value"
	c.Database.URL = "postgres://gatehouse:db-password@db:5432/gh?password=query-password"
	c.NATS.URL = "nats://nats-token@n1:4222,nats://user:nats-password@n2:4222"
	c.NATS.Replicas = 3
	c.Secrets.EncryptionKey = config.Secret(testKEK)
	c.Secrets.PreviousKeys = []config.Secret{config.Secret(previousKEK)}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	secrets := []string{"matrix-shared-secret-value", "synapse-pepper-value", "db-password", "query-password", "nats-token", "nats-password", testKEK, previousKEK}

	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("starting", "config", c)
	var text bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("starting", "config", c, "matrix", c.Matrix)

	forms := map[string]string{
		"String":    c.String(),
		"%v":        fmt.Sprintf("%v", c),
		"%+v":       fmt.Sprintf("%+v", c),
		"%#v":       fmt.Sprintf("%#v", c),
		"matrix %v": fmt.Sprintf("%+v", c.Matrix),
		"secret %s": fmt.Sprintf("%s %v %#v", c.Matrix.Secret, c.Matrix.Secret, c.Matrix.Secret),
		"json log":  logs.String(),
		"text log":  text.String(),
	}
	for name, out := range forms {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s reveals %q:\n%s", name, s, out)
			}
		}
	}
	for _, want := range []string{"[redacted]", "postgres://gatehouse:xxxxx@db:5432/gh", "nats://xxxxx@n1:4222"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("json log lacks %q:\n%s", want, logs.String())
		}
	}
	if string(c.Matrix.Secret) != "matrix-shared-secret-value" {
		t.Errorf("Redacted changed the original config")
	}
	if got := config.Default().Redacted().Matrix.Secret; got != "" {
		t.Errorf("an empty secret redacts to %q, want empty", got)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	want := config.Default()
	want.PublicURL = "https://auth.example.org/"
	want.Matrix.Secret = "0123456789abcdef-secret"
	want.Services.Endpoints = map[string]string{"accounts": "accounts:9090"}
	want.Internal.Secret = "0123456789abcdef0123456789abcdef"
	want.Secrets.EncryptionKey = config.Secret(testKEK)
	want.Passwords.BcryptPepper = "a pepper: with YAML's characters #"
	out, err := want.YAML()
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	for _, note := range []string{"# Env: GATEHOUSE_HTTP_ADDR", "# Env: GATEHOUSE_ENDPOINT_<SERVICE>", "OWASP"} {
		if !bytes.Contains(out, []byte(note)) {
			t.Errorf("template lacks %q", note)
		}
	}
	got, err := config.Load(writeFile(t, string(out)), nil)
	if err != nil {
		t.Fatalf("Load of generated YAML: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %#v\nwant %#v", got, want)
	}
	if string(got.Matrix.Secret) != "0123456789abcdef-secret" {
		t.Errorf("YAML did not keep the secret for the config file")
	}
}
