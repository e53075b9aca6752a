package accounts_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"google.golang.org/grpc/codes"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ratelimit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts"
	"gatehouse.dev/services/accounts/internal/factors"
)

// totpCode is what an authenticator app shows for secret at t.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fact returns a fact of a gRPC error.
func fact(err error, name string) string {
	v, _ := errs.FactOf(errs.FromStatus(err), name)
	return v
}

// factorHarness is an accounts service on a settable clock.
func factorHarness(t *testing.T, configure func(*accounts.Config)) (*harness, *fakeClock) {
	clock := newFakeClock()
	h := startHarness(t, func(c *accounts.Config) {
		c.Clock = clock.Now
		c.PublicURL = "https://id.example.org/"
		if configure != nil {
			configure(c)
		}
	})
	return h, clock
}

// enrolTOTP sets up TOTP for the signed-in person of secret and returns the
// TOTP secret and the recovery codes.
func enrolTOTP(t *testing.T, h *harness, clock *fakeClock, session string) (string, []string) {
	t.Helper()
	ctx := asUser(session)
	started, err := h.c.StartTOTPEnrolment(ctx, &accountsv1.StartTOTPEnrolmentRequest{})
	if err != nil {
		t.Fatalf("start TOTP enrolment: %v", err)
	}
	if !strings.HasPrefix(started.GetUri(), "otpauth://totp/") || !strings.Contains(started.GetUri(), started.GetSecret()) {
		t.Fatalf("enrolment %v", started)
	}
	confirmed, err := h.c.ConfirmTOTPEnrolment(ctx, &accountsv1.ConfirmTOTPEnrolmentRequest{Ticket: started.GetTicket(), Code: totpCode(t, started.GetSecret(), clock.Now())})
	if err != nil {
		t.Fatalf("confirm TOTP: %v", err)
	}
	if n := len(confirmed.GetRecoveryCodes()); n != factors.RecoveryCodeCount {
		t.Fatalf("%d recovery codes with the first factor", n)
	}
	return started.GetSecret(), confirmed.GetRecoveryCodes()
}

func TestTOTPSignIn(t *testing.T) {
	h, clock := factorHarness(t, nil)
	ctx := context.Background()
	alice := register(t, h.c, "alice", "alice's password")
	session := startSession(t, h.c, alice.GetId(), "192.0.2.1")
	secret, recovery := enrolTOTP(t, h, clock, session.GetSecret())

	// The secret is in no event in clear.
	for _, rec := range h.events(t, "accounts.factors.>") {
		if ev, ok := rec.Event.(*eventsv1.TOTPEnabled); ok && (ev.GetSecret() != "" || ev.GetSealedSecret() == nil) {
			t.Fatalf("TOTPEnabled holds the secret in clear: %v", ev)
		}
		if ev, ok := rec.Event.(*eventsv1.RecoveryCodesGenerated); ok {
			for _, code := range recovery {
				if strings.Contains(ev.String(), code) {
					t.Fatal("a recovery code in clear in the stream")
				}
			}
		}
	}

	// A password now leads to the second factor.
	clock.Advance(time.Minute)
	pw, err := h.c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "alice", Password: "alice's password", SecondFactorCapable: true})
	if err != nil {
		t.Fatal(err)
	}
	if pw.GetSecondFactor() != accountsv1.SecondFactorNeed_SECOND_FACTOR_NEED_VERIFY {
		t.Fatalf("need %v", pw.GetSecondFactor())
	}
	_, err = h.c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: alice.GetId(), AuthProof: pw.GetAuthProof()})
	wantCode(t, err, codes.FailedPrecondition)
	if fact(err, errs.FactSecondFactor) != "needed" {
		t.Fatalf("a session with the password alone: %v", err)
	}

	code := totpCode(t, secret, clock.Now())
	verified, err := h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: pw.GetAuthProof(), TotpCode: code})
	if err != nil {
		t.Fatal(err)
	}
	started, err := h.c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: alice.GetId(), AuthProof: verified.GetAuthProof()})
	if err != nil {
		t.Fatal(err)
	}
	if m := started.GetSession().GetAuthMethods(); strings.Join(m, "+") != "password+totp" {
		t.Fatalf("session methods %v", m)
	}

	// The same code again, even within its window, is refused.
	_, err = h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: pw.GetAuthProof(), TotpCode: code})
	wantCode(t, err, codes.Unauthenticated)
	// So is the code of the step before it (spent with it).
	_, err = h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: pw.GetAuthProof(), TotpCode: totpCode(t, secret, clock.Now().Add(-30*time.Second))})
	wantCode(t, err, codes.Unauthenticated)
	// The next step's code is fine.
	clock.Advance(30 * time.Second)
	if _, err := h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: pw.GetAuthProof(), TotpCode: totpCode(t, secret, clock.Now())}); err != nil {
		t.Fatalf("the next code: %v", err)
	}

	// A recovery code works once, typed in any case with spaces.
	typed := " " + strings.ToUpper(strings.ReplaceAll(recovery[3], "-", " ")) + " "
	rc, err := h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: pw.GetAuthProof(), RecoveryCode: typed})
	if err != nil {
		t.Fatal(err)
	}
	if rc.GetRecoveryCodesLeft() != 9 {
		t.Fatalf("%d codes left", rc.GetRecoveryCodesLeft())
	}
	_, err = h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: pw.GetAuthProof(), RecoveryCode: recovery[3]})
	wantCode(t, err, codes.Unauthenticated)

	// A client that cannot ask for the second factor (the compat password
	// login) is told to use the browser, after the right password only.
	_, err = h.c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "alice", Password: "alice's password"})
	wantCode(t, err, codes.PermissionDenied)
	if fact(err, errs.FactSecondFactor) != "required" {
		t.Fatalf("compat password login: %v", err)
	}
	_, err = h.c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "alice", Password: "wrong"})
	wantCode(t, err, codes.Unauthenticated)
}

