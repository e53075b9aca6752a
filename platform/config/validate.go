package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// OWASP's minimum argon2id parameters, and the bounds beyond which hashing
// one password would take the server down rather than slow an attacker.
const (
	minArgon2MemoryKiB   = 19456
	maxArgon2MemoryKiB   = 4 << 20 // 4 GiB
	minArgon2Iterations  = 2
	maxArgon2Iterations  = 100
	minArgon2Parallelism = 1
	maxArgon2Parallelism = 255
)

// minSecretLen is the shortest accepted homeserver secret.
const minSecretLen = 16

// maxServiceNameLen bounds branding.service_name, which goes into subjects.
const maxServiceNameLen = 64

// Validate reports every problem of c, each as "field: problem", joined.
func (c Config) Validate() error {
	var p problems

	p.check("public_url", checkBaseURL(c.PublicURL))
	if c.DataDir == "" {
		p.add("data_dir", "must not be empty")
	}

	p.validateOAuth(c.OAuth)
	p.validateUpstream(c.Upstream)
	p.inRange("passwords.min_strength_bits", c.Passwords.MinStrengthBits, 20, 128)
	p.oneOf("account.registration", c.Account.Registration, "open", "token", "closed")
	p.oneOf("account.second_factor", c.Account.SecondFactor, "optional", "required_for_admins", "required")
	if w := c.Account.StepUpWindow; w < 30*time.Second || w > 24*time.Hour {
		p.add("account.step_up_window", "must be between 30s and 24h")
	}
	if u := c.Branding.LogoURI; u != "" && !strings.HasPrefix(u, "https://") {
		p.add("branding.logo_uri", "must be an https URL")
	}
	for field, u := range map[string]string{"branding.terms_uri": c.Branding.TermsURI, "branding.policy_uri": c.Branding.PolicyURI, "branding.logo_uri": c.Branding.LogoURI} {
		if u != "" {
			p.check(field, checkHTTPURL(u))
		}
	}
	p.check("http.addr", checkHostPort(c.HTTP.Addr))
	p.check("grpc.addr", checkHostPort(c.GRPC.Addr))
	p.check("ops.addr", checkHostPort(c.Ops.Addr))
	p.distinctAddrs([]string{"http.addr", "grpc.addr", "ops.addr"},
		[]string{c.HTTP.Addr, c.GRPC.Addr, c.Ops.Addr})

	if c.Database.URL != "" {
		p.check("database.url", checkURL(c.Database.URL, "postgres", "postgresql"))
	}
	p.inRange("database.max_conns", c.Database.MaxConns, 1, 1000)

	if c.NATS.URL != "" {
		for u := range strings.SplitSeq(c.NATS.URL, ",") {
			p.check("nats.url", checkURL(strings.TrimSpace(u), "nats", "tls", "ws", "wss"))
		}
	}
	p.inRange("nats.replicas", c.NATS.Replicas, 1, 5)
	if c.NATS.URL == "" && c.NATS.Replicas > 1 {
		p.add("nats.replicas", "must be 1 with the embedded server (nats.url empty)")
	}
	p.validateNATSAuth(c.NATS)
	p.validateSecrets(c)

	p.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	p.oneOf("log.format", c.Log.Format, "text", "json")
	p.oneOf("telemetry.traces", c.Telemetry.Traces, "none", "stdout", "otlp")
	p.oneOf("telemetry.metrics", c.Telemetry.Metrics, "prometheus", "otlp", "both")
	p.oneOf("telemetry.otlp.protocol", c.Telemetry.OTLP.Protocol, "grpc", "http/protobuf")
	if d := c.Telemetry.OTLP.MetricsInterval; d < time.Second || d > time.Hour {
		p.add("telemetry.otlp.metrics_interval", "%v is not between 1s and 1h", d)
	}
	if _, err := ParseHeaders(string(c.Telemetry.OTLP.Headers)); err != nil {
		p.add("telemetry.otlp.headers", "%v", err)
	}
	if r := c.Telemetry.SampleRatio; math.IsNaN(r) || r < 0 || r > 1 {
		p.add("telemetry.sample_ratio", "%v is not between 0 and 1", r)
	}

	a := c.Passwords.Argon2
	p.argon2("passwords.argon2.memory_kib", a.MemoryKiB, minArgon2MemoryKiB, maxArgon2MemoryKiB)
	p.argon2("passwords.argon2.iterations", a.Iterations, minArgon2Iterations, maxArgon2Iterations)
	p.argon2("passwords.argon2.parallelism", a.Parallelism, minArgon2Parallelism, maxArgon2Parallelism)

	p.check("matrix.server_name", checkServerName(c.Matrix.ServerName))
	if c.Matrix.HomeserverURL != "" { // empty: no homeserver provisioning
		p.check("matrix.homeserver_url", checkHTTPURL(c.Matrix.HomeserverURL))
	}
	if n := len(c.Matrix.Secret); n > 0 && n < minSecretLen {
		p.add("matrix.secret", "is %d characters, want at least %d", n, minSecretLen)
	}
	p.check("web.secret", checkWebSecret(c.Web.Secret))
	p.validateInternal(c)
	p.validateAbuse(c)
	p.validatePending(c.Pending)
	p.validateAudit(c.Audit)
	if n := c.Ops.GCPercent; n < 0 || n > 10000 {
		p.add("ops.gc_percent", "%d is not between 0 (the runtime's own) and 10000", n)
	}
	if n := c.Ops.GCHeadroomMiB; n < 0 || n > 1<<20 {
		p.add("ops.gc_headroom_mib", "%d is not between 0 (off) and 1048576 (1 TiB)", n)
	}
	if d := c.Timeouts.Request; d < time.Second || d > 5*time.Minute {
		p.add("timeouts.request", "%v is not between 1s and 5m", d)
	}

	if len(c.Services.Run) == 0 {
		p.add("services.run", "must name at least one service")
	}
	for i, s := range c.Services.Run {
		switch {
		case !isService(s):
			p.add("services.run", "%q is not a service (want %s)", s, strings.Join(AllServices(), ", "))
		case slices.Index(c.Services.Run, s) < i:
			p.add("services.run", "%q is listed twice", s)
		}
	}
	for _, s := range slices.Sorted(maps.Keys(c.Services.Endpoints)) {
		key := "services.endpoints." + s
		if !isService(s) {
			p.add(key, "%q is not a service (want %s)", s, strings.Join(AllServices(), ", "))
			continue
		}
		p.check(key, checkTarget(c.Services.Endpoints[s]))
	}

	if c.SMTP.URL != "" {
		p.check("smtp.url", checkSMTPURL(c.SMTP.URL))
		if c.Email.From == "" {
			p.add("email.from", "must be set when smtp.url is")
		}
	}
	if c.Email.From != "" {
		p.check("email.from", checkMailbox(c.Email.From))
	}
	if c.Email.ReplyTo != "" {
		p.check("email.reply_to", checkMailbox(c.Email.ReplyTo))
	}
	p.check("branding.service_name", checkServiceName(c.Branding.ServiceName))

	return errors.Join(p...)
}

