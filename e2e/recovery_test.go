package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// TestRecoverPasswordInBrowser resets a forgotten password with a real
// Chromium: the sign-in page links to /recover; asking for a link for an
// address with an account and for one without shows the same page, and only
// the first gets an email (read from the dev outbox); opening the link does
// not use it up; the new password ends the other browser sessions and signs
// in; a used link is refused with a way to start again.
func TestRecoverPasswordInBrowser(t *testing.T) {
	e := newOAuthEnv(t)
	b := newBrowser(t)
	t.Cleanup(func() {
		if t.Failed() {
			log := e.s.log.String()
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("gatehouse serve log (end):\n%s", log)
		}
	})
	ctx := context.Background()
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	reg, err := accounts.Register(ctx, &accountsv1.RegisterRequest{SkipVerification: true, Username: "dora", Password: "dora's old password", Email: "dora@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	// Dora is signed in on another browser, which the new password signs out.
	elsewhere := browserSession(t, e.conn, "dora", "dora's old password", func(r *accountsv1.StartBrowserSessionRequest) { r.UserAgent = "another browser" })

	b.open("sign-in page", e.issuer+"login")
	b.page("login-with-recovery-link")
	b.navigate("forgot password", chromedp.Click(chromedp.CSS(`a[href$="/recover"]`)))
	if !strings.HasSuffix(b.location(), "/recover") || !strings.Contains(b.text("h1"), "Reset your password") {
		t.Fatalf("the sign-in page does not lead to recovery:\n%s", b.pageText())
	}
	b.page("recover")

	b.fill("email", "not an address")
	if status := b.submit("bad address", "button[type=submit]"); status != http.StatusBadRequest || b.text("#email-error") == "" {
		t.Errorf("a bad address: %d, error %q", status, b.text("#email-error"))
	}
	b.page("recover-bad-address")

	b.fill("email", "dora@example.org")
	if status := b.submit("ask for a link", "button[type=submit]"); status != http.StatusOK {
		t.Fatalf("asking for a link answered %d\n%s", status, b.pageText())
	}
	known := b.text("main")
	for _, want := range []string{"If an account uses dora@example.org", "valid for 10 minutes"} {
		if !strings.Contains(known, want) {
			t.Errorf("the page after asking lacks %q:\n%s", want, known)
		}
	}
	b.page("recover-sent")
	link := emailedRecoveryLink(t, e.s.dataDir, "dora@example.org")
	if !strings.HasPrefix(link, e.issuer+"recover/") {
		t.Fatalf("recovery link %q is not under %s", link, e.issuer)
	}

	// An address without an account: the same page, and no email.
	b.open("recover again", e.issuer+"recover")
	b.fill("email", "nobody@example.org")
	if status := b.submit("ask for an unknown address", "button[type=submit]"); status != http.StatusOK {
		t.Errorf("an unknown address answered %d", status)
	}
	if unknown := b.text("main"); strings.ReplaceAll(unknown, "nobody@example.org", "dora@example.org") != known {
		t.Errorf("an unknown address gets another page:\n%s\n---\n%s", unknown, known)
	}

	// Opening the link (as a mail scanner would) does not use it up.
	for range 2 {
		if status := b.open("recovery link", link); status != http.StatusOK {
			t.Fatalf("the recovery link answered %d\n%s", status, b.pageText())
		}
	}
	if !strings.Contains(b.text("h1"), "Choose a new password") {
		t.Fatalf("the recovery link does not ask for a password:\n%s", b.pageText())
	}
	b.page("recover-password")
	b.fill("password", "a brand new passphrase for dora")
	b.fill("password_confirm", "a brand new passphrase for dora!")
	if status := b.submit("mismatched passwords", "button[type=submit]"); status != http.StatusBadRequest ||
		!strings.Contains(b.text("#password_confirm-error"), "not the same") {
		t.Fatalf("mismatched passwords: %d\n%s", status, b.pageText())
	}
	if b.value("password") != "" || b.value("password_confirm") != "" {
		t.Error("the form kept a password")
	}
	b.page("recover-password-error")

	b.fill("password", "a brand new passphrase for dora")
	b.fill("password_confirm", "a brand new passphrase for dora")
	if status := b.submit("change password", "button[type=submit]"); status != http.StatusOK ||
		!strings.Contains(b.text("main"), "Your password was changed") {
		t.Fatalf("changing the password: %d\n%s", status, b.pageText())
	}
	b.page("recover-done")

	if _, err := accounts.AuthenticateBrowserSession(ctx, &accountsv1.AuthenticateBrowserSessionRequest{Secret: elsewhere.GetSecret()}); err == nil {
		t.Error("the other browser is still signed in after the recovery")
	}
	if _, err := accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "dora", Password: "dora's old password"}); err == nil {
		t.Error("the old password still works")
	}
	// accounts took the change as a recovery because it projected notify's
	// confirmation of this very link, not on the web service's word.
	// (The audit projection runs on its own; give it a moment.)
	recorded := waitFor(10*time.Second, func() (bool, error) {
		audit, err := accounts.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: reg.GetUser().GetId()})
		if err != nil {
			return false, err
		}
		for _, e := range audit.GetEntries() {
			if e.GetSummary() == "password reset through recovery" {
				return true, nil
			}
		}
		return false, nil
	})
	if recorded != nil {
		t.Errorf("the audit does not record a recovery: %v", recorded)
	}

	b.navigate("sign in", chromedp.Click(chromedp.CSS(`main a[href$="/login"]`)))
	b.fill("username", "dora")
	b.fill("password", "a brand new passphrase for dora")
	b.submit("sign in with the new password", "button[type=submit]")
	if !strings.Contains(b.text("main"), "@dora:example.org") {
		t.Fatalf("signing in with the new password:\n%s", b.pageText())
	}

	// The link worked once.
	b.open("used recovery link", link)
	b.fill("password", "yet another passphrase for dora")
	b.fill("password_confirm", "yet another passphrase for dora")
	if status := b.submit("reuse the link", "button[type=submit]"); status != http.StatusGone ||
		!strings.Contains(b.text("main"), "expired or has already been used") {
		t.Fatalf("a used link: %d\n%s", status, b.pageText())
	}
	if eval[int](b, `document.querySelectorAll('main a[href$="/recover"]').length`) != 1 {
		t.Errorf("the used-link page has no way to start again:\n%s", b.pageText())
	}
	b.page("recover-link-used")
	if _, err := accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "dora", Password: "yet another passphrase for dora"}); err == nil {
		t.Error("a used link changed the password")
	}
	if status := b.open("not a link", e.issuer+"recover/not-a-ticket"); status != http.StatusNotFound ||
		!strings.Contains(b.text("main"), "not a valid password reset link") {
		t.Errorf("a malformed link: %d\n%s", status, b.pageText())
	}

	// By now the delivery runner, which sends in order, has long sent Dora's
	// email; nothing went to the address without an account.
	time.Sleep(time.Second)
	if files := outboxTo(t, e.s.dataDir, "nobody@example.org"); len(files) > 0 {
		t.Errorf("an email was sent to an address without an account: %v", files)
	}
}
