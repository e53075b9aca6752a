package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// envPrefix starts the name of every Gatehouse environment variable.
const envPrefix = "GATEHOUSE_"

// endpointEnvPrefix starts GATEHOUSE_ENDPOINT_<SERVICE>.
const endpointEnvPrefix = envPrefix + "ENDPOINT_"

// field is one setting: its YAML key, its environment variable, what it
// means, and how the variable's text is applied to a Config.
type field struct {
	key string
	env string
	doc string
	set func(c *Config, v string) error
}

// baseFields returns the settings other than the rate limits. Service
// endpoints are listed, but their variables are named by service.
func baseFields() []field {
	return []field{
		{"public_url", "GATEHOUSE_PUBLIC_URL",
			"Base URL users and clients reach Gatehouse at; the OIDC issuer.",
			setString(func(c *Config) *string { return &c.PublicURL })},
		{"data_dir", "GATEHOUSE_DATA_DIR",
			"Directory of the embedded database and NATS store.",
			setString(func(c *Config) *string { return &c.DataDir })},
		{"http.addr", "GATEHOUSE_HTTP_ADDR",
			"host:port of the public HTTP listener.",
			setString(func(c *Config) *string { return &c.HTTP.Addr })},
		{"grpc.addr", "GATEHOUSE_GRPC_ADDR",
			"host:port of the internal gRPC listener; keep it on a private network.",
			setString(func(c *Config) *string { return &c.GRPC.Addr })},
		{"grpc.tls.cert_file", "GATEHOUSE_GRPC_TLS_CERT_FILE",
			"PEM certificate of the gRPC listener, also presented to other services (its URI SANs urn:gatehouse:caller:<service> name who it may act as); empty: plaintext gRPC.",
			setString(func(c *Config) *string { return &c.GRPC.TLS.CertFile })},
		{"grpc.tls.key_file", "GATEHOUSE_GRPC_TLS_KEY_FILE",
			"PEM private key of grpc.tls.cert_file.",
			setString(func(c *Config) *string { return &c.GRPC.TLS.KeyFile })},
		{"grpc.tls.ca_file", "GATEHOUSE_GRPC_TLS_CA_FILE",
			"PEM CA certificates that sign other services' and clients' certificates (mutual TLS).",
			setString(func(c *Config) *string { return &c.GRPC.TLS.CAFile })},
		{"internal.secret", "GATEHOUSE_INTERNAL_SECRET",
			"Secret every process of a deployment shares, at least 32 characters: the gRPC credentials of the services and the admin CLI are derived from it. Empty on one machine: generated under data_dir/secrets. Never logged.",
			func(c *Config, v string) error { c.Internal.Secret = Secret(v); return nil }},
		{"ops.addr", "GATEHOUSE_OPS_ADDR",
			"host:port of the /health, /ready and /metrics listener.",
			setString(func(c *Config) *string { return &c.Ops.Addr })},
		{"ops.pprof", "GATEHOUSE_OPS_PPROF",
			"true serves the Go profiler under /debug/pprof/ on the ops listener (CPU, heap, mutex, block profiles); keep the listener private.",
			func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				c.Ops.Pprof = b
				return err
			}},
		{"ops.gc_percent", "GATEHOUSE_GC_PERCENT",
			"The Go garbage collector's target, as GOGC (e.g. 200: the heap grows 200% over live data between collections); 0 keeps the runtime's (GOGC, or 100). A GOGC in the environment wins.",
			setInt(func(c *Config) *int { return &c.Ops.GCPercent })},
		{"ops.gc_headroom_mib", "GATEHOUSE_GC_HEADROOM_MIB",
			"While the process allocates fast, the most (MiB) the heap may grow over live data between collections (never more than a quarter of GOMEMLIMIT or the container's memory limit), so that they come about twice a second; at rest the target is ops.gc_percent's. 0 turns this off; a GOGC in the environment does too.",
			setInt(func(c *Config) *int { return &c.Ops.GCHeadroomMiB })},
		{"database.url", "GATEHOUSE_DATABASE_URL",
			"postgres:// URL; empty runs a private cluster under data_dir.",
			setString(func(c *Config) *string { return &c.Database.URL })},
		{"database.max_conns", "GATEHOUSE_DATABASE_MAX_CONNS",
			"Size of the database connection pool, 1..1000.",
			setInt(func(c *Config) *int { return &c.Database.MaxConns })},
		{"nats.url", "GATEHOUSE_NATS_URL",
			"nats:// server URLs, comma-separated; empty runs an embedded server under data_dir.",
			setString(func(c *Config) *string { return &c.NATS.URL })},
		{"nats.replicas", "GATEHOUSE_NATS_REPLICAS",
			"JetStream replicas of each stream, 1..5; 1 with the embedded server.",
			setInt(func(c *Config) *int { return &c.NATS.Replicas })},
		{"nats.listen", "GATEHOUSE_NATS_LISTEN",
			"host:port the embedded server listens on (nats.url empty); empty: 127.0.0.1 on a free port, so only this machine connects.",
			setString(func(c *Config) *string { return &c.NATS.Listen })},
		{"nats.user", "GATEHOUSE_NATS_USER",
			"User name for NATS, with nats.password; with the embedded server, the credentials it requires (by default it generates an nkey under data_dir/secrets).",
			setString(func(c *Config) *string { return &c.NATS.User })},
		{"nats.password", "GATEHOUSE_NATS_PASSWORD",
			"Password of nats.user; never logged.",
			func(c *Config, v string) error { c.NATS.Password = Secret(v); return nil }},
		{"nats.nkey_seed_file", "GATEHOUSE_NATS_NKEY_SEED_FILE",
			"File holding an nkey seed (SU...) to authenticate with; with the embedded server, it trusts that key.",
			setString(func(c *Config) *string { return &c.NATS.NkeySeedFile })},
		{"nats.creds_file", "GATEHOUSE_NATS_CREDS_FILE",
			"A .creds file (user JWT and seed) for an external NATS run with accounts (nats.url set).",
			setString(func(c *Config) *string { return &c.NATS.CredsFile })},
		{"nats.tls.ca_file", "GATEHOUSE_NATS_TLS_CA_FILE",
			"PEM CA bundle an external NATS server's certificate must chain to; TLS is required when set.",
			setString(func(c *Config) *string { return &c.NATS.TLS.CAFile })},
		{"nats.tls.cert_file", "GATEHOUSE_NATS_TLS_CERT_FILE",
			"This client's PEM certificate, for an external NATS that verifies clients (mutual TLS); with nats.tls.key_file.",
			setString(func(c *Config) *string { return &c.NATS.TLS.CertFile })},
		{"nats.tls.key_file", "GATEHOUSE_NATS_TLS_KEY_FILE",
			"This client's PEM private key, with nats.tls.cert_file.",
			setString(func(c *Config) *string { return &c.NATS.TLS.KeyFile })},
		{"log.level", "GATEHOUSE_LOG_LEVEL",
			"debug, info, warn or error.",
			setString(func(c *Config) *string { return &c.Log.Level })},
		{"log.format", "GATEHOUSE_LOG_FORMAT",
			"text or json.",
			setString(func(c *Config) *string { return &c.Log.Format })},
		{"telemetry.traces", "GATEHOUSE_TRACES",
			"Trace exporter: none or stdout. Metrics are always on the ops listener.",
			setString(func(c *Config) *string { return &c.Telemetry.Traces })},
		{"telemetry.metrics", "GATEHOUSE_METRICS",
			"Metrics exporter: prometheus (served on /metrics of the ops listener), otlp (pushed to telemetry.otlp) or both.",
			setString(func(c *Config) *string { return &c.Telemetry.Metrics })},
		{"telemetry.otlp.endpoint", "GATEHOUSE_OTLP_ENDPOINT",
			"OTLP collector: host:port for grpc, a URL for http/protobuf; empty: OTEL_EXPORTER_OTLP_ENDPOINT, else the exporters' default.",
			setString(func(c *Config) *string { return &c.Telemetry.OTLP.Endpoint })},
		{"telemetry.otlp.protocol", "GATEHOUSE_OTLP_PROTOCOL",
			"grpc or http/protobuf.",
			setString(func(c *Config) *string { return &c.Telemetry.OTLP.Protocol })},
		{"telemetry.otlp.headers", "GATEHOUSE_OTLP_HEADERS",
			"Headers sent with every export, key=value,key2=value2 (an API key, say); never logged.",
			func(c *Config, v string) error { c.Telemetry.OTLP.Headers = Secret(v); return nil }},
		{"telemetry.otlp.insecure", "GATEHOUSE_OTLP_INSECURE",
			"true exports without TLS.",
			func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				c.Telemetry.OTLP.Insecure = b
				return err
			}},
		{"telemetry.otlp.ca_file", "GATEHOUSE_OTLP_CA_FILE",
			"PEM CA certificates of the collector; empty: the system's roots.",
			setString(func(c *Config) *string { return &c.Telemetry.OTLP.CAFile })},
		{"telemetry.otlp.metrics_interval", "GATEHOUSE_OTLP_METRICS_INTERVAL",
			"How often metrics are pushed with OTLP, e.g. 1m; 1s..1h.",
			func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				c.Telemetry.OTLP.MetricsInterval = d
				return err
			}},
		{"telemetry.sample_ratio", "GATEHOUSE_TRACE_SAMPLE_RATIO",
			"Share of new traces sampled, 0..1.",
			setFloat(func(c *Config) *float64 { return &c.Telemetry.SampleRatio })},
		{"passwords.argon2.memory_kib", "GATEHOUSE_ARGON2_MEMORY_KIB",
			"argon2id memory cost in KiB; at least 19456 (OWASP).",
			setInt(func(c *Config) *int { return &c.Passwords.Argon2.MemoryKiB })},
		{"passwords.argon2.iterations", "GATEHOUSE_ARGON2_ITERATIONS",
			"argon2id time cost; at least 2 (OWASP).",
			setInt(func(c *Config) *int { return &c.Passwords.Argon2.Iterations })},
		{"passwords.argon2.parallelism", "GATEHOUSE_ARGON2_PARALLELISM",
			"argon2id lanes; at least 1.",
			setInt(func(c *Config) *int { return &c.Passwords.Argon2.Parallelism })},
		{"passwords.min_strength_bits", "GATEHOUSE_PASSWORD_MIN_STRENGTH_BITS",
			"Least estimated strength of a new password in bits, 20..128.",
			setInt(func(c *Config) *int { return &c.Passwords.MinStrengthBits })},
		{"passwords.bcrypt_pepper", "GATEHOUSE_BCRYPT_PEPPER",
			"Synapse's password_config.pepper, for the bcrypt hashes imported from Synapse (appended to the password before bcrypt); empty: none. Never logged.",
			func(c *Config, v string) error { c.Passwords.BcryptPepper = Secret(v); return nil }},
		{"matrix.server_name", "GATEHOUSE_MATRIX_SERVER_NAME",
			"Server name of the Matrix homeserver, as in @user:server_name.",
			setString(func(c *Config) *string { return &c.Matrix.ServerName })},
		{"matrix.homeserver_url", "GATEHOUSE_MATRIX_HOMESERVER_URL",
			"Base URL of the homeserver's client-server API; with matrix.secret, users and devices are provisioned there (/_synapse/mas/). Empty: no provisioning.",
			setString(func(c *Config) *string { return &c.Matrix.HomeserverURL })},
		{"matrix.secret", "GATEHOUSE_MATRIX_SECRET",
			"Secret shared with the homeserver, at least 16 characters; never logged.",
			func(c *Config, v string) error { c.Matrix.Secret = Secret(v); return nil }},
		{"matrix.compat_admin_scope", "GATEHOUSE_MATRIX_COMPAT_ADMIN_SCOPE",
			"true lets compat logins (m.login.password, m.login.token) of administrators carry urn:synapse:admin:*; false (the default, as in MAS): admin access only through OAuth.",
			func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				c.Matrix.CompatAdminScope = b
				return err
			}},
		{"oauth.admin_clients", "GATEHOUSE_OAUTH_ADMIN_CLIENTS",
			"Client ids the client_credentials grant may give admin scopes (urn:synapse:admin:*, urn:mas:admin, urn:gatehouse:admin); comma-separated in the environment. Empty: no client.",
			func(c *Config, v string) error { c.OAuth.AdminClients = splitList(v); return nil }},
		{"services.run", "GATEHOUSE_SERVICES",
			"Services this process runs: authorize, token, accounts, notify, web (comma-separated in the environment).",
			func(c *Config, v string) error { c.Services.Run = splitList(v); return nil }},
		{"oauth.access_token_ttl", "GATEHOUSE_ACCESS_TOKEN_TTL",
			"Lifetime of access tokens, e.g. 5m; 1m..24h.",
			func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				c.OAuth.AccessTokenTTL = d
				return err
			}},
		{"smtp.url", "GATEHOUSE_SMTP_URL",
			"smtp://user:password@host:port (STARTTLS when offered, port 587 by default) or smtps://... (implicit TLS, port 465); empty writes emails to data_dir/outbox (the log says only that it did, never the code or link). The password is never logged.",
			setString(func(c *Config) *string { return &c.SMTP.URL })},
		{"email.from", "GATEHOUSE_EMAIL_FROM",
			"Sender of emails, \"Name <address>\" or an address; required with smtp.url.",
			setString(func(c *Config) *string { return &c.Email.From })},
		{"email.reply_to", "GATEHOUSE_EMAIL_REPLY_TO",
			"Reply-To address of emails; empty for none.",
			setString(func(c *Config) *string { return &c.Email.ReplyTo })},
		{"branding.service_name", "GATEHOUSE_BRANDING_SERVICE_NAME",
			"Name of the service shown to users in emails.",
			setString(func(c *Config) *string { return &c.Branding.ServiceName })},
		{"oauth.refresh_reuse_grace", "GATEHOUSE_REFRESH_REUSE_GRACE",
			"A rotated-out refresh token used again within this time (e.g. 10s) is refused without ending the session.",
			func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				c.OAuth.RefreshReuseGrace = d
				return err
			}},
		{"oauth.activity_flush_interval", "GATEHOUSE_ACTIVITY_FLUSH_INTERVAL",
			"How often the last use of OAuth and compat sessions is written, e.g. 30s; 1s..10m.",
			func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				c.OAuth.ActivityFlushInterval = d
				return err
			}},
		{"oauth.compact_sessions", "GATEHOUSE_COMPACT_SESSIONS",
			"true (the default): the TOKEN stream keeps only each session's last event (its whole state) and ended sessions expire; compacts an existing stream once, cannot be undone.",
			func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				c.OAuth.CompactSessions = b
				return err
			}},
		{"oauth.ended_session_retention", "GATEHOUSE_ENDED_SESSION_RETENTION",
			"With oauth.compact_sessions, how long an ended session stays, e.g. 720h (the default); at least 1h.",
			func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				c.OAuth.EndedSessionRetention = d
				return err
			}},
		{"oauth.activity_retention", "GATEHOUSE_ACTIVITY_RETENTION",
			"How long a batch of sessions' activity stays in the TOKEN stream, e.g. 24h (the default); at least 4h, below oauth.ended_session_retention.",
			func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				c.OAuth.ActivityRetention = d
				return err
			}},
		{"oauth.inactive_session_expiry", "GATEHOUSE_INACTIVE_SESSION_EXPIRY",
			"End a person's OAuth or compat session (and its device on the homeserver) unused for this long, e.g. 2160h (90 days); at least 24h; 0 (the default) never does.",
			func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				c.OAuth.InactiveSessionExpiry = d
				return err
			}},
		{"timeouts.request", "GATEHOUSE_REQUEST_TIMEOUT",
			"Server-side deadline of every public HTTP request and of gRPC calls without one, e.g. 15s; 1s..5m. Past it the caller gets 503 (UNAVAILABLE) rather than a hang.",
			func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				c.Timeouts.Request = d
				return err
			}},
		{"account.registration", "GATEHOUSE_REGISTRATION",
			"open, token (a registration token is required) or closed.",
			setString(func(c *Config) *string { return &c.Account.Registration })},
		{"account.login_with_email", "GATEHOUSE_LOGIN_WITH_EMAIL",
			"true lets people sign in with an email address instead of their username.",
			func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				c.Account.LoginWithEmail = b
				return err
			}},
		{"account.second_factor", "GATEHOUSE_SECOND_FACTOR",
			"optional (people may set up a passkey or TOTP), required_for_admins or required: who must give a second factor after the password.",
			setString(func(c *Config) *string { return &c.Account.SecondFactor })},
		{"account.step_up_window", "GATEHOUSE_STEP_UP_WINDOW",
			"How recent an authentication (password, passkey or TOTP) must be for a sensitive action: changing the password, an email address or a factor, deactivating, approving a cross-signing reset; e.g. 5m; 30s..24h.",
			func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				c.Account.StepUpWindow = d
				return err
			}},
		{"branding.terms_uri", "GATEHOUSE_BRANDING_TERMS_URI",
			"Terms of service people accept when they create an account; empty: none.",
			setString(func(c *Config) *string { return &c.Branding.TermsURI })},
		{"branding.logo_uri", "GATEHOUSE_BRANDING_LOGO_URI",
			"An https image shown next to the service name; empty: none.",
			setString(func(c *Config) *string { return &c.Branding.LogoURI })},
		{"branding.policy_uri", "GATEHOUSE_BRANDING_POLICY_URI",
			"Privacy policy linked on the pages; empty: none.",
			setString(func(c *Config) *string { return &c.Branding.PolicyURI })},
		{"web.secret", "GATEHOUSE_WEB_SECRET",
			"Secret shared by every web replica, at least 32 characters; the keys of forms (CSRF) and compat SSO confirmations are derived from it, so a page shown by one replica is accepted by any other. Empty: each process picks a random one at start, which is fine for one replica, but a restart then invalidates open forms. Never logged.",
			func(c *Config, v string) error { c.Web.Secret = Secret(v); return nil }},
		{"secrets.encryption_key", "GATEHOUSE_SECRETS_ENCRYPTION_KEY",
			"The key-encryption key that seals the secrets kept in events (services' keys, password hashes): base64 of 32 random bytes (openssl rand -base64 32); never logged. Empty, with encryption_key_file empty too: one process on one machine generates it under data_dir/secrets; required when services run in several processes.",
			func(c *Config, v string) error { c.Secrets.EncryptionKey = Secret(v); return nil }},
		{"secrets.encryption_key_file", "GATEHOUSE_SECRETS_ENCRYPTION_KEY_FILE",
			"A file holding the key-encryption key (base64), instead of secrets.encryption_key.",
			setString(func(c *Config) *string { return &c.Secrets.EncryptionKeyFile })},
		{"secrets.previous_keys", "GATEHOUSE_SECRETS_PREVIOUS_KEYS",
			"Earlier key-encryption keys (comma-separated in the environment), kept while a rotation seals everything again under the current key; never logged.",
			func(c *Config, v string) error {
				c.Secrets.PreviousKeys = nil
				for _, k := range splitList(v) {
					c.Secrets.PreviousKeys = append(c.Secrets.PreviousKeys, Secret(k))
				}
				return nil
			}},
		{"secrets.previous_key_files", "GATEHOUSE_SECRETS_PREVIOUS_KEY_FILES",
			"Files holding earlier key-encryption keys (comma-separated in the environment).",
			func(c *Config, v string) error { c.Secrets.PreviousKeyFiles = splitList(v); return nil }},
		{"services.endpoints", "GATEHOUSE_ENDPOINT_<SERVICE>",
			"gRPC target of each service run elsewhere, e.g. accounts: accounts:9090; others are reached at grpc.addr.",
			nil},
		{"http.trusted_proxies", "GATEHOUSE_HTTP_TRUSTED_PROXIES",
			"CIDR ranges (or addresses) of the reverse proxies whose forwarding header names the client (comma-separated in the environment); by default loopback and the private ranges. [] trusts no one.",
			func(c *Config, v string) error { c.HTTP.TrustedProxies = splitList(v); return nil }},
		{"http.forwarded_header", "GATEHOUSE_HTTP_FORWARDED_HEADER",
			"The header the trusted proxies set: x-forwarded-for or forwarded (RFC 7239). Only that one is read, right to left.",
			setString(func(c *Config) *string { return &c.HTTP.ForwardedHeader })},
		{"captcha.provider", "GATEHOUSE_CAPTCHA_PROVIDER",
			"CAPTCHA at registration: cloudflare_turnstile, hcaptcha or recaptcha_v2; empty: none.",
			setString(func(c *Config) *string { return &c.Captcha.Provider })},
		{"captcha.site_key", "GATEHOUSE_CAPTCHA_SITE_KEY",
			"The provider's site key (public).",
			setString(func(c *Config) *string { return &c.Captcha.SiteKey })},
		{"captcha.secret_key", "GATEHOUSE_CAPTCHA_SECRET_KEY",
			"The provider's secret key: sent only to the verify URL; never logged.",
			func(c *Config, v string) error { c.Captcha.SecretKey = Secret(v); return nil }},
		{"captcha.verify_url", "GATEHOUSE_CAPTCHA_VERIFY_URL",
			"Replaces the provider's siteverify URL (https; http only on loopback); empty: the provider's.",
			setString(func(c *Config) *string { return &c.Captcha.VerifyURL })},
		{"captcha.script_url", "GATEHOUSE_CAPTCHA_SCRIPT_URL",
			"Replaces the provider's widget script (https; http only on loopback); empty: the provider's.",
			setString(func(c *Config) *string { return &c.Captcha.ScriptURL })},
		{"captcha.login_after_failures", "GATEHOUSE_CAPTCHA_LOGIN_AFTER_FAILURES",
			"Ask for the CAPTCHA at sign-in too once this many failed attempts count against the client's address or the account; 0: never.",
			setInt(func(c *Config) *int { return &c.Captcha.LoginAfterFailures })},
	}
}