// problems collects "field: problem" errors.
type problems []error

// add records a problem of field.
func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

// check records err, when not nil, as a problem of field.
func (p *problems) check(field string, err error) {
	if err != nil {
		*p = append(*p, fmt.Errorf("%s: %w", field, err))
	}
}

// inRange records a problem when n is outside lo..hi.
func (p *problems) inRange(field string, n, lo, hi int) {
	if n < lo || n > hi {
		p.add(field, "%d is not between %d and %d", n, lo, hi)
	}
}

// argon2 records a problem when an argon2 parameter is weaker than the OWASP
// minimum or beyond its upper bound.
func (p *problems) argon2(field string, n, lo, hi int) {
	switch {
	case n < lo:
		p.add(field, "%d is weaker than the OWASP minimum of %d", n, lo)
	case n > hi:
		p.add(field, "%d is above the maximum of %d", n, hi)
	}
}

// oneOf records a problem when v is not one of allowed.
func (p *problems) oneOf(field, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		p.add(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

// distinctAddrs records a problem for each address equal to an earlier one;
// port 0 (pick a free port) may repeat.
func (p *problems) distinctAddrs(names, addrs []string) {
	for i, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "0" {
			continue
		}
		if j := slices.Index(addrs, a); j < i {
			p.add(names[i], "%q is also %s", a, names[j])
		}
	}
}

// checkHostPort accepts host:port with a numeric port (host may be empty).
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q does not have a port number 0..65535", addr)
	}
	return nil
}

// checkBaseURL accepts an absolute http(s) URL with no credentials, query or
// fragment, ending in "/".
func checkBaseURL(s string) error {
	if err := checkHTTPURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	switch {
	case u.User != nil:
		return fmt.Errorf("%q must not contain credentials", s)
	case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		return fmt.Errorf("%q must not have a query or fragment", s)
	case !strings.HasSuffix(u.Path, "/"):
		return fmt.Errorf("%q must end with \"/\"", s)
	}
	return nil
}

// checkHTTPURL accepts an absolute http or https URL with a host.
func checkHTTPURL(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	return checkURL(s, "http", "https")
}

// checkURL accepts an absolute URL with one of the given schemes and a host.
// Its messages never repeat the URL, which may hold a password.
func checkURL(s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("is not a URL")
	}
	if !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("scheme %q is not one of %s", u.Scheme, strings.Join(schemes, ", "))
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return errors.New("has no host")
	}
	return nil
}

