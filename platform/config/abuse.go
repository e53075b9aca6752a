package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"gatehouse.dev/platform/clientaddr"
)

// The settings that resist abuse of a public server: who the client is
// behind proxies (http.trusted_proxies), how often it may try what
// (rate_limits), and the CAPTCHA at registration (captcha).

// HTTP is the public HTTP listener and the proxies in front of it.
type HTTP struct {
	// Addr is host:port; port 0 picks a free port (GATEHOUSE_HTTP_ADDR).
	Addr string `yaml:"addr"`
	// TrustedProxies are the CIDR ranges (or addresses) of the reverse
	// proxies whose forwarding header names the client
	// (GATEHOUSE_HTTP_TRUSTED_PROXIES, comma-separated). By default loopback
	// and the private ranges, as MAS; an empty list trusts no one.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ForwardedHeader is the header those proxies set: x-forwarded-for
	// (default) or forwarded (RFC 7239) (GATEHOUSE_HTTP_FORWARDED_HEADER).
	// Only that one is read.
	ForwardedHeader string `yaml:"forwarded_header"`
}

// RateLimit is one limit: Burst at once, then one more every RefillEvery.
type RateLimit struct {
	Burst       int           `yaml:"burst"`
	RefillEvery time.Duration `yaml:"refill_every"`
}

// RateLimits are the limits of the public endpoints, per client address
// (an IPv6 /64 counts as one), account, email address or verification.
// Every replica of a service shares the counts (through NATS).
type RateLimits struct {
	Login               LoginLimits    `yaml:"login"`
	Registration        RateLimit      `yaml:"registration"`
	Recovery            RecoveryLimits `yaml:"recovery"`
	Email               EmailLimits    `yaml:"email"`
	DeviceCodeEntry     RateLimit      `yaml:"device_code_entry"`
	DeviceAuthorization RateLimit      `yaml:"device_authorization"`
	ClientRegistration  RateLimit      `yaml:"client_registration"`
	Authorization       RateLimit      `yaml:"authorization"`
	BackchannelLogout   RateLimit      `yaml:"backchannel_logout"`
	SecondFactor        RateLimit      `yaml:"second_factor"`
}

// LoginLimits limit password checks: failed ones per address, any per account.
type LoginLimits struct {
	PerIP      RateLimit `yaml:"per_ip"`
	PerAccount RateLimit `yaml:"per_account"`
}

// RecoveryLimits limit recovery emails per client address and per email address.
type RecoveryLimits struct {
	PerIP      RateLimit `yaml:"per_ip"`
	PerAddress RateLimit `yaml:"per_address"`
}

// EmailLimits limit verification emails per client address, per email
// address and per verification.
type EmailLimits struct {
	PerIP      RateLimit `yaml:"per_ip"`
	PerAddress RateLimit `yaml:"per_address"`
	PerSession RateLimit `yaml:"per_session"`
}

// rateLimit is one rate limit's row: its key under rate_limits, the infix of
// its environment variables, what it limits and where it is in a Config.
type rateLimit struct {
	key, env, doc string
	at            func(*Config) *RateLimit
	def           RateLimit
}

