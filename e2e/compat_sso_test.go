package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCompatSSOInBrowser signs in as an old Matrix client (Element before
// OAuth) does with m.login.sso: the browser opens
// /_matrix/client/v3/login/sso/redirect?redirectUrl=<the client>, signs in,
// confirms the destination host, and lands on the client with a loginToken
// that the client exchanges at /_matrix/client/v3/login for an access token.
func TestCompatSSOInBrowser(t *testing.T) {
	e := newOAuthEnv(t)
	b := newBrowser(t)
	cb := newCallbackServer(t)
	t.Cleanup(func() {
		if t.Failed() {
			log := e.s.log.String()
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("gatehouse serve log (end):\n%s", log)
		}
	})
	ssoURL := func(path, redirect string, extra ...string) string {
		q := url.Values{"redirectUrl": {redirect}}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		return e.issuer + strings.TrimPrefix(path, "/") + "?" + q.Encode()
	}
	const v3 = "/_matrix/client/v3/login/sso/redirect"

	// Bad redirect URLs are refused with a page, never followed.
	for _, bad := range []string{"", "javascript:alert(1)", "//evil.example/", "ftp://evil.example/", "https://client.example@evil.example/",
		"https://évil.example/", "http:///nohost", "https://evil.example/\x00"} {
		resp, err := plainHTTP.Get(ssoURL(v3, bad))
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "not valid") {
			t.Errorf("redirectUrl %q: %d Location %q", bad, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// The token service still answers the login API beside these paths.
	if r := newMatrixClient(e).do(t, http.MethodGet, "/_matrix/client/v3/login", "", ""); r.status != http.StatusOK || !strings.Contains(r.raw, "m.login.sso") {
		t.Errorf("GET /_matrix/client/v3/login: %d %s", r.status, r.raw)
	}
	// action=register (and its unstable name) leads to the registration page.
	for _, action := range []string{"action", "org.matrix.msc3824.action"} {
		resp, err := plainHTTP.Get(ssoURL(v3, cb.redirectURL(), action, "register"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		complete := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(complete, "/complete-compat-sso/") {
			t.Fatalf("%s=register: %d %q", action, resp.StatusCode, complete)
		}
		resp, err = plainHTTP.Get(e.issuer + strings.TrimPrefix(complete, "/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := "/register?" + url.Values{"next": {complete}}.Encode()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != want {
			t.Errorf("%s=register, not signed in: %d %q", action, resp.StatusCode, loc)
		}
	}

	// Sign in, confirm, and come back with a login token.
	redirect := cb.redirectURL() + "?client=element&x=1"
	if status := b.open("sso redirect", ssoURL(v3, redirect)); status != http.StatusOK || !strings.Contains(b.location(), "/login?next=") {
		t.Fatalf("the SSO redirect led to %d %s", status, b.location())
	}
	b.page("sso-login")
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	b.submit("sign in", "button[type=submit]")
	if !strings.Contains(b.location(), "/complete-compat-sso/") {
		t.Fatalf("signing in led to %s\n%s", b.location(), b.pageText())
	}
	host := strings.TrimPrefix(cb.URL, "http://")
	if h1 := b.text("h1"); h1 != "Continue to "+host+"?" {
		t.Errorf("the confirmation's heading is %q", h1)
	}
	text := b.text("main")
	for _, want := range []string{host, "@alice:example.org", "Only continue if you started this sign-in yourself", "Not you? Sign out"} {
		if !strings.Contains(text, want) {
			t.Errorf("the confirmation lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "secure connection") {
		t.Errorf("a loopback client is warned about http:\n%s", text)
	}
	b.page("sso-confirm")
	b.do("phone-sized viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	b.page("sso-confirm-phone")
	b.do("desktop viewport", chromedp.EmulateViewport(1024, 900, chromedp.EmulateScale(1)))
	confirm := b.location()

	b.submit("continue", `button[value="continue"]`)
	q := cb.last(t)
	token := q.Get("loginToken")
	if token == "" || q.Get("client") != "element" || q.Get("x") != "1" {
		t.Fatalf("the client got %v", q)
	}
	m := newMatrixClient(e)
	login := m.post(t, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": token, "initial_device_display_name": "Old Element"})
	if login.status != http.StatusOK {
		t.Fatalf("m.login.token: %d %s", login.status, login.raw)
	}
	if login.body["user_id"] != "@alice:example.org" {
		t.Errorf("m.login.token signed in %v", login.body["user_id"])
	}
	access, _ := login.body["access_token"].(string)
	if got := e.introspect(t, access); got["active"] != true || got["username"] != "alice" {
		t.Fatalf("introspection of the SSO login: %v", got)
	}
	again := m.post(t, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": token})
	wantMatrixError(t, "a login token used twice", again, http.StatusForbidden, "M_FORBIDDEN")

	// The confirmation is signed, not stored (services/web/sso.go): until it
	// expires the same signed-in browser may see it again (and each Continue
	// gives a new single-use login token). A changed id is refused.
	if status := b.open("answered confirmation", confirm); status != http.StatusOK {
		t.Errorf("an answered confirmation shows %d\n%s", status, b.pageText())
	}
	if status := b.open("changed confirmation", confirm+"x"); status != http.StatusNotFound {
		t.Errorf("a changed confirmation id shows %d\n%s", status, b.pageText())
	}

	// Signed in already (r0, with an idp): straight to the confirmation;
	// Cancel gives the client nothing.
	hits := len(cb.hits)
	b.open("sso redirect while signed in", ssoURL("/_matrix/client/r0/login/sso/redirect/oidc-example", redirect))
	if !strings.Contains(b.location(), "/complete-compat-sso/") {
		t.Fatalf("signed in, the SSO redirect led to %s", b.location())
	}
	b.submit("cancel", `button[value="cancel"]`)
	if !strings.Contains(b.text("main"), "Sign-in cancelled") || !strings.Contains(b.text("main"), host) {
		t.Errorf("after Cancel:\n%s", b.pageText())
	}
	b.page("sso-cancelled")
	cb.mu.Lock()
	if len(cb.hits) != hits {
		t.Errorf("Cancel reached the client: %v", cb.hits[hits:])
	}
	cb.mu.Unlock()
}
