package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// Issue 14, personal access tokens on the account page of a real
// `gatehouse serve`, in Chromium: a token made there works on the Matrix
// API path (the homeserver's introspection finds it active, as alice, with
// its own device, which the homeserver stand-in was given), the page shows
// its last use, and it stops working when revoked on the page — or when it
// expires. axe-core checks the page.
func TestPersonalTokensInBrowser(t *testing.T) {
	t.Parallel() // most of it is waiting for expiries: it runs beside the other waiting tests
	hs := newStandIn(t)
	e := newOAuthEnv(t, "GATEHOUSE_MATRIX_HOMESERVER_URL="+hs.URL())
	b := newBrowser(t)
	tokens := tokenv1.NewTokenServiceClient(e.conn)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})
	sessionNamed := func(name string) *tokenv1.Session {
		t.Helper()
		list, err := tokens.ListSessions(context.Background(), &tokenv1.ListSessionsRequest{UserId: e.user.GetId(), IncludeEnded: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list.GetSessions() {
			if s.GetKind() == "personal" && s.GetDeviceDisplayName() == name {
				return s
			}
		}
		t.Fatalf("no personal session %q", name)
		return nil
	}
	// timesOf counts the dates shown for the token named (created, last
	// used, expires): "Never" is no date.
	timesOf := func(name string) int {
		t.Helper()
		return eval[int](b, fmt.Sprintf(`[...document.querySelectorAll("li.item")].filter(li => li.querySelector(".item-title").innerText.startsWith(%q)).map(li => li.querySelectorAll("time").length)[0] ?? -1`, name))
	}

	// Signed out, the page asks to sign in first and comes back.
	b.open("tokens signed out", e.issuer+"account/tokens")
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	if status := b.submit("sign in", "button[type=submit]"); status != http.StatusOK || !strings.HasSuffix(b.location(), "/account/tokens") {
		t.Fatalf("sign-in led to %d %s", status, b.location())
	}
	if !strings.Contains(b.text("main"), "You have no personal access tokens") {
		t.Fatalf("tokens page:\n%s", b.pageText())
	}
	b.page("account-tokens")

	// A token that never expires, with a device of its own (the default).
	b.fill("token_name", "Backup script")
	b.submit("create a token", `form[action$="/account/tokens"] button.primary`)
	tokA := b.value("new_token")
	if !strings.HasPrefix(tokA, "mpt_") || !strings.Contains(b.text(".notice"), "token has been created") {
		t.Fatalf("after creating a token (%q):\n%s", tokA, b.pageText())
	}
	b.page("account-tokens-created")
	got := e.introspect(t, tokA)
	dev, _ := got["device_id"].(string)
	if got["active"] != true || got["sub"] != e.user.GetId() || got["username"] != "alice" || dev == "" ||
		!strings.Contains(got["scope"].(string), "urn:matrix:client:device:"+dev) || got["exp"] != nil {
		t.Fatalf("the token at introspection: %v", got)
	}
	if !slices.Contains(hs.devices("alice"), dev) {
		t.Fatalf("the homeserver has devices %v, not the token's %s", hs.devices("alice"), dev)
	}
	// Shown once: the page does not show it again.
	b.open("tokens again", e.issuer+"account/tokens")
	if strings.Contains(b.pageText(), tokA) {
		t.Fatal("the token is shown again")
	}
	// Its use shows: created and last used (and no expiry date).
	if n := timesOf("Backup script"); n != 2 {
		t.Fatalf("dates shown for the used token: %d\n%s", n, b.pageText())
	}

	// A token valid one minute, without a device.
	b.fill("token_name", "Short-lived")
	b.fill("expires_value", "1")
	b.do("choose minutes", chromedp.SetValue(chromedp.ID("expires_unit"), "minutes"))
	b.do("no device", chromedp.Click(chromedp.ID("token_device")))
	b.submit("create a short-lived token", `form[action$="/account/tokens"] button.primary`)
	tokB := b.value("new_token")
	got = e.introspect(t, tokB)
	if got["active"] != true || got["device_id"] != nil || got["exp"] == nil {
		t.Fatalf("the short-lived token: %v", got)
	}
	exp := time.Unix(int64(got["exp"].(float64)), 0)
	if d := time.Until(exp); d < 30*time.Second || d > 70*time.Second {
		t.Fatalf("expires in %v", d)
	}

	// Revoked on the page, token A stops working at once, and its device goes.
	a := sessionNamed("Backup script")
	b.submit("revoke token A", fmt.Sprintf(`form:has(input[name=id][value=%q]) button`, a.GetSessionId()))
	if !strings.Contains(b.text(".notice"), "no longer works") || strings.Contains(b.text(`section[aria-labelledby="tokens-heading"]`), "Backup script") {
		t.Fatalf("after revoking:\n%s", b.pageText())
	}
	b.page("account-tokens-revoked")
	if got := e.introspect(t, tokA); got["active"] != false {
		t.Fatalf("a revoked token: %v", got)
	}
	standInWait(t, "the revoked token's device deleted", func() bool { return !slices.Contains(hs.devices("alice"), dev) })

	// Token B stops working when it expires; the page says so.
	if err := waitFor(time.Until(exp)+30*time.Second, func() (bool, error) {
		return e.introspect(t, tokB)["active"] == false, nil
	}); err != nil {
		t.Fatalf("the expired token: %v", err)
	}
	if time.Now().Before(exp) {
		t.Fatalf("inactive before it expired (%v)", exp)
	}
	b.open("tokens after expiry", e.issuer+"account/tokens")
	if !strings.Contains(b.text("main"), "Expired") {
		t.Fatalf("the expired token:\n%s", b.pageText())
	}
	b.page("account-tokens-expired")
}
