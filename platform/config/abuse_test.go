package config_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/platform/config"
)

func TestAbuseDefaults(t *testing.T) {
	c := config.Default()
	if got, want := c.HTTP.TrustedProxies, []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8"}; !reflect.DeepEqual(got, want) {
		t.Errorf("trusted proxies %v", got)
	}
	if c.HTTP.ForwardedHeader != "x-forwarded-for" {
		t.Errorf("forwarded header %q", c.HTTP.ForwardedHeader)
	}
	// MAS's defaults where MAS has the limit.
	for name, tt := range map[string]struct{ got, want config.RateLimit }{
		"login.per_ip":         {c.RateLimits.Login.PerIP, config.RateLimit{Burst: 3, RefillEvery: 20 * time.Second}},
		"login.per_account":    {c.RateLimits.Login.PerAccount, config.RateLimit{Burst: 1800, RefillEvery: 2 * time.Second}},
		"registration":         {c.RateLimits.Registration, config.RateLimit{Burst: 3, RefillEvery: 20 * time.Minute}},
		"recovery.per_ip":      {c.RateLimits.Recovery.PerIP, config.RateLimit{Burst: 3, RefillEvery: 20 * time.Minute}},
		"recovery.per_address": {c.RateLimits.Recovery.PerAddress, config.RateLimit{Burst: 3, RefillEvery: time.Hour}},
		"email.per_ip":         {c.RateLimits.Email.PerIP, config.RateLimit{Burst: 5, RefillEvery: time.Minute}},
		"email.per_address":    {c.RateLimits.Email.PerAddress, config.RateLimit{Burst: 3, RefillEvery: time.Hour}},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %+v, want %+v", name, tt.got, tt.want)
		}
	}
	if c.Captcha.Enabled() {
		t.Error("a CAPTCHA by default")
	}
}

