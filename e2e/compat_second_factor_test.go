package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// TestCompatSecondFactor: with account.second_factor=required, alice (who
// set up an authenticator app) is refused by the compat password login with
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
	// Under this policy alice's first sign-in sets up the app (over gRPC as
	// the pages do: a password proof, then the enrolment).
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	pw, err := accounts.VerifyPassword(t.Context(), &accountsv1.VerifyPasswordRequest{Username: "alice", Password: "alice's password", SecondFactorCapable: true})
	if err != nil || pw.GetSecondFactor() != accountsv1.SecondFactorNeed_SECOND_FACTOR_NEED_ENROL {
		t.Fatalf("alice's password under the policy: %v %v", pw, err)
	}
	enrol, err := accounts.StartTOTPEnrolment(t.Context(), &accountsv1.StartTOTPEnrolmentRequest{AuthProof: pw.GetAuthProof()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.ConfirmTOTPEnrolment(t.Context(), &accountsv1.ConfirmTOTPEnrolmentRequest{
		Ticket: enrol.GetTicket(), AuthProof: pw.GetAuthProof(), Code: totpAt(t, enrol.GetSecret(), time.Now()),
	}); err != nil {
		t.Fatal(err)
	}

	m := newMatrixClient(e)
	refused := m.post(t, "/_matrix/client/v3/login", "", alicePassword(nil))
	wantMatrixError(t, "compat password login with a second factor", refused, http.StatusForbidden, "M_FORBIDDEN")
	if !strings.Contains(refused.raw, "m.login.sso") {
		t.Fatalf("the refusal does not send the client to SSO: %s", refused.raw)
	}

	redirect := cb.redirectURL() + "?client=old"
	b.open("sso redirect", e.issuer+"_matrix/client/v3/login/sso/redirect?"+url.Values{"redirectUrl": {redirect}}.Encode())
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	b.submit("sign in", `form:not([data-passkey]) button[type=submit]`)
	if !strings.Contains(b.location(), "/login/second-factor?next=") {
		t.Fatalf("after the password:\n%s", b.pageText())
	}
	b.fill("code", totpAt(t, enrol.GetSecret(), time.Now().Add(30*time.Second)))
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
