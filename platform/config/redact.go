package config

import (
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"strings"
)

// redacted replaces a secret in every printed form of a Config.
const redacted = "[redacted]"

// redactedInURL replaces a password in a URL, as url.URL.Redacted does.
const redactedInURL = "xxxxx"

// Secret is a string that prints, formats and logs as "[redacted]" (or ""
// when empty). Convert it with string(s) where the value itself is needed.
type Secret string

// String returns "[redacted]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns the quoted redacted form, so %#v does not reveal the secret.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// LogValue returns the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Redacted returns a copy of c with the homeserver, web and CAPTCHA secrets,
// the NATS password, the key-encryption keys, the bcrypt pepper and the
// passwords of the database, NATS and SMTP URLs replaced by "[redacted]" and
// "xxxxx".
func (c Config) Redacted() Config {
	c.Matrix.Secret = Secret(c.Matrix.Secret.String())
	c.Web.Secret = Secret(c.Web.Secret.String())
	c.Internal.Secret = Secret(c.Internal.Secret.String())
	c.Telemetry.OTLP.Headers = Secret(c.Telemetry.OTLP.Headers.String())
	c.Captcha.SecretKey = Secret(c.Captcha.SecretKey.String())
	c.HTTP.TrustedProxies = append([]string(nil), c.HTTP.TrustedProxies...)
	c.Passwords.BcryptPepper = Secret(c.Passwords.BcryptPepper.String())
	c.OAuth.Clients = append([]StaticClient(nil), c.OAuth.Clients...)
	for i := range c.OAuth.Clients {
		c.OAuth.Clients[i].ClientSecret = Secret(c.OAuth.Clients[i].ClientSecret.String())
	}
	c.Upstream.Providers = append([]UpstreamProvider(nil), c.Upstream.Providers...)
	for i := range c.Upstream.Providers {
		c.Upstream.Providers[i].ClientSecret = Secret(c.Upstream.Providers[i].ClientSecret.String())
	}
	c.NATS.Password = Secret(c.NATS.Password.String())
	c.Secrets.EncryptionKey = Secret(c.Secrets.EncryptionKey.String())
	c.Secrets.PreviousKeys = append([]Secret(nil), c.Secrets.PreviousKeys...)
	for i := range c.Secrets.PreviousKeys {
		c.Secrets.PreviousKeys[i] = Secret(c.Secrets.PreviousKeys[i].String())
	}
	c.Secrets.PreviousKeyFiles = append([]string(nil), c.Secrets.PreviousKeyFiles...)
	c.Database.URL = redactURLs(c.Database.URL, false)
	c.NATS.URL = redactURLs(c.NATS.URL, true)
	c.SMTP.URL = redactURLs(c.SMTP.URL, false)
	c.Services.Run = append([]string(nil), c.Services.Run...)
	c.Services.Endpoints = maps.Clone(c.Services.Endpoints)
	return c
}

// String returns the redacted configuration as YAML.
func (c Config) String() string {
	b, err := c.Redacted().marshal(false)
	if err != nil {
		return "config: " + err.Error()
	}
	return string(b)
}

// GoString returns the redacted configuration in Go syntax, for %#v.
func (c Config) GoString() string {
	type plain Config // drops the methods, so Sprintf does not recurse
	return fmt.Sprintf("%#v", plain(c.Redacted()))
}

// LogValue returns the redacted configuration as a group of attributes.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	return slog.GroupValue(
		slog.String("public_url", r.PublicURL),
		slog.String("data_dir", r.DataDir),
		slog.String("http_addr", r.HTTP.Addr),
		slog.String("grpc_addr", r.GRPC.Addr),
		slog.String("ops_addr", r.Ops.Addr),
		slog.String("database_url", orEmbedded(r.Database.URL)),
		slog.Int("database_max_conns", r.Database.MaxConns),
		slog.String("nats_url", orEmbedded(r.NATS.URL)),
		slog.Int("nats_replicas", r.NATS.Replicas),
		slog.String("nats_listen", r.NATS.Listen),
		slog.String("nats_user", r.NATS.User),
		slog.String("nats_password", string(r.NATS.Password)),
		slog.String("nats_nkey_seed_file", r.NATS.NkeySeedFile),
		slog.String("nats_creds_file", r.NATS.CredsFile),
		slog.String("nats_tls_ca_file", r.NATS.TLS.CAFile),
		slog.String("nats_tls_cert_file", r.NATS.TLS.CertFile),
		slog.String("log_level", r.Log.Level),
		slog.String("log_format", r.Log.Format),
		slog.String("traces", r.Telemetry.Traces),
		slog.Float64("trace_sample_ratio", r.Telemetry.SampleRatio),
		slog.Int("argon2_memory_kib", r.Passwords.Argon2.MemoryKiB),
		slog.Int("argon2_iterations", r.Passwords.Argon2.Iterations),
		slog.Int("argon2_parallelism", r.Passwords.Argon2.Parallelism),
		slog.String("bcrypt_pepper", string(r.Passwords.BcryptPepper)),
		slog.String("matrix_server_name", r.Matrix.ServerName),
		slog.String("matrix_homeserver_url", r.Matrix.HomeserverURL),
		slog.String("matrix_secret", string(r.Matrix.Secret)),
		slog.Any("services", r.Services.Run),
		slog.Any("endpoints", r.Services.Endpoints),
		slog.String("smtp_url", orOutbox(r.SMTP.URL)),
		slog.String("email_from", r.Email.From),
		slog.String("email_reply_to", r.Email.ReplyTo),
		slog.String("service_name", r.Branding.ServiceName),
		slog.String("web_secret", string(r.Web.Secret)),
		slog.Any("trusted_proxies", r.HTTP.TrustedProxies),
		slog.String("forwarded_header", r.HTTP.ForwardedHeader),
		slog.String("captcha", r.Captcha.Provider),
		slog.String("captcha_secret_key", string(r.Captcha.SecretKey)),
		slog.String("secrets_encryption_key", string(r.Secrets.EncryptionKey)),
		slog.String("secrets_encryption_key_file", r.Secrets.EncryptionKeyFile),
		slog.Int("secrets_previous_keys", len(r.Secrets.PreviousKeys)+len(r.Secrets.PreviousKeyFiles)),
	)
}

// orEmbedded names an empty URL as the embedded server.
func orEmbedded(u string) string {
	if u == "" {
		return "(embedded)"
	}
	return u
}

// orOutbox names an empty SMTP URL as the development outbox.
func orOutbox(u string) string {
	if u == "" {
		return "(outbox under data_dir)"
	}
	return u
}

// redactURLs redacts each URL of a comma-separated list: the password of its
// user info and any password query parameter, and with wholeUser also a user
// with no password (NATS takes a bare token as the user). A value that does
// not parse is redacted whole.
func redactURLs(list string, wholeUser bool) string {
	if list == "" {
		return ""
	}
	parts := strings.Split(list, ",")
	for i, s := range parts {
		parts[i] = redactURL(strings.TrimSpace(s), wholeUser)
	}
	return strings.Join(parts, ",")
}

// redactURL redacts the secrets of one URL; see redactURLs.
func redactURL(s string, wholeUser bool) string {
	u, err := url.Parse(s)
	if err != nil {
		return redacted
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redactedInURL)
		} else if wholeUser {
			u.User = url.User(redactedInURL)
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", redactedInURL)
		u.RawQuery = q.Encode()
	}
	return u.String()
}
