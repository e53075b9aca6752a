// Package config is the configuration of a Gatehouse deployment: one YAML
// file, then GATEHOUSE_* environment variables over it, validated once at
// start with every problem reported together.
//
// Each setting's YAML key, environment variable and meaning are listed in one
// table (see fields), from which both the environment overrides and the
// annotated template of YAML are made.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"gatehouse.dev/platform/clientaddr"
)

// The services a Gatehouse process can run.
const (
	ServiceAuthorize = "authorize"
	ServiceToken     = "token"
	ServiceAccounts  = "accounts"
	ServiceNotify    = "notify"
	ServiceWeb       = "web"
	// ServiceAdmin is the admin API (/api/admin/v1), which holds no
	// credential of its own: it forwards its callers' bearer tokens.
	ServiceAdmin = "admin"
)

// AllServices returns the names of every service, in start order.
func AllServices() []string {
	return []string{ServiceAuthorize, ServiceToken, ServiceAccounts, ServiceNotify, ServiceWeb, ServiceAdmin}
}

// Config is the configuration of one Gatehouse process. Environment variable
// names are given next to each field; Default has the defaults.
type Config struct {
	// PublicURL is the base URL users and clients reach Gatehouse at; it is the
	// OIDC issuer and always ends with "/" (GATEHOUSE_PUBLIC_URL).
	PublicURL string `yaml:"public_url"`
	// DataDir holds the embedded database and NATS store (GATEHOUSE_DATA_DIR).
	DataDir string `yaml:"data_dir"`
	// HTTP is the public HTTP listener (GATEHOUSE_HTTP_ADDR) and the proxies in front of it.
	HTTP HTTP `yaml:"http"`
	// GRPC is the gRPC listener (GATEHOUSE_GRPC_ADDR) and its TLS.
	GRPC GRPC `yaml:"grpc"`
	// Ops is the health and metrics listener (GATEHOUSE_OPS_ADDR).
	Ops Ops `yaml:"ops"`
	// Database is the PostgreSQL holding the projections.
	Database Database `yaml:"database"`
	// NATS is the JetStream holding the events.
	NATS NATS `yaml:"nats"`
	// Log configures the process log.
	Log Log `yaml:"log"`
	// Telemetry configures traces.
	Telemetry Telemetry `yaml:"telemetry"`
	// Passwords configures password hashing.
	Passwords Passwords `yaml:"passwords"`
	// Matrix is the homeserver Gatehouse authenticates for.
	Matrix Matrix `yaml:"matrix"`
	// Services says which services this process runs and where the others are.
	Services Services `yaml:"services"`
	// OAuth configures tokens, signing keys and static clients.
	OAuth OAuth `yaml:"oauth"`
	// SMTP is the mail server the notify service sends through.
	SMTP SMTP `yaml:"smtp"`
	// Email configures the envelope of the emails Gatehouse sends.
	Email Email `yaml:"email"`
	// Branding names the service in emails and pages.
	Branding Branding `yaml:"branding"`
	// Account configures registration and sign-in.
	Account Account `yaml:"account"`
	// Web configures the web service's pages.
	Web Web `yaml:"web"`
	// Internal configures how Gatehouse's services authenticate to each other.
	Internal Internal `yaml:"internal"`
	// RateLimits are the limits of the public endpoints (abuse.go).
	RateLimits RateLimits `yaml:"rate_limits"`
	// Captcha is the CAPTCHA asked at registration (abuse.go).
	Captcha Captcha `yaml:"captcha"`
	// Timeouts bounds how long work on behalf of a caller may take.
	Timeouts Timeouts `yaml:"timeouts"`
	// Secrets configures the keys that seal the secrets kept in events.
	Secrets Secrets `yaml:"secrets"`
	// Upstream configures sign-in with upstream identity providers (upstream.go).
	Upstream Upstream `yaml:"upstream"`
	// Pending bounds what anonymous requests leave behind (pending.go).
	Pending Pending `yaml:"pending"`
	// Audit configures the audit trail's retention (audit.go).
	Audit Audit `yaml:"audit"`
}

// Timeouts bounds the work a request causes.
type Timeouts struct {
	// Request is the server-side deadline of every public HTTP request and of
	// every gRPC call that carries no deadline of its own: waiting for a
	// projection, calls to other services, NATS publishes, homeserver calls
	// all end with it, and the caller gets a 503 (UNAVAILABLE) instead of a
	// hang (GATEHOUSE_REQUEST_TIMEOUT, 1s..5m; 15s by default).
	Request time.Duration `yaml:"request"`
}