// Misuse: another person's proof, a proof without a first factor, an
// expired proof, a code guessed too often.
func TestSecondFactorMisuse(t *testing.T) {
	h, clock := factorHarness(t, func(c *accounts.Config) {
		c.SecondFactorLimit = ratelimit.Rule{Name: "second_factor", Burst: 3, Every: time.Hour}
	})
	ctx := context.Background()
	alice := register(t, h.c, "alice", "alice's password")
	bob := register(t, h.c, "bob", "bob's password")
	aliceSecret, _ := enrolTOTP(t, h, clock, startSession(t, h.c, alice.GetId(), "").GetSecret())
	bobSecret, _ := enrolTOTP(t, h, clock, startSession(t, h.c, bob.GetId(), "").GetSecret())
	clock.Advance(time.Minute)

	bobProof := proofFor(t, h.c, bob.GetId())
	// Bob's proof with Alice's user named: refused before any code is checked.
	_, err := h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{UserId: alice.GetId(), AuthProof: bobProof, TotpCode: totpCode(t, aliceSecret, clock.Now())})
	wantCode(t, err, codes.PermissionDenied)
	// Bob's proof with Alice's code: Alice's code is no code of Bob's.
	_, err = h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: bobProof, TotpCode: totpCode(t, aliceSecret, clock.Now())})
	if aliceSecret != bobSecret {
		wantCode(t, err, codes.Unauthenticated)
	}
	// Bob's complete proof does not start a session for Alice.
	ok, err := h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: bobProof, TotpCode: totpCode(t, bobSecret, clock.Now())})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: alice.GetId(), AuthProof: ok.GetAuthProof()})
	wantCode(t, err, codes.PermissionDenied)
	// No proof at all, or a forged one.
	_, err = h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{UserId: alice.GetId(), TotpCode: "123456"})
	wantCode(t, err, codes.PermissionDenied)
	_, err = h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: alice.GetId() + ".password.1.AAAA", TotpCode: "123456"})
	wantCode(t, err, codes.PermissionDenied)

	// A first factor's proof lasts ten minutes.
	aliceProof := proofFor(t, h.c, alice.GetId())
	clock.Advance(11 * time.Minute)
	_, err = h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: aliceProof, TotpCode: totpCode(t, aliceSecret, clock.Now())})
	wantCode(t, err, codes.PermissionDenied)

	// Three wrong codes, then even the right one waits.
	aliceProof = proofFor(t, h.c, alice.GetId())
	right := totpCode(t, aliceSecret, clock.Now())
	wrong := "000000"
	if wrong == right {
		wrong = "111111"
	}
	for i := range 3 {
		_, err = h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: aliceProof, TotpCode: wrong})
		if i < 3 {
			wantCode(t, err, codes.Unauthenticated)
		}
	}
	_, err = h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: aliceProof, TotpCode: right})
	wantCode(t, err, codes.ResourceExhausted)
	_, err = h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: aliceProof, RecoveryCode: "abcde-fghjk"})
	wantCode(t, err, codes.ResourceExhausted)
	// Bob's budget is his own.
	clock.Advance(30 * time.Second)
	bobProof = proofFor(t, h.c, bob.GetId())
	if _, err := h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: bobProof, TotpCode: totpCode(t, bobSecret, clock.Now())}); err != nil {
		t.Fatalf("bob after alice's guesses: %v", err)
	}
}

