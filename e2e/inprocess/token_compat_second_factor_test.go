package inprocess

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// The compatibility password login cannot ask for a second factor: it
// refuses a person who has one (or must set one up) with M_FORBIDDEN telling
// the client to use single sign-on, only after the right password; a person
// without one signs in as before.
func TestCompatLoginRefusesSecondFactorAccounts(t *testing.T) {
	st := newStack(t)
	ctx := context.Background()
	st.user(t, "plain")
	alice := st.user(t, "alice")
	required := st.user(t, "required")

	// Alice sets up an authenticator app from a signed-in browser.
	signedIn := st.signIn(t, alice)
	enrol, err := st.accounts.StartTOTPEnrolment(signedIn, &accountsv1.StartTOTPEnrolmentRequest{})
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCodeCustom(enrol.GetSecret(), time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.accounts.ConfirmTOTPEnrolment(signedIn, &accountsv1.ConfirmTOTPEnrolmentRequest{Ticket: enrol.GetTicket(), Code: code}); err != nil {
		t.Fatal(err)
	}
	// An administrator requires one of another person, who has none yet.
	if _, err := st.accounts.SetSecondFactorRequired(ctx, &accountsv1.SetSecondFactorRequiredRequest{UserId: required.GetId(), Required: true}); err != nil {
		t.Fatal(err)
	}

	post := func(body string) reply {
		return st.matrixClient().call(t, http.MethodPost, "_matrix/client/v3/login", "", body)
	}
	for _, who := range []string{"alice", "required"} {
		r := post(mustJSON(t, password(who, nil)))
		r.wantMatrixError(t, who+" with the right password", http.StatusForbidden, "M_FORBIDDEN")
		if !strings.Contains(r.str("error"), "m.login.sso") {
			t.Fatalf("%s: the error does not send the client to SSO: %s", who, r.raw)
		}
		// A wrong password says nothing about the second factor.
		wrong := post(mustJSON(t, map[string]any{"type": "m.login.password", "user": who, "password": "not it"}))
		wrong.wantMatrixError(t, who+" with a wrong password", http.StatusForbidden, "M_FORBIDDEN")
		if strings.Contains(wrong.raw, "second factor") {
			t.Fatalf("a wrong password reveals the second factor: %s", wrong.raw)
		}
	}
	st.matrixClient().login(t, password("plain", nil))
}