// Ops is the operations listener: health, readiness, metrics and, when
// asked, the Go profiler.
type Ops struct {
	// Addr is host:port; port 0 picks a free port (GATEHOUSE_OPS_ADDR).
	Addr string `yaml:"addr"`
	// Pprof serves the Go runtime's profiles under /debug/pprof/ on this
	// listener (GATEHOUSE_OPS_PPROF; off by default): CPU, heap, allocations,
	// goroutines, mutex and block contention.
	Pprof bool `yaml:"pprof"`
	// GCPercent is the Go garbage collector's target (GATEHOUSE_GC_PERCENT;
	// GOGC's meaning: the heap grows this many percent over what is live
	// before a collection): higher spends memory to collect less often.
	// 0 leaves the runtime's own (GOGC, or 100); a GOGC in the environment
	// wins over it. GOMEMLIMIT bounds the heap whatever it is.
	GCPercent int `yaml:"gc_percent"`
	// GCHeadroomMiB is how far, at most, the heap may grow over live data
	// between collections while the process allocates fast
	// (GATEHOUSE_GC_HEADROOM_MIB; 256 by default, 0 turns it off; never more
	// than a quarter of GOMEMLIMIT or the container's limit): under
	// load the collector's target rises so that collections come about
	// twice a second instead of dozens of times, and falls back to
	// GCPercent at rest. A GOGC in the environment turns it off.
	GCHeadroomMiB int `yaml:"gc_headroom_mib"`
}

// GRPC is the gRPC listener: services, the admin CLI and homeservers call it.
type GRPC struct {
	// Addr is host:port; port 0 picks a free port (GATEHOUSE_GRPC_ADDR).
	Addr string `yaml:"addr"`
	// TLS, when its certificate is set, serves and calls gRPC over TLS.
	TLS GRPCTLS `yaml:"tls"`
}

// GRPCTLS names the PEM files of gRPC's TLS. The certificate is served to
// callers and presented to other services as this process's client
// certificate; its URI SANs urn:gatehouse:caller:<service> say which services
// it may act as (mutual TLS).
type GRPCTLS struct {
	// CertFile is this process's certificate chain (GATEHOUSE_GRPC_TLS_CERT_FILE).
	CertFile string `yaml:"cert_file"`
	// KeyFile is its private key (GATEHOUSE_GRPC_TLS_KEY_FILE).
	KeyFile string `yaml:"key_file"`
	// CAFile holds the CA certificates that sign the certificates of other
	// services and of client certificates (GATEHOUSE_GRPC_TLS_CA_FILE).
	CAFile string `yaml:"ca_file"`
}

// Enabled reports whether gRPC runs over TLS.
func (t GRPCTLS) Enabled() bool { return t.CertFile != "" }

// Internal configures service-to-service authentication.
type Internal struct {
	// Secret derives the gRPC credentials of each service and of the admin
	// CLI, at least 32 characters (GATEHOUSE_INTERNAL_SECRET). Every process
	// of a deployment is given the same one. Empty on a single machine: a
	// secret is generated under data_dir/secrets on first start (the admin
	// CLI reads it there).
	Secret Secret `yaml:"secret"`
}

// Database configures PostgreSQL.
type Database struct {
	// URL is a postgres:// URL; empty runs a private cluster under the data
	// directory (GATEHOUSE_DATABASE_URL).
	URL string `yaml:"url"`
	// MaxConns bounds the connection pool (GATEHOUSE_DATABASE_MAX_CONNS).
	MaxConns int `yaml:"max_conns"`
}

// NATS configures the event store.
type NATS struct {
	// URL lists nats:// servers, comma-separated; empty runs an embedded
	// server under the data directory (GATEHOUSE_NATS_URL).
	URL string `yaml:"url"`
	// Replicas is the JetStream replication factor, 1..5 (GATEHOUSE_NATS_REPLICAS).
	Replicas int `yaml:"replicas"`
	// Listen is host:port the embedded server listens on; empty: 127.0.0.1
	// on a free port, so only this machine can connect (GATEHOUSE_NATS_LISTEN).
	Listen string `yaml:"listen"`
	// User and Password authenticate to NATS; with the embedded server, they
	// are the credentials it requires (GATEHOUSE_NATS_USER, GATEHOUSE_NATS_PASSWORD).
	User     string `yaml:"user"`
	Password Secret `yaml:"password"`
	// NkeySeedFile holds an nkey seed ("SU…") to authenticate with; with the
	// embedded server, the server trusts its public key (GATEHOUSE_NATS_NKEY_SEED_FILE).
	NkeySeedFile string `yaml:"nkey_seed_file"`
	// CredsFile is a .creds file (user JWT and nkey seed) for an external NATS
	// run with accounts (GATEHOUSE_NATS_CREDS_FILE).
	CredsFile string `yaml:"creds_file"`
	// TLS configures TLS to an external NATS.
	TLS NATSTLS `yaml:"tls"`
}

