package e2e

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// TestWebBrowserFlows drives the sign-in, consent, device link, sign-out and
// registration pages of a real `gatehouse serve` with a real Chromium, as a
// person would, with golang.org/x/oauth2 as the application on the other end.
// The steps share one server and one browser, in order: the per-IP sign-in
// limit (3 attempts, then 3 a minute) covers the whole run, and the last step
// exhausts it on purpose.
func TestWebBrowserFlows(t *testing.T) {
	start := time.Now()
	e := newOAuthEnv(t)
	b := newBrowser(t)
	cb := newCallbackServer(t)
	client := e.client
	client.RedirectURL = cb.redirectURL()
	t.Cleanup(func() {
		if t.Failed() {
			log := e.s.log.String()
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("gatehouse serve log (end):\n%s", log)
		}
	})
	t.Logf("server and browser ready in %v", time.Since(start).Round(time.Millisecond))

	webSecurityHeadersAndCrossSitePosts(t, e)
	webSignInAndConsent(t, e, b, cb, client)
	webCancelOnConsent(t, e, b, cb, client)
	webDeviceLink(t, e, b)
	webNotFoundAndSignOut(t, e, b)
	webRegisterWithEmailedCode(t, e, b, cb, client)
	webSignInRateLimit(t, e)
	t.Logf("browser suite took %v", time.Since(start).Round(time.Millisecond))
}

// Every page is uncacheable, unframeable and runs no inline script; a
// state-changing POST from another site is refused with 403 before anything
// else (d), and one without the form's CSRF token is refused too.
func webSecurityHeadersAndCrossSitePosts(t *testing.T, e *oauthEnv) {
	resp, err := plainHTTP.Get(e.issuer + "login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors 'none'", "script-src 'self'", "form-action 'self'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline script: %q", csp)
	}
	for k, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	form := url.Values{"username": {"alice"}, "password": {"alice's password"}}.Encode()
	for name, headers := range map[string]map[string]string{
		"Origin of another site":      {"Origin": "https://evil.example"},
		"Sec-Fetch-Site: cross-site":  {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		"Sec-Fetch-Site: same-site":   {"Sec-Fetch-Site": "same-site"},
		"no CSRF token (same origin)": {},
	} {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"login", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := plainHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: POST /login answered %d, want 403", name, resp.StatusCode)
		}
		if strings.Contains(resp.Header.Get("Set-Cookie"), "gatehouse-session=") {
			t.Errorf("%s: POST /login signed in", name)
		}
		if !strings.Contains(body, "<html") {
			t.Errorf("%s: the refusal is not a page: %q", name, body)
		}
	}
}

