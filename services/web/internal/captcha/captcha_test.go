package captcha

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

const (
	siteKey = "site-key-public"
	secret  = "secret-key-never-shown"
)

// standIn is a stand-in for a provider's siteverify endpoint (the real ones
// cannot be reached from tests): it accepts the token "good" for the
// configured secret, answering for hostname host.
type standIn struct {
	*httptest.Server
	mu     sync.Mutex
	forms  []url.Values
	host   string
	status int
}

func newStandIn(t *testing.T) *standIn {
	s := &standIn{host: "auth.example.org", status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		host, status := s.host, s.status
		s.mu.Unlock()
		if status != http.StatusOK {
			http.Error(w, "down", status)
			return
		}
		ok := r.Method == http.MethodPost && r.PostForm.Get("secret") == secret && r.PostForm.Get("response") == "good"
		answer := map[string]any{"success": ok, "hostname": host}
		if !ok {
			answer["error-codes"] = []string{"invalid-input-response"}
		}
		json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *standIn) last() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forms[len(s.forms)-1]
}

func TestVerify(t *testing.T) {
	for name := range Providers {
		t.Run(name, func(t *testing.T) {
			s := newStandIn(t)
			v, err := New(Config{Provider: name, SiteKey: siteKey, SecretKey: secret, VerifyURL: s.URL, Hostname: "auth.example.org"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := v.Verify(ctx, "good", "203.0.113.7"); err != nil {
				t.Fatalf("good token: %v", err)
			}
			f := s.last()
			if f.Get("secret") != secret || f.Get("response") != "good" || f.Get("remoteip") != "203.0.113.7" {
				t.Errorf("sent %v", f)
			}
			if (name == "hcaptcha") != (f.Get("sitekey") == siteKey) {
				t.Errorf("sitekey sent %q", f.Get("sitekey"))
			}
			for _, tt := range []struct {
				what  string
				token string
				edit  func()
			}{
				{"a wrong token", "bad", nil},
				{"no token", "", nil},
				{"a token solved on another site", "good", func() { s.host = "evil.example" }},
				{"an answer without hostname", "good", func() { s.host = "" }},
			} {
				if tt.edit != nil {
					tt.edit()
				}
				err := v.Verify(ctx, tt.token, "")
				if !errors.Is(err, ErrFailed) {
					t.Errorf("%s: %v, want ErrFailed", tt.what, err)
				}
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("%s: the error shows the secret", tt.what)
				}
			}
			s.status = http.StatusBadGateway
			err = v.Verify(ctx, "good", "")
			if err == nil || errors.Is(err, ErrFailed) || strings.Contains(err.Error(), secret) {
				t.Errorf("provider down: %v, want an error that is not ErrFailed and hides the secret", err)
			}
			s.Close()
			if err := v.Verify(ctx, "good", ""); err == nil || errors.Is(err, ErrFailed) || strings.Contains(err.Error(), secret) {
				t.Errorf("provider unreachable: %v", err)
			}
		})
	}
}

func TestWidgetAndSources(t *testing.T) {
	v, _ := New(Config{Provider: "cloudflare_turnstile", SiteKey: siteKey, SecretKey: secret}, nil)
	w := v.Widget("fr")
	if w.ScriptURL != "https://challenges.cloudflare.com/turnstile/v0/api.js" || w.Class != "cf-turnstile" || w.DataLanguage != "fr" {
		t.Errorf("turnstile widget %+v", w)
	}
	if got := v.Sources()["script-src"]; len(got) != 1 || got[0] != "https://challenges.cloudflare.com" {
		t.Errorf("turnstile script sources %v", got)
	}
	h, _ := New(Config{Provider: "hcaptcha", SiteKey: siteKey, SecretKey: secret}, nil)
	if w := h.Widget("fr"); w.ScriptURL != "https://js.hcaptcha.com/1/api.js?hl=fr" || w.DataLanguage != "" {
		t.Errorf("hcaptcha widget %+v", w)
	}
	// A replaced script: exactly its origin, for scripts and frames.
	s, _ := New(Config{Provider: "recaptcha_v2", SiteKey: siteKey, SecretKey: secret, ScriptURL: "http://127.0.0.1:9999/stand-in/api.js"}, nil)
	if got := s.Sources(); len(got) != 2 || got["script-src"][0] != "http://127.0.0.1:9999" || got["frame-src"][0] != "http://127.0.0.1:9999" {
		t.Errorf("stand-in sources %v", got)
	}
	if w := s.Widget("en"); w.ScriptURL != "http://127.0.0.1:9999/stand-in/api.js?hl=en" {
		t.Errorf("stand-in widget %+v", w)
	}
	for _, cfg := range []Config{{Provider: "recaptcha_v3", SiteKey: "x", SecretKey: "y"}, {Provider: "hcaptcha", SiteKey: "x"}} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestToken(t *testing.T) {
	v, _ := New(Config{Provider: "hcaptcha", SiteKey: siteKey, SecretKey: secret}, nil)
	for value, want := range map[string]string{"tok": "tok", " tok ": "tok", strings.Repeat("x", maxToken+1): ""} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(url.Values{"h-captcha-response": {value}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if got := v.Token(r); got != want {
			t.Errorf("Token(%.10q…) = %.10q", value, got)
		}
	}
}