// NATSTLS configures TLS to an external NATS server.
type NATSTLS struct {
	// CAFile is the PEM bundle the server's certificate must chain to; TLS is
	// required when set (GATEHOUSE_NATS_TLS_CA_FILE).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are this client's certificate and key, for servers
	// that verify clients (mutual TLS) (GATEHOUSE_NATS_TLS_CERT_FILE, GATEHOUSE_NATS_TLS_KEY_FILE).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Log configures the process log.
type Log struct {
	// Level is debug, info, warn or error (GATEHOUSE_LOG_LEVEL).
	Level string `yaml:"level"`
	// Format is text or json (GATEHOUSE_LOG_FORMAT).
	Format string `yaml:"format"`
}

// Telemetry configures traces and metrics.
type Telemetry struct {
	// Traces is the trace exporter: none, stdout or otlp (GATEHOUSE_TRACES).
	Traces string `yaml:"traces"`
	// SampleRatio is the share of new traces sampled, 0..1 (GATEHOUSE_TRACE_SAMPLE_RATIO).
	SampleRatio float64 `yaml:"sample_ratio"`
	// Metrics is prometheus (served on the ops listener's /metrics), otlp
	// (pushed) or both (GATEHOUSE_METRICS).
	Metrics string `yaml:"metrics"`
	// OTLP says where the otlp exporters send; what is left empty comes from
	// the standard OTEL_EXPORTER_OTLP_* variables.
	OTLP OTLP `yaml:"otlp"`
}

// OTLP configures export to an OpenTelemetry collector.
type OTLP struct {
	// Endpoint is host:port for grpc, a URL for http/protobuf (GATEHOUSE_OTLP_ENDPOINT).
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc or http/protobuf (GATEHOUSE_OTLP_PROTOCOL).
	Protocol string `yaml:"protocol"`
	// Headers are sent with every export, "key=value,key2=value2" as in
	// OTEL_EXPORTER_OTLP_HEADERS; never logged (GATEHOUSE_OTLP_HEADERS).
	Headers Secret `yaml:"headers"`
	// Insecure exports without TLS (GATEHOUSE_OTLP_INSECURE).
	Insecure bool `yaml:"insecure"`
	// CAFile holds the CA certificates of the collector (GATEHOUSE_OTLP_CA_FILE).
	CAFile string `yaml:"ca_file"`
	// MetricsInterval is how often metrics are pushed (GATEHOUSE_OTLP_METRICS_INTERVAL, 1s..1h).
	MetricsInterval time.Duration `yaml:"metrics_interval"`
}

// Passwords configures password hashing.
type Passwords struct {
	// Argon2 holds the argon2id cost parameters.
	Argon2 Argon2 `yaml:"argon2"`
	// MinStrengthBits is the least estimated strength, in bits, of a new password
	// chosen on the pages (GATEHOUSE_PASSWORD_MIN_STRENGTH_BITS, 20..128; 40 by default).
	MinStrengthBits int `yaml:"min_strength_bits"`
	// BcryptPepper is Synapse's password_config.pepper: bcrypt hashes imported
	// from Synapse were made of the password with it appended, so verifying
	// them needs it (GATEHOUSE_BCRYPT_PEPPER; empty: none). Never logged.
	BcryptPepper Secret `yaml:"bcrypt_pepper"`
}

// Argon2 holds argon2id cost parameters; the OWASP minimum is m=19456 KiB, t=2, p=1.
type Argon2 struct {
	// MemoryKiB is the memory cost in KiB (GATEHOUSE_ARGON2_MEMORY_KIB).
	MemoryKiB int `yaml:"memory_kib"`
	// Iterations is the time cost (GATEHOUSE_ARGON2_ITERATIONS).
	Iterations int `yaml:"iterations"`
	// Parallelism is the number of lanes (GATEHOUSE_ARGON2_PARALLELISM).
	Parallelism int `yaml:"parallelism"`
}

// Matrix configures the homeserver Gatehouse serves.
type Matrix struct {
	// ServerName is the homeserver's server name (GATEHOUSE_MATRIX_SERVER_NAME).
	ServerName string `yaml:"server_name"`
	// HomeserverURL is the homeserver's client-server API base URL
	// (GATEHOUSE_MATRIX_HOMESERVER_URL). With Secret set, users and devices
	// are provisioned there through its /_synapse/mas/ API; empty (the
	// default), nothing is provisioned.
	HomeserverURL string `yaml:"homeserver_url"`
	// Secret is shared with the homeserver to authenticate it (GATEHOUSE_MATRIX_SECRET).
	Secret Secret `yaml:"secret"`
	// CompatAdminScope lets compat logins (m.login.password, m.login.token)
	// of administrators carry urn:synapse:admin:* (GATEHOUSE_MATRIX_COMPAT_ADMIN_SCOPE).
	// Off by default, as in MAS: admin access goes through OAuth consent.
	CompatAdminScope bool `yaml:"compat_admin_scope"`
}

// Services says which services run in this process and how to reach the rest.
type Services struct {
	// Run lists the services this process runs (GATEHOUSE_SERVICES, comma-separated).
	Run []string `yaml:"run"`
	// Endpoints maps a service name to its gRPC target for split deployments
	// (GATEHOUSE_ENDPOINT_<SERVICE>, e.g. GATEHOUSE_ENDPOINT_ACCOUNTS).
	// A service without one is reached at this process's own gRPC address.
	Endpoints map[string]string `yaml:"endpoints"`
}

// SMTP configures outgoing email.
type SMTP struct {
	// URL is smtp://user:password@host:port (STARTTLS whenever the server
	// offers it; port 587 by default) or smtps://user:password@host:port
	// (implicit TLS; port 465 by default). Empty writes emails to
	// data_dir/outbox (logging only that it did) instead of sending them (GATEHOUSE_SMTP_URL).
	URL string `yaml:"url"`
}

// Email configures the envelope of outgoing email.
type Email struct {
	// From is the sender, "Name <address>" or a bare address; required with an
	// SMTP URL (GATEHOUSE_EMAIL_FROM).
	From string `yaml:"from"`
	// ReplyTo is where replies go; empty for none (GATEHOUSE_EMAIL_REPLY_TO).
	ReplyTo string `yaml:"reply_to"`
}

// Branding names the deployment to its users.
type Branding struct {
	// ServiceName appears in email subjects and bodies (GATEHOUSE_BRANDING_SERVICE_NAME).
	ServiceName string `yaml:"service_name"`
	// TermsURI, when set, is linked on the pages and must be accepted to create an account.
	TermsURI string `yaml:"terms_uri"`
	// PolicyURI, when set, is the privacy policy linked on the pages.
	PolicyURI string `yaml:"policy_uri"`
	// LogoURI, when set, is an https image shown next to the service name.
	LogoURI string `yaml:"logo_uri"`
}

// Account configures what people may do with their accounts.
type Account struct {
	// Registration is open, token (a registration token is required) or closed
	// (GATEHOUSE_REGISTRATION). Administrators can always add users.
	Registration string `yaml:"registration"`
	// LoginWithEmail lets people sign in with an email address instead of their username.
	LoginWithEmail bool `yaml:"login_with_email"`
	// SecondFactor is the server's second-factor policy: optional (people
	// may set one up), required_for_admins or required
	// (GATEHOUSE_SECOND_FACTOR).
	SecondFactor string `yaml:"second_factor"`
	// StepUpWindow is how recent an authentication must be for a sensitive
	// action (changing the password, emails or factors, deactivating,
	// approving a cross-signing reset) (GATEHOUSE_STEP_UP_WINDOW).
	StepUpWindow time.Duration `yaml:"step_up_window"`
}

// Web configures the web service.
type Web struct {
	// Secret is shared by every web replica; the keys of form (CSRF) tokens and
	// of compat SSO confirmations are derived from it. At least
	// minWebSecretLen characters; empty, each process picks a random one at
	// start (GATEHOUSE_WEB_SECRET).
	Secret Secret `yaml:"secret"`
}

// minWebSecretLen is the shortest accepted web secret.
const minWebSecretLen = 32

// checkWebSecret accepts an empty web secret or one of at least minWebSecretLen characters.
func checkWebSecret(s Secret) error {
	if n := len(s); n > 0 && n < minWebSecretLen {
		return fmt.Errorf("is %d characters, want at least %d (or empty for a random secret per process)", n, minWebSecretLen)
	}
	return nil
}

// Default returns the configuration of a single-process development deployment.
func Default() Config {
	return Config{
		PublicURL: "http://localhost:8080/",
		DataDir:   "./data",
		HTTP:      HTTP{Addr: "127.0.0.1:8080", TrustedProxies: clientaddr.DefaultTrustedProxies(), ForwardedHeader: "x-forwarded-for"},
		GRPC:      GRPC{Addr: "127.0.0.1:9090"},
		Ops:       Ops{Addr: "127.0.0.1:8081", GCHeadroomMiB: 256},
		Database:  Database{MaxConns: 10},
		NATS:      NATS{Replicas: 1},
		Log:       Log{Level: "info", Format: "text"},
		Telemetry: Telemetry{Traces: "none", SampleRatio: 1, Metrics: "prometheus", OTLP: OTLP{Protocol: "grpc", MetricsInterval: time.Minute}},
		Passwords: Passwords{Argon2: Argon2{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}, MinStrengthBits: 40},
		Matrix: Matrix{
			ServerName: "localhost",
		},
		Services: Services{
			Run:       AllServices(),
			Endpoints: map[string]string{},
		},
		OAuth:    OAuth{AccessTokenTTL: 5 * time.Minute, RefreshReuseGrace: 10 * time.Second, ActivityFlushInterval: 5 * time.Minute, CompactSessions: true},
		Branding: Branding{ServiceName: "Gatehouse"},
		Account:  Account{Registration: "open", SecondFactor: "optional", StepUpWindow: 5 * time.Minute},
		Timeouts: Timeouts{Request: 15 * time.Second},

		RateLimits: defaultRateLimits(),
		Pending:    defaultPending(),
		Audit:      Audit{Retention: DefaultAuditRetention},
	}
}

// Load reads the YAML file at path (none when path is empty) over the
// defaults, applies the GATEHOUSE_* variables of environ ("KEY=value" as
// os.Environ returns) over that, normalises and validates the result. Unknown
// YAML keys are errors. The error lists every problem found.
func Load(path string, environ []string) (Config, error) {
	c := Default()
	if path != "" {
		if err := c.readFile(path); err != nil {
			return Config{}, err
		}
	}
	envErr := c.applyEnv(environ)
	c = c.normalized()
	if err := errors.Join(envErr, c.Validate()); err != nil {
		return Config{}, err
	}
	return c, nil
}

// readFile decodes the YAML file at path over c.
func (c *Config) readFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return yamlError(path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: holds more than one YAML document", path)
	}
	return nil
}