// rateLimitTable lists every rate limit with its default: MAS's where MAS
// has the limit.
func rateLimitTable() []rateLimit {
	return []rateLimit{
		{"login.per_ip", "LOGIN_PER_IP",
			"Failed sign-ins (web and compat) per client address; a right password costs nothing.",
			func(c *Config) *RateLimit { return &c.RateLimits.Login.PerIP }, RateLimit{3, 20 * time.Second}},
		{"login.per_account", "LOGIN_PER_ACCOUNT",
			"Failed password checks per account (sign-in, password change, deactivation), against guessing.",
			func(c *Config) *RateLimit { return &c.RateLimits.Login.PerAccount }, RateLimit{1800, 2 * time.Second}},
		{"registration", "REGISTRATION",
			"Registrations started per client address.",
			func(c *Config) *RateLimit { return &c.RateLimits.Registration }, RateLimit{3, 20 * time.Minute}},
		{"recovery.per_ip", "RECOVERY_PER_IP",
			"Password recovery requests per client address.",
			func(c *Config) *RateLimit { return &c.RateLimits.Recovery.PerIP }, RateLimit{3, 20 * time.Minute}},
		{"recovery.per_address", "RECOVERY_PER_ADDRESS",
			"Password recovery requests per email address.",
			func(c *Config) *RateLimit { return &c.RateLimits.Recovery.PerAddress }, RateLimit{3, time.Hour}},
		{"email.per_ip", "EMAIL_PER_IP",
			"Verification emails (codes and links, resends included) per client address.",
			func(c *Config) *RateLimit { return &c.RateLimits.Email.PerIP }, RateLimit{5, time.Minute}},
		{"email.per_address", "EMAIL_PER_ADDRESS",
			"Verifications started per email address.",
			func(c *Config) *RateLimit { return &c.RateLimits.Email.PerAddress }, RateLimit{3, time.Hour}},
		{"email.per_session", "EMAIL_PER_SESSION",
			"Emails per verification (the first and its resends; a verification also waits 30 s between resends and allows 5).",
			func(c *Config) *RateLimit { return &c.RateLimits.Email.PerSession }, RateLimit{6, 5 * time.Minute}},
		{"device_code_entry", "DEVICE_CODE_ENTRY",
			"Device codes typed on the /link page per client address.",
			func(c *Config) *RateLimit { return &c.RateLimits.DeviceCodeEntry }, RateLimit{10, 6 * time.Second}},
		{"device_authorization", "DEVICE_AUTHORIZATION",
			"Device authorization requests (/oauth2/device) per client address.",
			func(c *Config) *RateLimit { return &c.RateLimits.DeviceAuthorization }, RateLimit{10, time.Minute}},
		{"client_registration", "CLIENT_REGISTRATION",
			"Dynamic client registrations (/oauth2/registration) per client address.",
			func(c *Config) *RateLimit { return &c.RateLimits.ClientRegistration }, RateLimit{10, time.Minute}},
		{"authorization", "AUTHORIZATION",
			"Authorization requests (/authorize) per client address.",
			func(c *Config) *RateLimit { return &c.RateLimits.Authorization }, RateLimit{30, 2 * time.Second}},
		{"backchannel_logout", "BACKCHANNEL_LOGOUT",
			"Refused back-channel logout tokens (/upstream/backchannel-logout) per client address; a valid token costs nothing.",
			func(c *Config) *RateLimit { return &c.RateLimits.BackchannelLogout }, RateLimit{10, 6 * time.Second}},
		{"second_factor", "SECOND_FACTOR",
			"Wrong second-factor codes (TOTP and recovery codes) per account; a right code costs nothing.",
			func(c *Config) *RateLimit { return &c.RateLimits.SecondFactor }, RateLimit{5, time.Minute}},
	}
}

// defaultRateLimits are the limits of rateLimitTable.
func defaultRateLimits() RateLimits {
	var c Config
	for _, r := range rateLimitTable() {
		*r.at(&c) = r.def
	}
	return c.RateLimits
}

// rateLimitFields are the settings of every rate limit: its burst and its
// refill interval.
func rateLimitFields() []field {
	var out []field
	for _, r := range rateLimitTable() {
		at := r.at
		out = append(out,
			field{"rate_limits." + r.key + ".burst", "GATEHOUSE_RATE_LIMIT_" + r.env + "_BURST",
				"How many at once, 1..1000000.",
				setInt(func(c *Config) *int { return &at(c).Burst })},
			field{"rate_limits." + r.key + ".refill_every", "GATEHOUSE_RATE_LIMIT_" + r.env + "_REFILL_EVERY",
				"Then one more every this long, e.g. 20s; 1ms..24h.",
				setDuration(func(c *Config) *time.Duration { return &at(c).RefillEvery })},
		)
	}
	return out
}

// rateLimitDocs annotate the keys that group rate limits.
func rateLimitDocs() map[string]string {
	docs := map[string]string{
		"rate_limits":          "How often a client may try what: a burst, then one more every refill_every. Counts are shared by every replica (NATS); 429 with Retry-After past them.",
		"rate_limits.login":    "Password checks.",
		"rate_limits.recovery": "Password recovery (/recover).",
		"rate_limits.email":    "Verification emails.",
	}
	for _, r := range rateLimitTable() {
		docs["rate_limits."+r.key] = r.doc
	}
	return docs
}

// Bounds of a rate limit.
const (
	maxRateBurst  = 1_000_000
	minRateRefill = time.Millisecond
	maxRateRefill = 24 * time.Hour
	maxRateWindow = 366 * 24 * time.Hour // burst × refill: how long a count may be kept
)