// (a) and (e): the application sends the browser to /authorize, which sends
// it to the sign-in page with the login_hint filled in; a wrong password is
// shown next to the field, keeping the username; the right one leads to the
// consent page, and Continue returns a code that x/oauth2 exchanges.
func webSignInAndConsent(t *testing.T, e *oauthEnv, b *browser, cb *callbackServer, client oauth2.Config) {
	verifier := oauth2.GenerateVerifier()
	authURL := client.AuthCodeURL("state-a", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("login_hint", "mxid:@alice:example.org"))
	if status := b.open("authorize", authURL); status != http.StatusOK || !strings.Contains(b.location(), "/login?grant=") {
		t.Fatalf("authorize led to %d %s", status, b.location())
	}
	if got := b.value("username"); got != "alice" {
		t.Errorf("login_hint did not fill the username: %q", got)
	}
	if !strings.Contains(b.text("main"), "to continue to Test Client") {
		t.Errorf("sign-in page does not name the client:\n%s", b.text("main"))
	}
	b.page("login")
	b.do("phone-sized viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	b.page("login-phone")
	b.do("desktop viewport", chromedp.EmulateViewport(1024, 900, chromedp.EmulateScale(1)))

	b.fill("password", "not alice's password")
	if status := b.submit("wrong password", "button[type=submit]"); status != http.StatusUnauthorized {
		t.Errorf("wrong password answered %d, want 401", status)
	}
	if msg := b.text("#password-error"); !strings.Contains(msg, "username or password is incorrect") {
		t.Fatalf("no error next to the password:\n%s", b.pageText())
	}
	a := eval[map[string]string](b, `(() => { const p = document.getElementById("password"), e = document.getElementById("password-error");
		return {role: e.getAttribute("role"), describedby: p.getAttribute("aria-describedby") || "", invalid: p.getAttribute("aria-invalid") || "",
			focused: (document.activeElement && document.activeElement.id) || (p.hasAttribute("autofocus") ? p.id : "")}; })()`)
	if a["role"] != "alert" || !strings.Contains(a["describedby"], "password-error") || a["invalid"] != "true" || a["focused"] != "password" {
		t.Errorf("the password error is not tied to its field: %v", a)
	}
	if got, pw := b.value("username"), b.value("password"); got != "alice" || pw != "" {
		t.Errorf("after a wrong password: username %q (want kept), password %q (want empty)", got, pw)
	}
	b.page("login-wrong-password")

	b.fill("password", "alice's password")
	if status := b.submit("sign in", "button[type=submit]"); status != http.StatusOK || !strings.Contains(b.location(), "/consent?grant=") {
		t.Fatalf("sign-in led to %d %s\n%s", status, b.location(), b.pageText())
	}
	var session bool
	for _, c := range b.cookies(e.issuer) {
		if c.Name == "gatehouse-session" {
			session = true
			if !c.HTTPOnly || c.SameSite != "Lax" || c.Path != "/" || c.Secure {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/, not Secure over http", c)
			}
		}
	}
	if !session {
		t.Error("no gatehouse-session cookie after signing in")
	}
	text := b.text("main")
	for _, want := range []string{"Allow access to your account?", "Test Client wants to use your account", "Read your messages",
		"Sign in as a new device", "Know who you are", "@alice:example.org", "Not you? Sign out", "client.example.com"} {
		if !strings.Contains(text, want) {
			t.Errorf("consent page lacks %q:\n%s", want, text)
		}
	}
	b.page("consent")

	b.submit("continue", `button[value="allow"]`)
	q := cb.last(t)
	if q.Get("state") != "state-a" || q.Get("code") == "" || q.Get("iss") != e.issuer {
		t.Fatalf("callback: %v", q)
	}
	tok, err := client.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if got := e.introspect(t, tok.AccessToken); got["active"] != true || got["username"] != "alice" {
		t.Fatalf("introspection: %v", got)
	}
}

// (c): signed in already, the browser goes straight to the consent page;
// Cancel sends access_denied back to the application. The request cannot be
// answered twice.
func webCancelOnConsent(t *testing.T, e *oauthEnv, b *browser, cb *callbackServer, client oauth2.Config) {
	authURL := client.AuthCodeURL("state-c", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	b.open("authorize while signed in", authURL)
	consent := b.location()
	if !strings.Contains(consent, "/consent?grant=") {
		t.Fatalf("signed in, authorize led to %s", consent)
	}
	b.submit("cancel", `button[value="deny"]`)
	q := cb.last(t)
	if q.Get("error") != "access_denied" || q.Get("state") != "state-c" || q.Has("code") {
		t.Fatalf("callback after Cancel: %v", q)
	}
	if status := b.open("answered consent", consent); status != http.StatusConflict || !strings.Contains(b.text("main"), "already been answered") {
		t.Errorf("an answered request shows %d:\n%s", status, b.pageText())
	}
	b.page("error-answered")
}

// (f): a device shows a code; the person types it at /link, approves, and
// is told to return to the device, which gets its tokens.
func webDeviceLink(t *testing.T, e *oauthEnv, b *browser) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := e.deviceClient(t)
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if status := b.open("link", da.VerificationURI); status != http.StatusOK {
		t.Fatalf("/link answered %d", status)
	}
	b.page("link")
	b.fill("code", strings.ToLower(da.UserCode))
	b.submit("enter code", "button[type=submit]")
	text := b.text("main")
	for _, want := range []string{"Living Room TV on another device wants to use your account", da.UserCode, "@alice:example.org"} {
		if !strings.Contains(text, want) {
			t.Errorf("device consent lacks %q:\n%s", want, text)
		}
	}
	b.page("link-consent")
	b.submit("approve device", `button[value="allow"]`)
	if !strings.Contains(b.location(), "/link/done") || !strings.Contains(b.text("main"), "You can return to your device") {
		t.Fatalf("after approving:\n%s", b.pageText())
	}
	b.page("link-done")
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	if got := e.introspect(t, tok.AccessToken); got["active"] != true || got["username"] != "alice" || got["client_id"] != cfg.ClientID {
		t.Fatalf("device token introspection: %v", got)
	}
}

// The 404 page is a page of the site; signing out ends the session.
func webNotFoundAndSignOut(t *testing.T, e *oauthEnv, b *browser) {
	if status := b.open("unknown page", e.issuer+"no/such/page"); status != http.StatusNotFound || !strings.Contains(b.text("h1"), "Page not found") {
		t.Errorf("unknown page: %d %q", status, b.text("h1"))
	}
	b.page("not-found")
	b.open("home", e.issuer)
	if !strings.Contains(b.text("main"), "@alice:example.org") {
		t.Fatalf("home page does not show who is signed in:\n%s", b.pageText())
	}
	b.page("home-signed-in")
	b.submit("sign out", `form[action$="/logout"] button`)
	if !strings.Contains(b.text("main"), "You are not signed in") {
		t.Fatalf("after signing out:\n%s", b.pageText())
	}
	for _, c := range b.cookies(e.issuer) {
		if c.Name == "gatehouse-session" {
			t.Errorf("the session cookie survived signing out: %+v", c)
		}
	}
	b.page("home")
}

// (b): prompt=create leads to the registration form; mistakes are shown
// next to their fields, keeping what was typed except the passwords; the
// code emailed to the dev outbox creates the account, which is signed in and
// approves the application.
func webRegisterWithEmailedCode(t *testing.T, e *oauthEnv, b *browser, cb *callbackServer, client oauth2.Config) {
	verifier := oauth2.GenerateVerifier()
	authURL := client.AuthCodeURL("state-b", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "create"))
	if b.open("authorize with prompt=create", authURL); !strings.Contains(b.location(), "/register?grant=") {
		t.Fatalf("prompt=create led to %s", b.location())
	}
	b.page("register")
	b.fill("username", "carol")
	b.fill("email", "carol@example.org")
	b.fill("password", "correct horse battery staple")
	b.fill("password_confirm", "correct horse battery stapler")
	if status := b.submit("register with mismatched passwords", "button[type=submit]"); status != http.StatusBadRequest {
		t.Errorf("mismatched passwords answered %d", status)
	}
	if !strings.Contains(b.text("#password_confirm-error"), "not the same") {
		t.Fatalf("no error next to the confirmation:\n%s", b.pageText())
	}
	if b.value("username") != "carol" || b.value("email") != "carol@example.org" || b.value("password") != "" || b.value("password_confirm") != "" {
		t.Errorf("the form did not keep what was typed (or kept a password)")
	}
	b.page("register-error")

	b.fill("password", "correct horse battery staple")
	b.fill("password_confirm", "correct horse battery staple")
	b.submit("register", "button[type=submit]")
	if !strings.Contains(b.location(), "/register/verify") || !strings.Contains(b.text("main"), "carol@example.org") {
		t.Fatalf("after the registration form:\n%s", b.pageText())
	}
	for _, c := range b.cookies(e.issuer) {
		if strings.Contains(c.Value, "battery") {
			t.Errorf("cookie %s holds the password", c.Name)
		}
	}
	b.page("verify")
	code := emailedCode(t, e.s.dataDir, "carol@example.org")

	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	b.fill("code", wrong)
	b.submit("wrong code", "button[type=submit]")
	if b.text("#code-error") == "" {
		t.Errorf("no error next to a wrong code:\n%s", b.pageText())
	}
	b.page("verify-wrong-code")

	b.fill("code", code)
	if status := b.submit("verify", "button[type=submit]"); status != http.StatusOK || !strings.Contains(b.location(), "/consent?grant=") {
		t.Fatalf("after the code: %d\n%s", status, b.pageText())
	}
	if !strings.Contains(b.text("main"), "@carol:example.org") {
		t.Errorf("consent is not for the new account:\n%s", b.pageText())
	}
	b.submit("continue", `button[value="allow"]`)
	q := cb.last(t)
	if q.Get("state") != "state-b" || q.Get("code") == "" {
		t.Fatalf("callback: %v", q)
	}
	tok, err := client.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if got := e.introspect(t, tok.AccessToken); got["active"] != true || got["username"] != "carol" {
		t.Fatalf("introspection: %v", got)
	}
}

// Sign-in attempts from one address are limited: past the burst, the form
// says so with 429 and Retry-After, whatever the account.
func webSignInRateLimit(t *testing.T, e *oauthEnv) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: noRedirects, Timeout: 30 * time.Second}
	resp, err := c.Get(e.issuer + "login")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(readAll(resp.Body))
	resp.Body.Close()
	if m == nil {
		t.Fatal("no CSRF token on the sign-in page")
	}
	for i := range 8 {
		resp, err := c.PostForm(e.issuer+"login", url.Values{"csrf": {m[1]}, "username": {"nobody"}, "password": {"wrong password"}})
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			if !strings.Contains(body, "Too many sign-in attempts") || resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 without a clear message or Retry-After: %q", resp.Header.Get("Retry-After"))
			}
			return
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: status %d", i+1, resp.StatusCode)
		}
	}
	t.Fatal("8 wrong passwords in a row were never rate limited")
}
