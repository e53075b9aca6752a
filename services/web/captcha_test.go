package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

const captchaSecret = "captcha secret that stays on the server"

// captchaStandIn stands in for a CAPTCHA provider's siteverify endpoint (no
// real one can be reached from tests): the token "solved" is good.
type captchaStandIn struct {
	*httptest.Server
	mu    sync.Mutex
	forms []url.Values
	down  atomic.Bool // answers 502, as a provider that cannot be reached
}

func newCaptchaStandIn(t *testing.T, host string) *captchaStandIn {
	s := &captchaStandIn{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		r.ParseForm()
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		s.mu.Unlock()
		ok := r.PostForm.Get("secret") == captchaSecret && r.PostForm.Get("response") == "solved"
		json.NewEncoder(w).Encode(map[string]any{"success": ok, "hostname": host})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *captchaStandIn) calls() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.forms...)
}

// registering answers the calls of a registration.
type registering struct {
	*fakeAccounts
	started int
}

func (f *registering) GetUserByUsername(context.Context, *accountsv1.GetUserByUsernameRequest, ...grpc.CallOption) (*accountsv1.GetUserByUsernameResponse, error) {
	return nil, errs.NotFound("no such user")
}

func (f *registering) StartRegistration(context.Context, *accountsv1.StartRegistrationRequest, ...grpc.CallOption) (*accountsv1.StartRegistrationResponse, error) {
	f.started++
	return &accountsv1.StartRegistrationResponse{Registration: &accountsv1.Registration{RegistrationId: "01HWWWWWWWWWWWWWWWWWWWWWWW"}}, nil
}

type freeNames struct{ tokenv1.TokenServiceClient }

func (freeNames) IsLocalpartAvailable(context.Context, *tokenv1.IsLocalpartAvailableRequest, ...grpc.CallOption) (*tokenv1.IsLocalpartAvailableResponse, error) {
	return &tokenv1.IsLocalpartAvailableResponse{Available: true}, nil
}

// captchaEnv is the pages with a CAPTCHA verified by a stand-in.
type captchaEnv struct {
	*testEnv
	standIn *captchaStandIn
	reg     *registering
}