func TestAbuseSettingsFromFileAndEnv(t *testing.T) {
	path := writeFile(t, `
http:
  trusted_proxies: []
rate_limits:
  login:
    per_ip: {burst: 5, refill_every: 1m}
  authorization:
    burst: 100
captcha:
  provider: hcaptcha
  site_key: 10000000-ffff-ffff-ffff-000000000001
  secret_key: 0x0000000000000000000000000000000000000000
`)
	c, err := config.Load(path, []string{
		"GATEHOUSE_RATE_LIMIT_LOGIN_PER_ACCOUNT_BURST=50",
		"GATEHOUSE_RATE_LIMIT_REGISTRATION_REFILL_EVERY=90s",
		"GATEHOUSE_HTTP_FORWARDED_HEADER=Forwarded",
		"GATEHOUSE_CAPTCHA_LOGIN_AFTER_FAILURES=2",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"trusted proxies from YAML: nobody", c.HTTP.TrustedProxies, []string{}},
		{"forwarded header from env, lower-cased", c.HTTP.ForwardedHeader, "forwarded"},
		{"login per IP from YAML", c.RateLimits.Login.PerIP, config.RateLimit{Burst: 5, RefillEvery: time.Minute}},
		{"authorization burst from YAML, refill kept", c.RateLimits.Authorization, config.RateLimit{Burst: 100, RefillEvery: 2 * time.Second}},
		{"login per account burst from env", c.RateLimits.Login.PerAccount.Burst, 50},
		{"registration refill from env", c.RateLimits.Registration.RefillEvery, 90 * time.Second},
		{"captcha", c.Captcha.Provider, "hcaptcha"},
		{"captcha after failures", c.Captcha.LoginAfterFailures, 2},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
	c, err = config.Load("", []string{"GATEHOUSE_HTTP_TRUSTED_PROXIES=10.1.0.0/16, 2001:db8::1"})
	if err != nil || !reflect.DeepEqual(c.HTTP.TrustedProxies, []string{"10.1.0.0/16", "2001:db8::1"}) {
		t.Errorf("trusted proxies from env: %v %v", c.HTTP.TrustedProxies, err)
	}
}

func TestValidateAbuseSettings(t *testing.T) {
	captcha := func(c *config.Config) {
		c.Captcha = config.Captcha{Provider: "cloudflare_turnstile", SiteKey: "1x00000000000000000000AA", SecretKey: "1x0000000000000000000000000000000AA"}
	}
	tests := []struct {
		name string
		edit func(*config.Config)
		want string // "" for valid
	}{
		{"defaults", func(*config.Config) {}, ""},
		{"a proxy that is not a range", func(c *config.Config) { c.HTTP.TrustedProxies = []string{"proxy.internal"} },
			`http.trusted_proxies: "proxy.internal" is not a CIDR range`},
		{"a range with host bits is fine", func(c *config.Config) { c.HTTP.TrustedProxies = []string{"10.1.2.3/8"} }, ""},
		{"another header", func(c *config.Config) { c.HTTP.ForwardedHeader = "x-real-ip" }, `http.forwarded_header: "x-real-ip" is not one of`},
		{"zero burst", func(c *config.Config) { c.RateLimits.Login.PerIP.Burst = 0 }, "rate_limits.login.per_ip.burst: 0 is not between 1"},
		{"zero refill", func(c *config.Config) { c.RateLimits.Email.PerSession.RefillEvery = 0 }, "rate_limits.email.per_session.refill_every: 0s is outside"},
		{"refill beyond a day", func(c *config.Config) { c.RateLimits.Authorization.RefillEvery = 25 * time.Hour }, "rate_limits.authorization.refill_every: 25h0m0s is outside"},
		{"window beyond 30 days", func(c *config.Config) {
			c.RateLimits.Registration = config.RateLimit{Burst: 1000, RefillEvery: 24 * time.Hour}
		},
			"rate_limits.registration: burst × refill_every is 24000 hours, more than 8784"},
		{"window beyond what a Duration holds", func(c *config.Config) {
			c.RateLimits.Registration = config.RateLimit{Burst: 1000000, RefillEvery: 24 * time.Hour}
		},
			"rate_limits.registration: burst × refill_every is"},
		{"captcha", captcha, ""},
		{"captcha with stand-in URLs on loopback", func(c *config.Config) {
			captcha(c)
			c.Captcha.VerifyURL, c.Captcha.ScriptURL = "http://127.0.0.1:9999/siteverify", "http://localhost:9999/api.js"
		}, ""},
		{"captcha verify URL over http elsewhere", func(c *config.Config) { captcha(c); c.Captcha.VerifyURL = "http://captcha.example/siteverify" },
			`captcha.verify_url: "http://captcha.example/siteverify" must be https`},
		{"unknown provider", func(c *config.Config) { captcha(c); c.Captcha.Provider = "recaptcha_v3" }, `captcha.provider: "recaptcha_v3" is not one of`},
		{"no secret", func(c *config.Config) { captcha(c); c.Captcha.SecretKey = "" }, "captcha.secret_key: must be set"},
		{"site key with markup", func(c *config.Config) { captcha(c); c.Captcha.SiteKey = `"><script>` }, "captcha.site_key: must be"},
		{"keys without provider", func(c *config.Config) { c.Captcha.SiteKey = "x" }, "captcha.provider: must be set"},
		{"negative failures", func(c *config.Config) { captcha(c); c.Captcha.LoginAfterFailures = -1 }, "captcha.login_after_failures: -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCaptchaSecretRedacted(t *testing.T) {
	const secret = "0x4AAAAAAAcaptcha-secret-key"
	c := config.Default()
	c.Captcha = config.Captcha{Provider: "cloudflare_turnstile", SiteKey: "0x4AAAAAAAsite", SecretKey: secret}
	var log bytes.Buffer
	slog.New(slog.NewTextHandler(&log, nil)).Info("config", "config", c)
	yaml, err := c.Redacted().YAML()
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"String": c.String(), "GoString": fmt.Sprintf("%#v", c), "log": log.String(), "redacted YAML": string(yaml),
	} {
		if strings.Contains(text, secret) {
			t.Errorf("%s shows the CAPTCHA secret", name)
		}
	}
	if !strings.Contains(log.String(), "captcha=cloudflare_turnstile") {
		t.Errorf("the log does not name the provider:\n%s", log.String())
	}
}

func TestGenerateShowsEveryRateLimit(t *testing.T) {
	out, err := config.Default().YAML()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{
		"rate_limits:", "GATEHOUSE_RATE_LIMIT_LOGIN_PER_IP_BURST", "GATEHOUSE_RATE_LIMIT_LOGIN_PER_IP_REFILL_EVERY",
		"refill_every: 20s", "Failed sign-ins (web and compat) per client address",
		"GATEHOUSE_RATE_LIMIT_AUTHORIZATION_BURST", "GATEHOUSE_RATE_LIMIT_EMAIL_PER_SESSION_REFILL_EVERY",
		"GATEHOUSE_HTTP_TRUSTED_PROXIES", "GATEHOUSE_CAPTCHA_SECRET_KEY",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("config generate lacks %q", want)
		}
	}
}
