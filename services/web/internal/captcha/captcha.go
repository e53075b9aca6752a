// Package captcha asks a CAPTCHA provider whether the person filling a form
// solved its challenge: Cloudflare Turnstile, hCaptcha or Google reCAPTCHA v2.
//
// The page shows the provider's widget (its script, from the provider's
// origin, which the page's Content-Security-Policy allows on that page only);
// the widget puts a token into the form; the server posts the token with the
// secret key to the provider's siteverify URL and accepts the form only when
// the provider says the token is good, fresh and for this site's host. The
// secret key goes nowhere else: not to the browser, not to the log.
package captcha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Provider is what Gatehouse knows of a CAPTCHA service.
type Provider struct {
	// Name is the provider's name in the configuration (captcha.provider).
	Name string
	// Title names the provider to people (the text without JavaScript).
	Title string
	// ScriptURL is the widget's script.
	ScriptURL string
	// VerifyURL is the siteverify endpoint.
	VerifyURL string
	// Class marks the element the script turns into the widget.
	Class string
	// Field is the form field the widget fills with its token.
	Field string
	// DataLanguage says the widget element takes its language from a
	// data-language attribute; else LanguageParam is the script's query
	// parameter for it.
	DataLanguage  bool
	LanguageParam string
	// Sources are the CSP sources the widget needs, by directive, as the
	// provider documents them.
	Sources map[string][]string
}

// Providers are the supported providers, by configuration name.
var Providers = map[string]Provider{
	"cloudflare_turnstile": {
		Name: "cloudflare_turnstile", Title: "Cloudflare Turnstile",
		ScriptURL: "https://challenges.cloudflare.com/turnstile/v0/api.js",
		VerifyURL: "https://challenges.cloudflare.com/turnstile/v0/siteverify",
		Class:     "cf-turnstile", Field: "cf-turnstile-response", DataLanguage: true,
		Sources: map[string][]string{
			"script-src": {"https://challenges.cloudflare.com"},
			"frame-src":  {"https://challenges.cloudflare.com"},
		},
	},
	"hcaptcha": {
		Name: "hcaptcha", Title: "hCaptcha",
		ScriptURL: "https://js.hcaptcha.com/1/api.js",
		VerifyURL: "https://api.hcaptcha.com/siteverify",
		Class:     "h-captcha", Field: "h-captcha-response", LanguageParam: "hl",
		Sources: map[string][]string{
			"script-src":  {"https://hcaptcha.com", "https://*.hcaptcha.com"},
			"frame-src":   {"https://hcaptcha.com", "https://*.hcaptcha.com"},
			"style-src":   {"https://hcaptcha.com", "https://*.hcaptcha.com"},
			"connect-src": {"https://hcaptcha.com", "https://*.hcaptcha.com"},
		},
	},
	"recaptcha_v2": {
		Name: "recaptcha_v2", Title: "Google reCAPTCHA",
		ScriptURL: "https://www.google.com/recaptcha/api.js",
		VerifyURL: "https://www.google.com/recaptcha/api/siteverify",
		Class:     "g-recaptcha", Field: "g-recaptcha-response", LanguageParam: "hl",
		Sources: map[string][]string{
			"script-src": {"https://www.google.com/recaptcha/", "https://www.gstatic.com/recaptcha/"},
			"frame-src":  {"https://www.google.com/recaptcha/", "https://recaptcha.google.com/recaptcha/"},
		},
	},
}

// Config selects and configures a provider (the captcha section).
type Config struct {
	Provider  string
	SiteKey   string
	SecretKey string
	// VerifyURL and ScriptURL replace the provider's (a stand-in in tests).
	VerifyURL, ScriptURL string
	// Hostname is this site's host, which a token must have been made on.
	Hostname string
}

// Verifier checks the tokens of one provider.
type Verifier struct {
	p       Provider
	siteKey string
	secret  string
	host    string
	client  *http.Client
	sources map[string][]string
}

// timeout bounds one siteverify call.
const timeout = 10 * time.Second

// maxToken bounds the token a form may carry: the providers' are about 2 KB.
const maxToken = 8 << 10

