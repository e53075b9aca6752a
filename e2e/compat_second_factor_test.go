package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestCompatSecondFactor: with account.second_factor=required, alice sets
// up an authenticator app at her first sign-in (compat SSO); then she is
// refused by the compat password login with
// M_FORBIDDEN telling the client to use m.login.sso, while the SSO path
// (the browser: password, then the app's code, then the confirmation) gives
// her client a login token that signs it in.
func TestCompatSecondFactor(t *testing.T) {
	e := newOAuthEnv(t, "GATEHOUSE_SECOND_FACTOR=required")
	b := newBrowser(t)
	cb := newCallbackServer(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})
	// Under this policy alice's first sign-in (compat SSO, in the browser)
	// sets up an authenticator app after the password: QR code and key,
	// a code computed from the key, recovery codes shown once.
	redirect := cb.redirectURL() + "?client=old"
	sso := e.issuer + "_matrix/client/v3/login/sso/redirect?" + url.Values{"redirectUrl": {redirect}}.Encode()
	b.open("sso redirect", sso)
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	b.submit("sign in", `form:not([data-passkey]) button[type=submit]`)
	if !strings.Contains(b.location(), "/login/second-factor?next=") || b.text("h1") != "Set up a second factor" {
		t.Fatalf("after the password, no set-up:\n%s", b.pageText())
	}
	b.page("second-factor-enrol")
	secret := strings.ReplaceAll(b.text("#totp-key"), " ", "")
	b.fill("code", totpAt(t, secret, time.Now()))
	b.submit("turn on", `input[value="enrol"] ~ button`)
	if n := eval[int](b, `document.querySelectorAll(".recovery-codes li").length`); n != 10 {
		t.Fatalf("after setting up: %d recovery codes\n%s", n, b.pageText())
	}
	b.page("second-factor-codes")
	b.navigate("continue", chromedp.Click(chromedp.CSS(`a.button.primary`)))
	if !strings.Contains(b.location(), "/complete-compat-sso/") {
		t.Fatalf("after the recovery codes:\n%s", b.pageText())
	}
	b.submit("continue", `button[value="continue"]`)
	if cb.last(t).Get("loginToken") == "" {
		t.Fatal("no login token after the first sign-in")
	}

	m := newMatrixClient(e)
	refused := m.post(t, "/_matrix/client/v3/login", "", alicePassword(nil))
	wantMatrixError(t, "compat password login with a second factor", refused, http.StatusForbidden, "M_FORBIDDEN")
	if !strings.Contains(refused.raw, "m.login.sso") {
		t.Fatalf("the refusal does not send the client to SSO: %s", refused.raw)
	}

	b.clearCookies()
	b.open("sso redirect again", sso)
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	b.submit("sign in", `form:not([data-passkey]) button[type=submit]`)
	if !strings.Contains(b.location(), "/login/second-factor?next=") {
		t.Fatalf("after the password:\n%s", b.pageText())
	}
	b.fill("code", totpAt(t, secret, time.Now().Add(30*time.Second)))
	b.submit("code", `input[value="totp"] ~ button`)
	if !strings.Contains(b.location(), "/complete-compat-sso/") {
		t.Fatalf("after the code:\n%s", b.pageText())
	}
	b.submit("continue", `button[value="continue"]`)
	token := cb.last(t).Get("loginToken")
	login := m.post(t, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": token})
	if login.status != http.StatusOK || login.body["user_id"] != "@alice:example.org" {
		t.Fatalf("m.login.token after SSO with the second factor: %d %s", login.status, login.raw)
	}
}
