package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// TestAccountPagesInBrowser drives the account pages (/account) of a real
// `gatehouse serve` in Chromium: sign in through the next= redirect, change
// the display name, sign an application out and see its token die at
// /oauth2/introspect, add an email address with the emailed code, change the
// password (signing the other browsers out), follow the MSC4191 deep links
// (device_delete among them) and deactivate the account. Every page gets a
// screenshot and an axe-core check.
func TestAccountPagesInBrowser(t *testing.T) {
	start := time.Now()
	e := newOAuthEnv(t)
	b := newBrowser(t)
	ctx := context.Background()
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	tokens := tokenv1.NewTokenServiceClient(e.conn)
	t.Cleanup(func() {
		if t.Failed() {
			log := e.s.log.String()
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("gatehouse serve log (end):\n%s", log)
		}
	})

	// Two applications' sessions and one old-style (compat) device for alice.
	tokA, tokB := oauthAccessToken(t, e), oauthAccessToken(t, e)
	devA, _ := e.introspect(t, tokA)["device_id"].(string)
	devB, _ := e.introspect(t, tokB)["device_id"].(string)
	if devA == "" || devB == "" || devA == devB {
		t.Fatalf("device ids %q %q", devA, devB)
	}
	compat := compatLogin(t, e, alicePassword(map[string]any{"device_id": "COMPATDEV1", "initial_device_display_name": "Old phone"}))
	compatToken, _ := compat["access_token"].(string)
	sessionOf := func(device string) string {
		t.Helper()
		list, err := tokens.ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: e.user.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list.GetSessions() {
			if s.GetDeviceId() == device {
				return s.GetSessionId()
			}
		}
		t.Fatalf("no session of device %s", device)
		return ""
	}

	// Cross-site posts are refused before anything else.
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"account/profile", strings.NewReader("display_name=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := plainHTTP.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin POST /account/profile: %v %v", resp.StatusCode, err)
	}

	// Signed out, /account goes to the sign-in page and back.
	b.open("account signed out", e.issuer+"account")
	if loc := b.location(); !strings.Contains(loc, "/login?next=%2Faccount") {
		t.Fatalf("signed out, /account led to %s", loc)
	}
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	if status := b.submit("sign in", "button[type=submit]"); status != http.StatusOK || !strings.HasSuffix(b.location(), "/account") {
		t.Fatalf("sign-in with next led to %d %s\n%s", status, b.location(), b.pageText())
	}
	main := b.text("main")
	for _, want := range []string{"Your account", "@alice:example.org", "Display name", "Email addresses", "Deactivate"} {
		if !strings.Contains(main, want) {
			t.Errorf("profile page lacks %q:\n%s", want, main)
		}
	}
	b.page("account-profile")

	// Display name.
	b.fill("display_name", "Alice Liddell")
	b.submit("save display name", `form[action$="/account/profile"] button`)
	if !strings.Contains(b.text(".notice"), "display name has been saved") || b.value("display_name") != "Alice Liddell" {
		t.Fatalf("after saving the display name:\n%s", b.pageText())
	}
	if u, err := accounts.GetUser(ctx, &accountsv1.GetUserRequest{UserId: e.user.GetId()}); err != nil || u.GetUser().GetDisplayName() != "Alice Liddell" {
		t.Fatalf("display name in accounts: %v %v", u, err)
	}
	b.page("account-profile-saved")

	// Sessions: sign out application A from the list.
	b.open("sessions", e.issuer+"account/sessions")
	main = b.text("main")
	for _, want := range []string{"This browser", "Test Client", devA, devB, "COMPATDEV1", "Chrome on Linux", "127.0.0.1"} {
		if !strings.Contains(main, want) {
			t.Errorf("sessions page lacks %q:\n%s", want, main)
		}
	}
	b.page("account-sessions")
	b.do("phone-sized viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	b.page("account-sessions-phone")
	b.do("desktop viewport", chromedp.EmulateViewport(1024, 900, chromedp.EmulateScale(1)))
	b.submit("sign out application A", fmt.Sprintf(`form:has(input[name=id][value=%q]) button`, sessionOf(devA)))
	if !strings.Contains(b.text(".notice"), "session has been signed out") || strings.Contains(b.text("main"), devA) {
		t.Fatalf("after signing out application A:\n%s", b.pageText())
	}
	if got := e.introspect(t, tokA); got["active"] != false {
		t.Errorf("application A's token after signing it out: %v", got)
	}
	if got := e.introspect(t, tokB); got["active"] != true {
		t.Errorf("application B's token was ended too: %v", got)
	}

	// Add an email address with the emailed code.
	b.open("profile", e.issuer+"account")
	b.fill("email", "not an address")
	if status := b.submit("bad address", `form[action$="/account/emails/add"] button`); status != http.StatusBadRequest || b.text("#email-error") == "" {
		t.Errorf("a bad address: %d, error %q", status, b.text("#email-error"))
	}
	b.page("account-email-error")
	b.fill("email", "alice.liddell@example.org")
	b.submit("add address", `form[action$="/account/emails/add"] button`)
	if !strings.Contains(b.location(), "/account/emails/verify") || !strings.Contains(b.text("main"), "alice.liddell@example.org") {
		t.Fatalf("after asking to add an address:\n%s", b.pageText())
	}
	b.page("account-email-verify")
	b.fill("code", emailedCode(t, e.s.dataDir, "alice.liddell@example.org"))
	b.submit("enter code", `form[action$="/account/emails/verify"] button`)
	if !strings.Contains(b.text(".notice"), "email address has been added") || !strings.Contains(b.text(".items"), "alice.liddell@example.org") {
		t.Fatalf("after the code:\n%s", b.pageText())
	}
	emails, err := accounts.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: e.user.GetId()})
	if err != nil || len(emails.GetEmails()) != 1 || emails.GetEmails()[0].GetEmail() != "alice.liddell@example.org" {
		t.Fatalf("emails in accounts: %v %v", emails, err)
	}
	b.page("account-profile-email")

	// Password: a wrong current password is shown next to its field; the
	// right one changes it and signs the other browsers out.
	other := browserSession(t, e.conn, "alice", "alice's password", func(r *accountsv1.StartBrowserSessionRequest) {
		r.UserAgent, r.IpAddress = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "192.0.2.7"
	})
	b.open("password page", e.issuer+"account/password")
	a := eval[map[string]string](b, `({cur: document.getElementById("current_password").autocomplete, next: document.getElementById("new_password").autocomplete,
		user: document.querySelector("input[autocomplete=username]").value, others: String(document.getElementById("sign_out_others").checked)})`)
	if a["cur"] != "current-password" || a["next"] != "new-password" || a["user"] != "alice" || a["others"] != "true" {
		t.Errorf("password form attributes: %v", a)
	}
	b.page("account-password")
	const newPassword = "a much better passphrase 42"
	b.fill("current_password", "not alice's password")
	b.fill("new_password", newPassword)
	b.fill("new_password_confirm", newPassword)
	if status := b.submit("wrong current password", `form[action$="/account/password"] button[type=submit]`); status != http.StatusUnauthorized {
		t.Errorf("wrong current password answered %d", status)
	}
	a = eval[map[string]string](b, `(() => { const p = document.getElementById("current_password"), e = document.getElementById("current_password-error");
		return {role: e ? e.getAttribute("role") : "", text: e ? e.innerText : "", invalid: p.getAttribute("aria-invalid") || "",
			focused: (document.activeElement && document.activeElement.id) || (p.hasAttribute("autofocus") ? p.id : "")}; })()`)
	if a["role"] != "alert" || !strings.Contains(a["text"], "incorrect") || a["invalid"] != "true" || a["focused"] != "current_password" {
		t.Errorf("the wrong password is not shown next to its field: %v", a)
	}
	b.page("account-password-wrong")
	b.fill("current_password", "alice's password")
	b.fill("new_password", newPassword)
	b.fill("new_password_confirm", newPassword)
	b.submit("change password", `form[action$="/account/password"] button[type=submit]`)
	if !strings.Contains(b.text(".notice"), "other browsers have been signed out") {
		t.Fatalf("after changing the password:\n%s", b.pageText())
	}
	if _, err := accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "alice", Password: newPassword}); err != nil {
		t.Errorf("the new password does not work: %v", err)
	}
	live, err := accounts.ListBrowserSessions(ctx, &accountsv1.ListBrowserSessionsRequest{UserId: e.user.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range live.GetSessions() {
		if s.GetSessionId() == other.GetSession().GetSessionId() && s.GetEndedAt() == nil {
			t.Error("the other browser is still signed in")
		}
	}
	if len(live.GetSessions()) != 1 {
		t.Errorf("%d browser sessions live after signing the others out, want 1 (this one)", len(live.GetSessions()))
	}
	b.page("account-password-changed")

	// MSC4191 deep links.
	b.open("device_view", e.issuer+"account?action=org.matrix.device_view&device_id=COMPATDEV1")
	if !strings.Contains(b.location(), "/account/sessions/device?device_id=COMPATDEV1") || !strings.Contains(b.text("main"), "older Matrix login") {
		t.Errorf("device_view led to:\n%s", b.pageText())
	}
	b.page("account-device-view")
	if status := b.open("device_view of an unknown device", e.issuer+"account?action=org.matrix.device_view&device_id=NOSUCHDEV"); status != http.StatusNotFound {
		t.Errorf("unknown device: %d", status)
	}
	b.open("device_delete", e.issuer+"account?action=org.matrix.device_delete&device_id="+url.QueryEscape(devB))
	if !strings.Contains(b.location(), "/account/sessions/end?device_id=") || !strings.Contains(b.text("h1"), "Sign out this device?") ||
		!strings.Contains(b.text("main"), "Test Client") || !strings.Contains(b.text("main"), devB) {
		t.Fatalf("device_delete led to:\n%s", b.pageText())
	}
	b.page("account-device-delete")
	if got := e.introspect(t, tokB); got["active"] != true {
		t.Fatalf("showing the confirmation ended the session: %v", got)
	}
	b.submit("confirm sign-out", `form button.danger`)
	if !strings.Contains(b.text(".notice"), "session has been signed out") {
		t.Fatalf("after confirming:\n%s", b.pageText())
	}
	if got := e.introspect(t, tokB); got["active"] != false {
		t.Errorf("application B's token after device_delete: %v", got)
	}
	for _, action := range []struct{ action, path, shot, want string }{
		{"org.matrix.profile", "/account", "", "Email addresses"},
		{"org.matrix.devices_list", "/account/sessions", "", "Browsers"},
		{"org.matrix.sessions_list", "/account/sessions", "", "Browsers"},
		{"org.matrix.cross_signing_reset", "/account/cross-signing-reset", "account-cross-signing-reset", "Allow the reset for 10 minutes"},
		{"org.matrix.account_deactivate", "/account/deactivate", "account-deactivate", "Deactivate your account"},
	} {
		b.open(action.action, e.issuer+"account?action="+action.action)
		if u, _ := url.Parse(b.location()); u.Path != action.path || !strings.Contains(b.text("main"), action.want) {
			t.Errorf("%s led to:\n%s", action.action, b.pageText())
		}
		if action.shot != "" {
			b.page(action.shot)
		}
	}
	// With no homeserver connected, the reset cannot be approved, and the page says so.
	b.open("cross-signing", e.issuer+"account/cross-signing-reset")
	b.submit("allow the reset", `form button.primary`)
	if !strings.Contains(b.text("main"), "not connected to a homeserver") {
		t.Errorf("allowing a reset without a homeserver:\n%s", b.pageText())
	}
	b.open("deactivate", e.issuer+"account?action=org.matrix.account_deactivate")

	// Deactivation needs the password and the confirmation.
	b.fill("password", newPassword)
	if status := b.submit("deactivate unconfirmed", `form[action$="/account/deactivate"] button[type=submit]`); status != http.StatusBadRequest || b.text("#confirm-error") == "" {
		t.Errorf("deactivation without the box ticked: %d %q", status, b.text("#confirm-error"))
	}
	b.page("account-deactivate-error")
	b.fill("password", newPassword)
	b.do("tick", chromedp.Click(chromedp.ID("confirm")))
	b.submit("deactivate", `form[action$="/account/deactivate"] button[type=submit]`)
	if !strings.Contains(b.text("h1"), "deactivated") {
		t.Fatalf("after deactivating:\n%s", b.pageText())
	}
	b.page("account-deactivated")
	if u, err := accounts.GetUser(ctx, &accountsv1.GetUserRequest{UserId: e.user.GetId()}); err != nil || !u.GetUser().GetDeactivated() {
		t.Errorf("user after deactivation: %v %v", u, err)
	}
	if got := e.introspect(t, compatToken); got["active"] != false {
		t.Errorf("the compat device's token after deactivation: %v", got)
	}
	b.open("account after deactivation", e.issuer+"account")
	if !strings.Contains(b.location(), "/login?next=") {
		t.Errorf("after deactivation /account led to %s", b.location())
	}
	t.Logf("account pages took %v", time.Since(start).Round(time.Millisecond))
}