// New returns the verifier of cfg's provider; client nil uses one with a
// timeout. With ScriptURL replaced, the page allows that script's origin
// instead of the provider's.
func New(cfg Config, client *http.Client) (*Verifier, error) {
	p, ok := Providers[cfg.Provider]
	if !ok {
		return nil, fmt.Errorf("captcha: unknown provider %q", cfg.Provider)
	}
	if cfg.SiteKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("captcha: the site key and the secret key are required")
	}
	v := &Verifier{p: p, siteKey: cfg.SiteKey, secret: cfg.SecretKey, host: cfg.Hostname, client: client, sources: p.Sources}
	if cfg.VerifyURL != "" {
		v.p.VerifyURL = cfg.VerifyURL
	}
	if cfg.ScriptURL != "" {
		u, err := url.Parse(cfg.ScriptURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("captcha: script URL %q is not an absolute URL", cfg.ScriptURL)
		}
		origin := u.Scheme + "://" + u.Host
		v.p.ScriptURL = cfg.ScriptURL
		v.sources = map[string][]string{"script-src": {origin}, "frame-src": {origin}}
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: timeout}
	}
	return v, nil
}

// Widget is what a page shows of the CAPTCHA.
type Widget struct {
	// ScriptURL is the provider's script, in the page's language.
	ScriptURL string
	// Class, SiteKey and DataLanguage (data-language, when set) make the
	// widget's element.
	Class, SiteKey, DataLanguage string
	// Title names the provider (the text without JavaScript).
	Title string
}

// Widget returns the widget for a page in language lang.
func (v *Verifier) Widget(lang string) Widget {
	w := Widget{ScriptURL: v.p.ScriptURL, Class: v.p.Class, SiteKey: v.siteKey, Title: v.p.Title}
	switch {
	case v.p.DataLanguage:
		w.DataLanguage = lang
	case v.p.LanguageParam != "":
		if u, err := url.Parse(w.ScriptURL); err == nil {
			q := u.Query()
			q.Set(v.p.LanguageParam, lang)
			u.RawQuery = q.Encode()
			w.ScriptURL = u.String()
		}
	}
	return w
}

// Sources are the CSP sources, by directive, that a page showing the widget
// adds to its policy.
func (v *Verifier) Sources() map[string][]string { return v.sources }

// Token is the widget's token in a posted form, "" when there is none (or
// it is too long to be one).
func (v *Verifier) Token(r *http.Request) string {
	t := strings.TrimSpace(r.PostFormValue(v.p.Field))
	if len(t) > maxToken {
		return ""
	}
	return t
}

// ErrFailed is a token the provider refused: missing, wrong, expired, used,
// or made for another site.
var ErrFailed = errors.New("captcha: not solved")

// verifyAnswer is the siteverify answer the three providers share.
type verifyAnswer struct {
	Success  bool     `json:"success"`
	Hostname string   `json:"hostname"`
	Errors   []string `json:"error-codes"`
}

// Verify asks the provider about token, made by a client at remoteIP
// (optional). It returns nil when the token is good, ErrFailed (wrapped with
// the provider's reasons) when it is not, and another error when the
// provider cannot be asked. The error never holds the secret key.
func (v *Verifier) Verify(ctx context.Context, token, remoteIP string) error {
	if token == "" {
		return fmt.Errorf("%w: no token", ErrFailed)
	}
	form := url.Values{"secret": {v.secret}, "response": {token}}
	if remoteIP != "" {
		form.Set("remoteip", remoteIP)
	}
	if v.p.Name == "hcaptcha" {
		form.Set("sitekey", v.siteKey)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.p.VerifyURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("captcha: verify request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := v.client.Do(req)
	if err != nil {
		// *url.Error names the URL, never the body holding the secret.
		return fmt.Errorf("captcha: ask %s: %w", v.p.Title, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("captcha: %s answered %s", v.p.Title, resp.Status)
	}
	var a verifyAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&a); err != nil {
		return fmt.Errorf("captcha: %s answered something else than JSON: %w", v.p.Title, err)
	}
	switch {
	case !a.Success:
		return fmt.Errorf("%w: %s", ErrFailed, strings.Join(a.Errors, ", "))
	case v.host != "" && !strings.EqualFold(a.Hostname, v.host):
		return fmt.Errorf("%w: solved on %q, not %q", ErrFailed, a.Hostname, v.host)
	}
	return nil
}