func newCaptchaEnv(t *testing.T, loginAfter int) *captchaEnv {
	t.Helper()
	e := &captchaEnv{testEnv: &testEnv{accounts: &fakeAccounts{sessions: map[string]*accountsv1.User{}}, authz: &fakeAuthorize{}}}
	e.reg = &registering{fakeAccounts: e.accounts}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.standIn = newCaptchaStandIn(t, "127.0.0.1")
	svc, err := New(Config{PublicURL: e.srv.URL + "/", ServerName: "example.org", Captcha: CaptchaConfig{
		Provider: "cloudflare_turnstile", SiteKey: "0x4AAAsite", SecretKey: captchaSecret,
		VerifyURL: e.standIn.URL + "/siteverify", ScriptURL: "https://captcha.stand-in.example/api.js", LoginAfterFailures: loginAfter,
	}}, Deps{Accounts: e.reg, Authorize: e.authz, Token: freeNames{}, Notify: &countingNotify{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	svc.RegisterHTTP(mux)
	return e
}

func TestRegistrationAsksForTheCaptcha(t *testing.T) {
	e := newCaptchaEnv(t, 0)
	c := e.client()
	resp, page := get(t, c, e.srv.URL+"/register")
	policy := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self' https://captcha.stand-in.example;", "frame-src https://captcha.stand-in.example"} {
		if !strings.Contains(policy, want) {
			t.Errorf("CSP %q lacks %q", policy, want)
		}
	}
	for _, want := range []string{
		`<div class="cf-turnstile" data-sitekey="0x4AAAsite" data-language="en"></div>`,
		`<script src="https://captcha.stand-in.example/api.js" async defer></script>`,
		"<noscript>", "needs JavaScript, which is off in your browser",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("registration page lacks %q", want)
		}
	}
	if strings.Contains(page, captchaSecret) {
		t.Fatal("the page shows the CAPTCHA secret")
	}
	// The sign-in page does not show it, nor allow the provider.
	resp, page = get(t, c, e.srv.URL+"/login")
	if strings.Contains(page, "cf-turnstile") || strings.Contains(resp.Header.Get("Content-Security-Policy"), "stand-in") {
		t.Errorf("sign-in page with the CAPTCHA: %s", resp.Header.Get("Content-Security-Policy"))
	}

	post := func(token string) (*http.Response, string) {
		_, page := get(t, c, e.srv.URL+"/register")
		form := url.Values{"csrf": {csrfField.FindStringSubmatch(page)[1]}, "username": {"newcomer"}, "email": {"newcomer@example.org"},
			"password": {"a long and unusual passphrase 42"}, "password_confirm": {"a long and unusual passphrase 42"}}
		if token != "" {
			form.Set("cf-turnstile-response", token)
		}
		return post(t, c, e.srv.URL+"/register", form)
	}
	resp, page = post("")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Complete the check above") || len(e.standIn.calls()) != 0 {
		t.Fatalf("without a token: %d, %d calls to the provider\n%s", resp.StatusCode, len(e.standIn.calls()), page)
	}
	resp, page = post("forged")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "The check did not succeed") || e.reg.started != 0 {
		t.Fatalf("with a refused token: %d, %d registrations\n%s", resp.StatusCode, e.reg.started, page)
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "https://captcha.stand-in.example") || !strings.Contains(page, "cf-turnstile") {
		t.Error("the form shown again has no CAPTCHA")
	}
	calls := e.standIn.calls()
	if last := calls[len(calls)-1]; last.Get("secret") != captchaSecret || last.Get("response") != "forged" || last.Get("remoteip") != "127.0.0.1" {
		t.Errorf("siteverify got %v", last)
	}
	// The provider cannot be reached: the page may pass, and says when to come back.
	e.standIn.down.Store(true)
	resp, page = post("solved")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || e.reg.started != 0 {
		t.Fatalf("with the provider down: %d (Retry-After %q), %d registrations\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), e.reg.started, page)
	}
	e.standIn.down.Store(false)
	resp, page = post("solved")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "register/verify") || e.reg.started != 1 {
		t.Fatalf("with a good token: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
}

func TestSignInAsksForTheCaptchaAfterFailures(t *testing.T) {
	e := newCaptchaEnv(t, 2)
	login := func(password, token string) (*http.Response, string) {
		c := e.client()
		_, page := get(t, c, e.srv.URL+"/login")
		form := url.Values{"csrf": {csrfField.FindStringSubmatch(page)[1]}, "username": {"alice"}, "password": {password}}
		if token != "" {
			form.Set("cf-turnstile-response", token)
		}
		return post(t, c, e.srv.URL+"/login", form)
	}
	for i := range 2 {
		if resp, page := login("wrong", ""); resp.StatusCode != http.StatusUnauthorized || (i == 0) == strings.Contains(page, "cf-turnstile") {
			t.Fatalf("failure %d: %d, CAPTCHA shown %v", i+1, resp.StatusCode, strings.Contains(page, "cf-turnstile"))
		}
	}
	if _, page := get(t, e.client(), e.srv.URL+"/login"); !strings.Contains(page, "cf-turnstile") {
		t.Fatal("after two failures the sign-in page has no CAPTCHA")
	}
	verified := e.accounts.verified
	resp, page := login("alice's password", "")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Complete the check above") || e.accounts.verified != verified {
		t.Fatalf("without a token: %d, passwords checked %d\n%s", resp.StatusCode, e.accounts.verified-verified, page)
	}
	if resp, _ := login("alice's password", "solved"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("with a good token and the right password: %d", resp.StatusCode)
	}
}

func TestExtendCSP(t *testing.T) {
	got := extendCSP(csp, map[string][]string{"script-src": {"https://a.example"}, "frame-src": {"https://a.example"}, "connect-src": {"https://b.example"}})
	want := "default-src 'none'; script-src 'self' https://a.example; style-src 'self'; img-src 'self' https:; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; connect-src https://b.example; frame-src https://a.example"
	if got != want {
		t.Errorf("extendCSP:\n got %s\nwant %s", got, want)
	}
}