// Captcha configures the CAPTCHA asked at registration (and at sign-in after
// failures).
type Captcha struct {
	// Provider is cloudflare_turnstile, hcaptcha or recaptcha_v2; empty: no
	// CAPTCHA (GATEHOUSE_CAPTCHA_PROVIDER).
	Provider string `yaml:"provider"`
	// SiteKey is the provider's public key of the site (GATEHOUSE_CAPTCHA_SITE_KEY).
	SiteKey string `yaml:"site_key"`
	// SecretKey is the provider's secret key; it only ever goes to the
	// provider's verify URL, never to a browser or a log (GATEHOUSE_CAPTCHA_SECRET_KEY).
	SecretKey Secret `yaml:"secret_key"`
	// VerifyURL replaces the provider's siteverify URL (a stand-in in tests,
	// a proxy); empty: the provider's (GATEHOUSE_CAPTCHA_VERIFY_URL).
	VerifyURL string `yaml:"verify_url"`
	// ScriptURL replaces the provider's widget script; empty: the
	// provider's (GATEHOUSE_CAPTCHA_SCRIPT_URL).
	ScriptURL string `yaml:"script_url"`
	// LoginAfterFailures asks for the CAPTCHA at sign-in once this many failed
	// attempts are counted against the client's address or the account
	// (rate_limits.login); 0: never (GATEHOUSE_CAPTCHA_LOGIN_AFTER_FAILURES).
	LoginAfterFailures int `yaml:"login_after_failures"`
}

// CaptchaProviders are the CAPTCHA providers Gatehouse speaks to.
func CaptchaProviders() []string {
	return []string{"cloudflare_turnstile", "hcaptcha", "recaptcha_v2"}
}

// Enabled reports whether a CAPTCHA is configured.
func (c Captcha) Enabled() bool { return c.Provider != "" }

// validateAbuse adds the problems of http.trusted_proxies, rate_limits and captcha.
func (p *problems) validateAbuse(c Config) {
	for _, s := range c.HTTP.TrustedProxies {
		if _, err := clientaddr.ParsePrefixes([]string{s}); err != nil {
			p.add("http.trusted_proxies", "%q is not a CIDR range or an IP address", s)
		}
	}
	p.oneOf("http.forwarded_header", c.HTTP.ForwardedHeader, "x-forwarded-for", "forwarded")

	for _, r := range rateLimitTable() {
		l := *r.at(&c)
		key := "rate_limits." + r.key
		switch {
		case l.Burst < 1 || l.Burst > maxRateBurst:
			p.add(key+".burst", "%d is not between 1 and %d", l.Burst, maxRateBurst)
		case l.RefillEvery < minRateRefill || l.RefillEvery > maxRateRefill:
			p.add(key+".refill_every", "%s is outside %s..%s", l.RefillEvery, minRateRefill, maxRateRefill)
		case float64(l.Burst)*l.RefillEvery.Seconds() > maxRateWindow.Seconds(): // in float: the product may not fit a Duration
			p.add(key, "burst × refill_every is %.0f hours, more than %.0f", float64(l.Burst)*l.RefillEvery.Hours(), maxRateWindow.Hours())
		}
	}

	cp := c.Captcha
	if cp.Provider == "" {
		if cp.SiteKey != "" || cp.SecretKey != "" || cp.LoginAfterFailures != 0 {
			p.add("captcha.provider", "must be set with the other captcha settings (one of %s)", strings.Join(CaptchaProviders(), ", "))
		}
		return
	}
	p.oneOf("captcha.provider", cp.Provider, CaptchaProviders()...)
	if cp.SiteKey == "" || strings.ContainsAny(cp.SiteKey, "\"'<> \t\r\n") {
		p.add("captcha.site_key", "must be the provider's site key")
	}
	if cp.SecretKey == "" {
		p.add("captcha.secret_key", "must be set with captcha.provider")
	}
	for key, u := range map[string]string{"captcha.verify_url": cp.VerifyURL, "captcha.script_url": cp.ScriptURL} {
		if u != "" {
			p.check(key, checkProviderURL(u))
		}
	}
	if cp.LoginAfterFailures < 0 || cp.LoginAfterFailures > maxRateBurst {
		p.add("captcha.login_after_failures", "%d is not between 0 and %d", cp.LoginAfterFailures, maxRateBurst)
	}
}

// checkProviderURL accepts an https URL, or an http one on a loopback host
// (a stand-in on this machine); the secret key is sent there.
func checkProviderURL(s string) error {
	if err := checkHTTPURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	if u.Scheme == "https" {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%q must be https (http only on a loopback host)", s)
}

// setDuration makes a setter of the time.Duration field that at returns.
func setDuration(at func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 20s or 1h", v)
		}
		*at(c) = d
		return nil
	}
}
