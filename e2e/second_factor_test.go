package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// totpAt is the code an authenticator app shows for secret at t.
func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTOTPSignInInBrowser: alice has an authenticator app; signing in to an
// application in Chromium asks for its code after the password, the code
// (computed here from the secret) lets her through to the application, the
// same code is refused the next time, and a recovery code works once. The
// second step passes axe-core in English and French (screenshots
// second-factor and second-factor-fr).
func TestTOTPSignInInBrowser(t *testing.T) {
	e := newOAuthEnv(t)
	b := newBrowser(t)
	cb := newCallbackServer(t)
	client := e.client
	client.RedirectURL = cb.redirectURL()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	enrol, err := accounts.StartTOTPEnrolment(e.signedIn(t), &accountsv1.StartTOTPEnrolmentRequest{})
	if err != nil {
		t.Fatal(err)
	}
	confirmed, err := accounts.ConfirmTOTPEnrolment(e.signedIn(t), &accountsv1.ConfirmTOTPEnrolmentRequest{Ticket: enrol.GetTicket(), Code: totpAt(t, enrol.GetSecret(), time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	recovery := confirmed.GetRecoveryCodes()
	if len(recovery) != 10 {
		t.Fatalf("%d recovery codes", len(recovery))
	}

	signInTo := func(state string) {
		t.Helper()
		b.clearCookies()
		authURL := client.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		if status := b.open("authorize", authURL); status != http.StatusOK || !strings.Contains(b.location(), "/login?grant=") {
			t.Fatalf("authorize led to %d %s", status, b.location())
		}
		b.fill("username", "alice")
		b.fill("password", "alice's password")
		b.submit("sign in", `form:not([data-passkey]) button[type=submit]`)
		if !strings.Contains(b.location(), "/login/second-factor?grant=") {
			t.Fatalf("after the password:\n%s", b.pageText())
		}
	}

	// The next step's code: the enrolment spent the current one.
	code := totpAt(t, enrol.GetSecret(), time.Now().Add(30*time.Second))
	signInTo("state-totp")
	b.page("second-factor")
	b.fill("code", code)
	if status := b.submit("code", `input[value="totp"] ~ button`); status != http.StatusOK || !strings.Contains(b.location(), "/consent?grant=") {
		t.Fatalf("after the code: %d\n%s", status, b.pageText())
	}
	b.submit("allow", `button[value="allow"]`)
	if q := cb.last(t); q.Get("state") != "state-totp" || q.Get("code") == "" {
		t.Fatalf("callback: %v", q)
	}

	// The same code again: refused, even within its 90 seconds.
	signInTo("state-replay")
	b.fill("code", code)
	if status := b.submit("the same code", `input[value="totp"] ~ button`); status != http.StatusUnauthorized || !strings.Contains(b.text("#code-error"), "already used") {
		t.Fatalf("a replayed code: %d\n%s", status, b.pageText())
	}
	// A recovery code lets her in, once.
	b.fill("recovery_code", strings.ToUpper(recovery[0]))
	if status := b.submit("recovery code", `input[value="recovery"] ~ button`); status != http.StatusOK || !strings.Contains(b.location(), "/consent?grant=") {
		t.Fatalf("after the recovery code: %d\n%s", status, b.pageText())
	}
	left, err := accounts.GetSecondFactors(context.Background(), &accountsv1.GetSecondFactorsRequest{UserId: e.user.GetId()})
	if err != nil || left.GetFactors().GetRecoveryCodesLeft() != 9 {
		t.Fatalf("recovery codes left: %v %v", left, err)
	}
	signInTo("state-recovery-again")
	b.fill("recovery_code", recovery[0])
	if status := b.submit("the recovery code again", `input[value="recovery"] ~ button`); status != http.StatusUnauthorized {
		t.Fatalf("a spent recovery code: %d\n%s", status, b.pageText())
	}

	acceptLanguage(b, "fr-FR,fr;q=0.9")
	signInTo("state-fr")
	wantFrench(t, b, "second step", "Confirmez que c’est vous", "Application d’authentification", "Code de secours")
	b.page("second-factor-fr")
}