// fields returns the table of every setting overridable from the
// environment: baseFields, then the rate limits' (see rateLimitFields).
func fields() []field {
	return append(append(append(baseFields(), rateLimitFields()...), pendingFields()...), auditFields()...)
}

// applyEnv applies the GATEHOUSE_* variables of environ to c. A variable set
// to the empty string counts as unset. It reports every bad value.
func (c *Config) applyEnv(environ []string) error {
	env := make(map[string]string)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, envPrefix) && v != "" {
			env[k] = v
		}
	}
	var problems []error
	for _, f := range fields() {
		v, ok := env[f.env]
		if !ok || f.set == nil {
			continue
		}
		if err := f.set(c, v); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", f.env, err))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := env[k]
		service, ok := strings.CutPrefix(k, endpointEnvPrefix)
		if !ok {
			continue
		}
		service = strings.ToLower(service)
		if !isService(service) {
			problems = append(problems, fmt.Errorf("%s: %q is not a service (want one of %s)",
				k, service, strings.Join(AllServices(), ", ")))
			continue
		}
		if c.Services.Endpoints == nil {
			c.Services.Endpoints = map[string]string{}
		}
		c.Services.Endpoints[service] = v
	}
	return errors.Join(problems...)
}

// setString makes a setter of the string field that at returns.
func setString(at func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *at(c) = v; return nil }
}

// setInt makes a setter of the int field that at returns.
func setInt(at func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*at(c) = n
		return nil
	}
}

// setFloat makes a setter of the float64 field that at returns.
func setFloat(at func(*Config) *float64) func(*Config, string) error {
	return func(c *Config, v string) error {
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		*at(c) = x
		return nil
	}
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