func TestStepUp(t *testing.T) {
	h, clock := factorHarness(t, func(c *accounts.Config) { c.StepUpWindow = 5 * time.Minute })
	alice := register(t, h.c, "alice", "alice's password")
	session := startSession(t, h.c, alice.GetId(), "")
	secret, _ := enrolTOTP(t, h, clock, session.GetSecret())
	ctx := asUser(session.GetSecret())

	clock.Advance(6 * time.Minute)
	for name, call := range map[string]func() error{
		"disable TOTP": func() error { _, err := h.c.DisableTOTP(ctx, &accountsv1.DisableTOTPRequest{}); return err },
		"new recovery codes": func() error {
			_, err := h.c.GenerateRecoveryCodes(ctx, &accountsv1.GenerateRecoveryCodesRequest{})
			return err
		},
		"change password": func() error {
			_, err := h.c.ChangePassword(ctx, &accountsv1.ChangePasswordRequest{CurrentPassword: "alice's password", NewPassword: "a new password for alice"})
			return err
		},
		"add email": func() error {
			_, err := h.c.AddEmail(ctx, &accountsv1.AddEmailRequest{Email: "a2@example.com"})
			return err
		},
		"remove email": func() error {
			_, err := h.c.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{Email: "alice@example.com"})
			return err
		},
		"primary email": func() error {
			_, err := h.c.SetPrimaryEmail(ctx, &accountsv1.SetPrimaryEmailRequest{Email: "alice@example.com"})
			return err
		},
		"deactivate": func() error { _, err := h.c.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{}); return err },
		"start TOTP": func() error {
			_, err := h.c.StartTOTPEnrolment(ctx, &accountsv1.StartTOTPEnrolmentRequest{})
			return err
		},
		"passkey registration": func() error {
			_, err := h.c.BeginPasskeyRegistration(ctx, &accountsv1.BeginPasskeyRegistrationRequest{})
			return err
		},
		"lift the requirement": func() error {
			_, err := h.c.SetSecondFactorRequired(ctx, &accountsv1.SetSecondFactorRequiredRequest{Required: false})
			return err
		},
	} {
		err := call()
		wantCode(t, err, codes.PermissionDenied)
		if fact(err, errs.FactStepUp) != "required" {
			t.Errorf("%s without a recent authentication: %v", name, err)
		}
	}

	// A password alone does not do for a person with a second factor.
	_, err := h.c.ReauthenticateBrowserSession(ctx, &accountsv1.ReauthenticateBrowserSessionRequest{AuthProof: proofFor(t, h.c, alice.GetId()), RequireComplete: true})
	wantCode(t, err, codes.FailedPrecondition)
	// Another person's proof does not either.
	bob := register(t, h.c, "bob", "bob's password")
	_, err = h.c.ReauthenticateBrowserSession(ctx, &accountsv1.ReauthenticateBrowserSessionRequest{AuthProof: proofFor(t, h.c, bob.GetId())})
	wantCode(t, err, codes.PermissionDenied)

	// A TOTP code steps up.
	v, err := h.c.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{TotpCode: totpCode(t, secret, clock.Now())})
	if err != nil {
		t.Fatal(err)
	}
	re, err := h.c.ReauthenticateBrowserSession(ctx, &accountsv1.ReauthenticateBrowserSessionRequest{AuthProof: v.GetAuthProof()})
	if err != nil {
		t.Fatal(err)
	}
	if !re.GetSession().GetAuthenticatedAt().AsTime().Equal(clock.Now()) || strings.Join(re.GetSession().GetAuthMethods(), "+") != "totp" {
		t.Fatalf("after the step-up: %v", re.GetSession())
	}
	if _, err := h.c.DisableTOTP(ctx, &accountsv1.DisableTOTPRequest{}); err != nil {
		t.Fatalf("disable TOTP after a step-up: %v", err)
	}
	f, err := h.c.GetSecondFactors(ctx, &accountsv1.GetSecondFactorsRequest{})
	if err != nil || f.GetFactors().GetTotpEnabled() {
		t.Fatalf("after disabling: %v %v", f, err)
	}
}

