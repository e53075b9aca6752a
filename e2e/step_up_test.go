package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// TestStepUpForSensitiveActions: with account.step_up_window at 30s, a
// browser session signed in longer ago is refused every sensitive action
// over gRPC — whatever the web pages do — (password, email addresses,
// sign-in methods, cross-signing reset, deactivation); in Chromium the pages
// send the person to confirm it is them (/account/confirm, axe-checked)
// and back, after which the action goes through.
func TestStepUpForSensitiveActions(t *testing.T) {
	hs := newStandIn(t)
	e := newOAuthEnv(t, "GATEHOUSE_MATRIX_HOMESERVER_URL="+hs.URL(), "GATEHOUSE_STEP_UP_WINDOW=30s")
	b := newBrowser(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})
	old := e.signedIn(t)
	b.open("account signed out", e.issuer+"account/cross-signing-reset")
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	b.submit("sign in", `form:not([data-passkey]) button[type=submit]`)
	time.Sleep(31 * time.Second) // both sessions now older than the window

	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	tokens := tokenv1.NewTokenServiceClient(e.conn)
	for name, call := range map[string]func() error{
		"change password": func() error {
			_, err := accounts.ChangePassword(old, &accountsv1.ChangePasswordRequest{CurrentPassword: "alice's password", NewPassword: "another passphrase 42"})
			return err
		},
		"add email": func() error {
			_, err := accounts.AddEmail(old, &accountsv1.AddEmailRequest{Email: "a2@example.org"})
			return err
		},
		"primary email": func() error {
			_, err := accounts.SetPrimaryEmail(old, &accountsv1.SetPrimaryEmailRequest{Email: "a2@example.org"})
			return err
		},
		"remove email": func() error {
			_, err := accounts.RemoveEmail(old, &accountsv1.RemoveEmailRequest{Email: "a2@example.org"})
			return err
		},
		"set up TOTP": func() error {
			_, err := accounts.StartTOTPEnrolment(old, &accountsv1.StartTOTPEnrolmentRequest{})
			return err
		},
		"recovery codes": func() error {
			_, err := accounts.GenerateRecoveryCodes(old, &accountsv1.GenerateRecoveryCodesRequest{})
			return err
		},
		"cross-signing reset": func() error {
			_, err := tokens.AllowCrossSigningReset(old, &tokenv1.AllowCrossSigningResetRequest{Localpart: "alice"})
			return err
		},
		"deactivate": func() error { _, err := accounts.DeactivateUser(old, &accountsv1.DeactivateUserRequest{}); return err },
	} {
		if err := call(); status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "Confirm it is you") {
			t.Errorf("%s with an old authentication: %v", name, err)
		}
	}
	if u, err := accounts.GetUser(context.Background(), &accountsv1.GetUserRequest{UserId: e.user.GetId()}); err != nil || u.GetUser().GetDeactivated() {
		t.Fatalf("alice after the refusals: %v %v", u, err)
	}

	// In the browser: the cross-signing reset asks to confirm first.
	b.submit("allow the reset", `form[action$="/account/cross-signing-reset"] button[type=submit]`)
	if !strings.Contains(b.location(), "/account/confirm?next=") {
		t.Fatalf("an old session's reset did not ask to confirm:\n%s", b.pageText())
	}
	b.page("step-up")
	b.fill("password", "alice's password")
	b.submit("confirm", `form[action*="/account/confirm"] button[type=submit]`)
	if !strings.Contains(b.location(), "/account/cross-signing-reset") {
		t.Fatalf("after confirming:\n%s", b.pageText())
	}
	b.submit("allow the reset again", `form[action$="/account/cross-signing-reset"] button[type=submit]`)
	if allowed := opsOf(hs.callLog(0), func(c hsCall) bool { return c.Op == "allow_cross_signing_reset" }); len(allowed) != 1 {
		t.Fatalf("cross-signing reset calls after the step-up: %v\n%s", allowed, b.pageText())
	}
}