// checkServerName accepts a Matrix server name: hostname[:port], where the
// hostname is a DNS name, an IPv4 address or a bracketed IPv6 address.
func checkServerName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	bad := fmt.Errorf("%q is not a server name (hostname[:port])", s)
	host, port := s, ""
	if i := strings.LastIndex(s, ":"); i >= 0 && !strings.HasSuffix(s, "]") {
		host, port = s[:i], s[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad
		}
	}
	if ip, ok := strings.CutPrefix(host, "["); ok {
		ip, ok = strings.CutSuffix(ip, "]")
		if !ok || net.ParseIP(ip) == nil || !strings.Contains(ip, ":") {
			return bad
		}
		return nil
	}
	if host == "" || len(host) > 255 {
		return bad
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return bad
		}
	}
	return nil
}

// checkTarget accepts host:port or a gRPC target with a scheme such as
// dns:///host:port or unix:///path.
func checkTarget(s string) error {
	if strings.Contains(s, ":///") || strings.HasPrefix(s, "unix:") {
		if _, err := url.Parse(s); err != nil {
			return fmt.Errorf("%q is not a gRPC target", s)
		}
		return nil
	}
	if err := checkHostPort(s); err != nil {
		return err
	}
	if host, _, _ := net.SplitHostPort(s); host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

// checkSMTPURL accepts smtp:// or smtps:// with a host, an optional numeric
// port and optional user info, and nothing else. Its messages never repeat
// the URL, which may hold a password.
func checkSMTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a URL")
	}
	switch {
	case u.Scheme != "smtp" && u.Scheme != "smtps":
		return fmt.Errorf("scheme %q is not one of smtp, smtps", u.Scheme)
	case u.Hostname() == "":
		return errors.New("has no host")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return errors.New("must not have a path, query or fragment")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("does not have a port number 1..65535")
		}
	}
	if u.User != nil && u.User.Username() == "" {
		return errors.New("has a password but no user name")
	}
	return nil
}

// checkMailbox accepts one address as net/mail parses it, "Name <a@b>" or
// "a@b", without control characters (which could inject headers).
func checkMailbox(s string) error {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return errors.New("must not contain control characters")
	}
	if _, err := mail.ParseAddress(s); err != nil {
		return fmt.Errorf("%q is not an email address such as \"Example <noreply@example.org>\"", s)
	}
	return nil
}

// checkServiceName accepts a short, printable name.
func checkServiceName(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return errors.New("must be printable text")
	case utf8.RuneCountInString(s) > maxServiceNameLen:
		return fmt.Errorf("is longer than %d characters", maxServiceNameLen)
	}
	return nil
}

// isService reports whether name is one of AllServices.
func isService(name string) bool {
	return slices.Contains(AllServices(), name)
}

// minInternalSecretLen is the shortest accepted internal secret.
const minInternalSecretLen = 32

// validateInternal checks how services authenticate to each other: a
// deployment whose services run in several processes must share a configured
// internal secret or use mutual TLS, since a secret generated under one
// machine's data_dir reaches no other; and TLS needs its certificate and key.
func (p *problems) validateInternal(c Config) {
	if n := len(c.Internal.Secret); n > 0 && n < minInternalSecretLen {
		p.add("internal.secret", "is %d characters, want at least %d", n, minInternalSecretLen)
	}
	t := c.GRPC.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.add("grpc.tls", "cert_file and key_file go together")
	}
	if t.CAFile != "" && t.CertFile == "" {
		p.add("grpc.tls.ca_file", "needs grpc.tls.cert_file: mutual TLS presents this process's certificate")
	}
	// The admin API alone holds no credential (it forwards its callers'), so
	// it needs neither.
	onlyAdmin := len(c.Services.Run) == 1 && c.Services.Run[0] == ServiceAdmin
	if c.Internal.Secret == "" && !(t.CertFile != "" && t.CAFile != "") && c.Split() && !onlyAdmin {
		p.add("internal.secret", "is required when services run in several processes (services.endpoints is set), unless grpc.tls gives every service a certificate and a CA (mutual TLS)")
	}
}

// Split reports whether some service this process calls runs
// elsewhere.
func (c Config) Split() bool {
	for _, ep := range c.Services.Endpoints {
		if ep != "" {
			return true
		}
	}
	return len(c.Services.Run) < len(AllServices())
}

// ParseHeaders reads "key=value,key2=value2" (OTEL_EXPORTER_OTLP_HEADERS'
// form, values URL-encoded) into a map.
func ParseHeaders(s string) (map[string]string, error) {
	out := map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", part)
		}
		if dv, err := url.QueryUnescape(strings.TrimSpace(v)); err == nil {
			v = dv
		}
		out[k] = v
	}
	return out, nil
}