func TestSecondFactorPolicy(t *testing.T) {
	h, clock := factorHarness(t, func(c *accounts.Config) { c.SecondFactor = factors.RequiredForAdmins })
	ctx := context.Background()
	admin, err := h.c.Register(ctx, &accountsv1.RegisterRequest{SkipVerification: true, Username: "root", Password: "root's password", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	passwords.Store(admin.GetUser().GetId(), "root's password")
	alice := register(t, h.c, "alice", "alice's password")

	// Alice signs in with her password; the administrator must set up a factor first.
	startSession(t, h.c, alice.GetId(), "")
	pw, err := h.c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "root", Password: "root's password", SecondFactorCapable: true})
	if err != nil {
		t.Fatal(err)
	}
	if pw.GetSecondFactor() != accountsv1.SecondFactorNeed_SECOND_FACTOR_NEED_ENROL {
		t.Fatalf("need %v", pw.GetSecondFactor())
	}
	_, err = h.c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: admin.GetUser().GetId(), AuthProof: pw.GetAuthProof()})
	if wantCode(t, err, codes.FailedPrecondition); fact(err, errs.FactSecondFactor) != "enrol" {
		t.Fatalf("%v", err)
	}
	// Enrolment during the sign-in, with the password's proof.
	started, err := h.c.StartTOTPEnrolment(ctx, &accountsv1.StartTOTPEnrolmentRequest{AuthProof: pw.GetAuthProof()})
	if err != nil {
		t.Fatal(err)
	}
	confirmed, err := h.c.ConfirmTOTPEnrolment(ctx, &accountsv1.ConfirmTOTPEnrolmentRequest{Ticket: started.GetTicket(), AuthProof: pw.GetAuthProof(), Code: totpCode(t, started.GetSecret(), clock.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: admin.GetUser().GetId(), AuthProof: confirmed.GetAuthProof()}); err != nil {
		t.Fatalf("session after enrolling: %v", err)
	}
	// Once set up, a password proof cannot set up more without a session.
	pw2 := proofFor(t, h.c, admin.GetUser().GetId())
	_, err = h.c.BeginPasskeyRegistration(ctx, &accountsv1.BeginPasskeyRegistrationRequest{AuthProof: pw2})
	wantCode(t, err, codes.PermissionDenied)

	// An administrator requires one of Alice; she cannot lift it.
	if _, err := h.c.SetSecondFactorRequired(ctx, &accountsv1.SetSecondFactorRequiredRequest{UserId: alice.GetId(), Required: true}); err != nil {
		t.Fatal(err)
	}
	_, err = h.c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: alice.GetId(), AuthProof: proofFor(t, h.c, alice.GetId())})
	wantCode(t, err, codes.FailedPrecondition)

	// The administrator's recovery of a lost factor: everything removed.
	if _, err := h.c.ResetSecondFactors(ctx, &accountsv1.ResetSecondFactorsRequest{UserId: admin.GetUser().GetId()}); err != nil {
		t.Fatal(err)
	}
	f, err := h.c.GetSecondFactors(ctx, &accountsv1.GetSecondFactorsRequest{UserId: admin.GetUser().GetId()})
	if err != nil || f.GetFactors().GetTotpEnabled() || f.GetFactors().GetRecoveryCodesLeft() != 0 || f.GetFactors().GetNeed() != accountsv1.SecondFactorNeed_SECOND_FACTOR_NEED_ENROL {
		t.Fatalf("after the reset: %v %v", f, err)
	}
}