// yamlError reports a decoding error of the file at path as one error per
// problem, with yaml.v3's unknown-field errors reworded as
// "line N: unknown key "k"".
func yamlError(path string, err error) error {
	te, ok := errors.AsType[*yaml.TypeError](err)
	if !ok {
		return fmt.Errorf("config %s: %w", path, err)
	}
	out := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		var line int
		var key string
		if n, _ := fmt.Sscanf(msg, "line %d: field %s not found in type", &line, &key); n == 2 {
			msg = fmt.Sprintf("line %d: unknown key %q", line, key)
		}
		out = append(out, fmt.Errorf("config %s: %s", path, msg))
	}
	return errors.Join(out...)
}

// normalized returns c with the public URL ending in "/" and service names trimmed.
func (c Config) normalized() Config {
	c.PublicURL = strings.TrimSpace(c.PublicURL)
	if c.PublicURL != "" && !strings.HasSuffix(c.PublicURL, "/") {
		c.PublicURL += "/"
	}
	run := make([]string, 0, len(c.Services.Run))
	for _, s := range c.Services.Run {
		run = append(run, strings.ToLower(strings.TrimSpace(s)))
	}
	c.Services.Run = run
	c.SMTP.URL = strings.TrimSpace(c.SMTP.URL)
	c.Email.From = strings.TrimSpace(c.Email.From)
	c.Email.ReplyTo = strings.TrimSpace(c.Email.ReplyTo)
	c.Branding.ServiceName = strings.TrimSpace(c.Branding.ServiceName)
	c.HTTP.ForwardedHeader = strings.ToLower(strings.TrimSpace(c.HTTP.ForwardedHeader))
	c.Captcha.Provider = strings.TrimSpace(c.Captcha.Provider)
	return c
}

// Runs reports whether this process runs the named service.
func (c Config) Runs(service string) bool {
	return slices.Contains(c.Services.Run, service)
}

// Endpoint returns the gRPC target of the named service: its configured
// endpoint, or else this process's own gRPC address (with a wildcard host
// replaced by localhost so it can be dialled).
func (c Config) Endpoint(service string) string {
	if ep := c.Services.Endpoints[service]; ep != "" {
		return ep
	}
	host, port, err := net.SplitHostPort(c.GRPC.Addr)
	if err != nil {
		return c.GRPC.Addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
