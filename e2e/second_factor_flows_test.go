package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
)

// enrolTOTP gives alice an authenticator app and returns its secret.
func enrolTOTP(t *testing.T, e *oauthEnv) string {
	t.Helper()
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	enrol, err := accounts.StartTOTPEnrolment(e.signedIn(t), &accountsv1.StartTOTPEnrolmentRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.ConfirmTOTPEnrolment(e.signedIn(t), &accountsv1.ConfirmTOTPEnrolmentRequest{Ticket: enrol.GetTicket(), Code: totpAt(t, enrol.GetSecret(), time.Now())}); err != nil {
		t.Fatal(err)
	}
	return enrol.GetSecret()
}

// wrongTOTP is a well-formed code that no authenticator app shows for
// secret in the minutes around now.
func wrongTOTP(t *testing.T, secret string) string {
	t.Helper()
	valid := map[string]bool{}
	for d := -3; d <= 3; d++ {
		valid[totpAt(t, secret, time.Now().Add(time.Duration(d)*30*time.Second))] = true
	}
	for _, c := range []string{"000000", "123456", "999999", "424242"} {
		if !valid[c] {
			return c
		}
	}
	t.Fatal("no wrong code")
	return ""
}

// TestSecondFactorDeviceFlow: alice has an authenticator app; a device
// shows its code, and at the device link page in Chromium she signs in with
// her password and is asked for the app's code. Until she gives it, the
// device is not approved and its polls get no tokens; a wrong code is
// refused; the right one lets her approve, and the device's real client
// (golang.org/x/oauth2) gets tokens for alice.
func TestSecondFactorDeviceFlow(t *testing.T) {
	e := newOAuthEnv(t)
	b := newBrowser(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	secret := enrolTOTP(t, e)
	authz := authorizev1.NewAuthorizeServiceClient(e.conn)
	cfg := e.deviceClient(t)
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	stillPending := func(when string) {
		t.Helper()
		got, err := authz.GetDeviceGrant(ctx, &authorizev1.GetDeviceGrantRequest{UserCode: da.UserCode})
		if err != nil || got.GetDeviceGrant().GetStatus() != authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_PENDING {
			t.Fatalf("%s: device grant %v, %v", when, got, err)
		}
		status, body := devicePoll(t, cfg, da.DeviceCode)
		if status != http.StatusBadRequest || (body["error"] != "authorization_pending" && body["error"] != "slow_down") || body["access_token"] != nil {
			t.Fatalf("%s: device poll %d %v", when, status, body)
		}
	}

	// Signed out, the link with the code leads to the sign-in page.
	if status := b.open("link", da.VerificationURIComplete); status != http.StatusOK || !strings.Contains(b.location(), "/login?device="+da.UserCode) {
		t.Fatalf("the device link led to %d %s\n%s", status, b.location(), b.pageText())
	}
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	b.submit("sign in", `form:not([data-passkey]) button[type=submit]`)
	if !strings.Contains(b.location(), "/login/second-factor?") {
		t.Fatalf("after the password, no second factor asked: %s\n%s", b.location(), b.pageText())
	}
	stillPending("after the password")
	// Skipping the step, straight back to the link, finds no session.
	ask := b.location()
	b.open("link before the code", da.VerificationURIComplete)
	if !strings.Contains(b.location(), "/login?device=") || strings.Contains(b.text("main"), "wants to use your account") {
		t.Fatalf("the link before the second factor: %s\n%s", b.location(), b.pageText())
	}
	if status := b.open("second factor again", ask); status != http.StatusOK {
		t.Fatalf("the second factor page again: %d\n%s", status, b.pageText())
	}

	b.fill("code", wrongTOTP(t, secret))
	if status := b.submit("a wrong code", `input[value="totp"] ~ button`); status != http.StatusUnauthorized || !strings.Contains(b.location(), "/login/second-factor?") {
		t.Fatalf("a wrong code: %d %s\n%s", status, b.location(), b.pageText())
	}
	stillPending("after a wrong code")

	// The next step's code: the enrolment spent the current one.
	b.fill("code", totpAt(t, secret, time.Now().Add(30*time.Second)))
	b.submit("code", `input[value="totp"] ~ button`)
	if !strings.Contains(b.location(), "/link?code="+da.UserCode) || !strings.Contains(b.text("main"), "Living Room TV on another device wants to use your account") {
		t.Fatalf("after the code, no device consent: %s\n%s", b.location(), b.pageText())
	}
	stillPending("before approving")
	b.submit("approve device", `button[value="allow"]`)
	if !strings.Contains(b.location(), "/link/done") {
		t.Fatalf("after approving: %s\n%s", b.location(), b.pageText())
	}
	slowed := *da
	slowed.Interval += 5
	tok, err := cfg.DeviceAccessToken(ctx, &slowed)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	if got := e.introspect(t, tok.AccessToken); got["active"] != true || got["username"] != "alice" || got["sub"] != e.user.GetId() || got["client_id"] != cfg.ClientID {
		t.Fatalf("device token introspection: %v", got)
	}
}

// TestSecondFactorUpstream: alice has an authenticator app and a link to
// the upstream provider (a real OpenID provider in the test process). Signing
// in to an application through the provider in Chromium asks for the app's
// code before she has a session: the account page does not know her yet, a
// wrong code is refused, and the right one takes her to the consent page and
// the application to tokens for alice.
func TestSecondFactorUpstream(t *testing.T) {
	u := newUpstreamEnv(t)
	secret := enrolTOTP(t, u.oauthEnv)
	if _, err := u.accounts.AddUpstreamLink(context.Background(), &accountsv1.AddUpstreamLinkRequest{
		UserId: u.user.GetId(), SynapseAuthProvider: "oidc-test", Subject: idpCarol.ID, Email: idpCarol.Email,
	}); err != nil {
		t.Fatalf("link alice to the provider: %v", err)
	}

	verifier := u.authorize(t, "state-upstream-totp")
	if status := u.signInAtIdP(t, "test", idpCarol); status != http.StatusOK || !strings.Contains(u.b.location(), "/login/second-factor?") {
		t.Fatalf("after the provider, no second factor asked: %d %s\n%s", status, u.b.location(), u.b.pageText())
	}
	ask := u.b.location()
	u.b.open("account", u.issuer+"account")
	if !strings.Contains(u.b.location(), "/login") || strings.Contains(u.b.text("body"), "@alice:example.org") {
		t.Fatalf("signed in before the second factor: %s\n%s", u.b.location(), u.b.pageText())
	}
	if status := u.b.open("second factor again", ask); status != http.StatusOK {
		t.Fatalf("the second factor page again: %d\n%s", status, u.b.pageText())
	}

	u.b.fill("code", wrongTOTP(t, secret))
	if status := u.b.submit("a wrong code", `input[value="totp"] ~ button`); status != http.StatusUnauthorized || !strings.Contains(u.b.location(), "/login/second-factor?") {
		t.Fatalf("a wrong code: %d %s\n%s", status, u.b.location(), u.b.pageText())
	}
	// The next step's code: the enrolment spent the current one.
	u.b.fill("code", totpAt(t, secret, time.Now().Add(30*time.Second)))
	u.b.submit("code", `input[value="totp"] ~ button`)
	tok, idt := u.exchange(t, verifier, "state-upstream-totp")
	if idt.Subject != u.user.GetId() {
		t.Fatalf("ID token sub %s, want alice %s", idt.Subject, u.user.GetId())
	}
	if got := u.introspect(t, tok.AccessToken); got["active"] != true || got["username"] != "alice" {
		t.Fatalf("introspection: %v", got)
	}
}