func TestErasureRemovesFactors(t *testing.T) {
	h, clock := factorHarness(t, nil)
	alice := register(t, h.c, "alice", "alice's password")
	enrolTOTP(t, h, clock, startSession(t, h.c, alice.GetId(), "").GetSecret())
	if _, err := h.c.DeactivateUser(context.Background(), &accountsv1.DeactivateUserRequest{UserId: alice.GetId(), Erase: true}); err != nil {
		t.Fatal(err)
	}
	f, err := h.c.GetSecondFactors(context.Background(), &accountsv1.GetSecondFactorsRequest{UserId: alice.GetId()})
	if err != nil || f.GetFactors().GetTotpEnabled() || f.GetFactors().GetRecoveryCodesLeft() != 0 {
		t.Fatalf("after erasure: %v %v", f, err)
	}
	var reset bool
	for _, rec := range h.events(t, "accounts.factors."+alice.GetId()) {
		if _, ok := rec.Event.(*eventsv1.SecondFactorsReset); ok {
			reset = true
		}
	}
	if !reset {
		t.Fatal("no SecondFactorsReset with the erasure")
	}
}

// Passkeys need a relying party that is a domain: a public URL on an IP
// address serves everything else, and refuses passkeys clearly.
func TestPasskeysNeedADomain(t *testing.T) {
	h := startHarness(t, func(c *accounts.Config) { c.PublicURL = "http://127.0.0.1:8080/" })
	_, err := h.c.BeginPasskeySignIn(context.Background(), &accountsv1.BeginPasskeySignInRequest{})
	wantCode(t, err, codes.FailedPrecondition)
}

// A signed-in person reads and changes only their own factors.
func TestFactorsAreTheirOwn(t *testing.T) {
	h, clock := factorHarness(t, nil)
	alice := register(t, h.c, "alice", "alice's password")
	bob := register(t, h.c, "bob", "bob's password")
	enrolTOTP(t, h, clock, startSession(t, h.c, bob.GetId(), "").GetSecret())
	ctx := asUser(startSession(t, h.c, alice.GetId(), "").GetSecret())
	_, err := h.c.GetSecondFactors(ctx, &accountsv1.GetSecondFactorsRequest{UserId: bob.GetId()})
	wantCode(t, err, codes.PermissionDenied)
	_, err = h.c.DisableTOTP(ctx, &accountsv1.DisableTOTPRequest{UserId: bob.GetId()})
	wantCode(t, err, codes.PermissionDenied)
	_, err = h.c.SetSecondFactorRequired(ctx, &accountsv1.SetSecondFactorRequiredRequest{UserId: bob.GetId(), Required: false})
	wantCode(t, err, codes.PermissionDenied)
	_, err = h.c.BeginPasskeyRegistration(ctx, &accountsv1.BeginPasskeyRegistrationRequest{UserId: bob.GetId()})
	wantCode(t, err, codes.PermissionDenied)
	if f, err := h.c.GetSecondFactors(context.Background(), &accountsv1.GetSecondFactorsRequest{UserId: bob.GetId()}); err != nil || !f.GetFactors().GetTotpEnabled() {
		t.Fatalf("bob's factors: %v %v", f, err)
	}
}
