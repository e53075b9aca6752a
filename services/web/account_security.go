package web

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// The sign-in methods page (/account/security): passkeys (added with the
// browser's WebAuthn, named, with their last use, removable), the
// authenticator app (set up with a QR code drawn here, confirmed with a
// code), recovery codes (shown once) and whether to always ask for a second
// factor. Changing any of them is a sensitive action: accounts refuses it
// without a recent authentication (account.step_up_window), and the browser
// is sent to confirm it is the person (/account/confirm, the step-up page)
// and back.

// securityView is the data of the sign-in methods section.
type securityView struct {
	Passkeys                       []passkeyItem
	PasskeyRemoveAction            string
	PasskeyRemoveCSRF              string
	PasskeyRenameAction            string
	PasskeyRenameCSRF              string
	AddPasskeyURL                  string
	TOTP                           bool
	TOTPSince                      *timeView
	TOTPSetUpURL                   string
	TOTPRemoveAction, TOTPRemoveCS string
	HasFactor                      bool
	RecoveryLeft                   int32
	RecoveryAction, RecoveryCSRF   string
	Require                        bool
	RequiredByAdmin                bool
	RequiredByPolicy               bool
	RequireAction, RequireCSRF     string
	// One of these instead of the overview: the authenticator app's set-up,
	// a passkey's registration, recovery codes to note.
	Enrol      *secondFactorView
	NewPasskey *passkeyForm
	Codes      []string
	DoneURL    string
}

// passkeyItem is one passkey in the list.
type passkeyItem struct {
	ID, Name       string
	Added          *timeView
	LastUsed       *timeView
	Synced         bool
	RemoveLabelFor string
}

// confirmView is the step-up page's data.
type confirmView struct {
	Action   string
	Password *render.Field
	Code     *render.Field
	Passkey  *passkeyForm
	// Both: a complete sign-in is asked for (an application's prompt=login
	// or max_age): the password and the code in one form.
	Both bool
}

const (
	sectionSecurity = "security"
	sectionConfirm  = "confirm"
)

// stepUp sends the browser to confirm it is the person when err is
// accounts' refusal for want of a recent authentication, and reports whether
// it did; back is the page to return to.
func (s *Service) stepUp(w http.ResponseWriter, r *http.Request, err error, back string) bool {
	if v, _ := errs.FactOf(err, errs.FactStepUp); v != "required" {
		return false
	}
	s.redirect(w, r, "account/confirm", url.Values{"next": {s.path(back)}})
	return true
}

func (s *Service) handleSecurityGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.showSecurity(w, r, http.StatusOK, who, s.doneNotice(r), "")
}

func (s *Service) showSecurity(w http.ResponseWriter, r *http.Request, status int, who *signedIn, notice, formErr string) {
	l := s.localizer(r)
	got, err := s.accounts.GetSecondFactors(s.asUser(r.Context(), who), &accountsv1.GetSecondFactorsRequest{UserId: who.user.GetId()})
	if err != nil {
		s.failure(w, r, "get second factors", err)
		return
	}
	fs := got.GetFactors()
	v := &securityView{
		PasskeyRemoveAction: s.path("account/security/passkeys/remove"), PasskeyRemoveCSRF: s.csrf.Token(w, r, "account-passkey-remove"),
		PasskeyRenameAction: s.path("account/security/passkeys/rename"), PasskeyRenameCSRF: s.csrf.Token(w, r, "account-passkey-rename"),
		AddPasskeyURL: s.path("account/security/passkeys/new"),
		TOTP:          fs.GetTotpEnabled(), TOTPSince: when(l, fs.GetTotpEnabledAt()), TOTPSetUpURL: s.path("account/security/totp"),
		TOTPRemoveAction: s.path("account/security/totp/remove"), TOTPRemoveCS: s.csrf.Token(w, r, "account-totp-remove"),
		HasFactor:    fs.GetTotpEnabled() || len(fs.GetPasskeys()) > 0,
		RecoveryLeft: fs.GetRecoveryCodesLeft(), RecoveryAction: s.path("account/security/recovery-codes"), RecoveryCSRF: s.csrf.Token(w, r, "account-recovery"),
		Require: fs.GetRequiredByUser(), RequiredByAdmin: fs.GetRequiredByAdmin(), RequiredByPolicy: fs.GetRequiredByPolicy(),
		RequireAction: s.path("account/security/require"), RequireCSRF: s.csrf.Token(w, r, "account-require"),
	}
	for _, p := range fs.GetPasskeys() {
		v.Passkeys = append(v.Passkeys, passkeyItem{ID: p.GetPasskeyId(), Name: p.GetName(), Added: when(l, p.GetCreatedAt()), LastUsed: when(l, p.GetLastUsedAt()), Synced: p.GetBackedUp()})
	}
	s.renderAccount(w, r, status, who, l.T(i18n.AccountSecurityTitle), &accountView{Section: sectionSecurity, Security: v}, notice, formErr)
}

// handleTOTPGet starts setting up an authenticator app.
func (s *Service) handleTOTPGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	enrol, err := s.accounts.StartTOTPEnrolment(s.asUser(r.Context(), who), &accountsv1.StartTOTPEnrolmentRequest{UserId: who.user.GetId()})
	if err != nil {
		if s.stepUp(w, r, err, "account/security/totp") {
			return
		}
		if errs.KindOf(err) == errs.KindFailedPrecondition {
			s.redirect(w, r, "account/security", nil)
			return
		}
		s.failure(w, r, "start TOTP enrolment", err)
		return
	}
	s.showTOTPEnrol(w, r, http.StatusOK, who, enrol.GetTicket(), enrol, "")
}

func (s *Service) showTOTPEnrol(w http.ResponseWriter, r *http.Request, status int, who *signedIn, ticket string, enrol *accountsv1.StartTOTPEnrolmentResponse, codeErr string) {
	l := s.localizer(r)
	ev := &secondFactorView{Action: s.path("account/security/totp")}
	if err := s.enrolView(r, ev, enrol, l.T(i18n.EnrolIntroAccount)); err != nil {
		s.failure(w, r, "draw QR code", err)
		return
	}
	ev.Code = s.codeField(r, codeErr)
	s.renderAccount(w, r, status, who, l.T(i18n.AccountTOTPSetUp), &accountView{Section: sectionSecurity, Security: &securityView{Enrol: ev}}, "", "")
}

// handleTOTPPost confirms the authenticator app with a code.
func (s *Service) handleTOTPPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-"+sectionSecurity) {
		return
	}
	l := s.localizer(r)
	ticket := r.PostFormValue("ticket")
	c, err := s.accounts.ConfirmTOTPEnrolment(s.asUser(r.Context(), who), &accountsv1.ConfirmTOTPEnrolmentRequest{
		Ticket: ticket, Code: truncate(strings.TrimSpace(r.PostFormValue("code")), 16), Locale: l.Lang,
	})
	if err != nil {
		switch {
		case s.stepUp(w, r, err, "account/security/totp"):
		case errs.KindOf(err) == errs.KindUnauthenticated, errs.KindOf(err) == errs.KindRateLimited:
			// The same secret again: it is in the ticket, which accounts
			// opens; the page shows it anew from a fresh enrolment.
			s.handleTOTPGetWithError(w, r, who, l.T(i18n.SecondFactorWrong))
		case errs.KindOf(err) == errs.KindFailedPrecondition:
			s.redirect(w, r, "account/security/totp", nil)
		default:
			s.failure(w, r, "confirm TOTP", err)
		}
		return
	}
	if codes := c.GetRecoveryCodes(); len(codes) > 0 {
		s.renderAccount(w, r, http.StatusOK, who, l.T(i18n.RecoveryCodesTitle), &accountView{Section: sectionSecurity,
			Security: &securityView{Codes: codes, DoneURL: s.path("account/security")}}, "", "")
		return
	}
	s.done(w, r, "account/security", "totp_added")
}

// handleTOTPGetWithError shows a new enrolment after a wrong code (a new
// secret: the person scans again).
func (s *Service) handleTOTPGetWithError(w http.ResponseWriter, r *http.Request, who *signedIn, codeErr string) {
	enrol, err := s.accounts.StartTOTPEnrolment(s.asUser(r.Context(), who), &accountsv1.StartTOTPEnrolmentRequest{UserId: who.user.GetId()})
	if err != nil {
		if !s.stepUp(w, r, err, "account/security/totp") {
			s.failure(w, r, "start TOTP enrolment", err)
		}
		return
	}
	s.showTOTPEnrol(w, r, http.StatusUnauthorized, who, enrol.GetTicket(), enrol, codeErr)
}

// factorChange runs a change of the signed-in person's factors from a form
// of the sign-in methods page.
func (s *Service) factorChange(w http.ResponseWriter, r *http.Request, who *signedIn, form, what, done string, call func(ctx context.Context) error) {
	if !s.checkAccountCSRF(w, r, form) {
		return
	}
	if err := call(s.asUser(r.Context(), who)); err != nil {
		switch {
		case s.stepUp(w, r, err, "account/security"):
		case errs.KindOf(err) == errs.KindNotFound:
			s.redirect(w, r, "account/security", nil)
		default:
			s.failure(w, r, what, err)
		}
		return
	}
	s.done(w, r, "account/security", done)
}

func (s *Service) handleTOTPRemovePost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.factorChange(w, r, who, "account-totp-remove", "disable TOTP", "totp_removed", func(ctx context.Context) error {
		_, err := s.accounts.DisableTOTP(ctx, &accountsv1.DisableTOTPRequest{UserId: who.user.GetId(), Locale: s.localizer(r).Lang})
		return err
	})
}

func (s *Service) handlePasskeyRemovePost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.factorChange(w, r, who, "account-passkey-remove", "remove passkey", "passkey_removed", func(ctx context.Context) error {
		_, err := s.accounts.RemovePasskey(ctx, &accountsv1.RemovePasskeyRequest{UserId: who.user.GetId(), PasskeyId: truncate(r.PostFormValue("passkey_id"), 64), Locale: s.localizer(r).Lang})
		return err
	})
}

// handlePasskeyRenamePost renames a passkey (no step-up: nothing is
// weakened by a name).
func (s *Service) handlePasskeyRenamePost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-passkey-rename") {
		return
	}
	_, err := s.accounts.RenamePasskey(s.asUser(r.Context(), who), &accountsv1.RenamePasskeyRequest{
		UserId: who.user.GetId(), PasskeyId: truncate(r.PostFormValue("passkey_id"), 64), Name: truncate(r.PostFormValue("name"), 256),
	})
	switch {
	case err == nil:
		s.done(w, r, "account/security", "passkey_renamed")
	case errs.KindOf(err) == errs.KindInvalid:
		s.showSecurity(w, r, http.StatusBadRequest, who, "", errs.PublicMessage(err))
	case errs.KindOf(err) == errs.KindNotFound:
		s.redirect(w, r, "account/security", nil)
	default:
		s.failure(w, r, "rename passkey", err)
	}
}

func (s *Service) handleRequirePost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.factorChange(w, r, who, "account-require", "set second factor requirement", "require", func(ctx context.Context) error {
		_, err := s.accounts.SetSecondFactorRequired(ctx, &accountsv1.SetSecondFactorRequiredRequest{UserId: who.user.GetId(), Required: r.PostFormValue("required") == "on"})
		return err
	})
}

func (s *Service) handleRecoveryCodesPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-recovery") {
		return
	}
	l := s.localizer(r)
	resp, err := s.accounts.GenerateRecoveryCodes(s.asUser(r.Context(), who), &accountsv1.GenerateRecoveryCodesRequest{UserId: who.user.GetId(), Locale: l.Lang})
	if err != nil {
		if !s.stepUp(w, r, err, "account/security") {
			s.failure(w, r, "generate recovery codes", err)
		}
		return
	}
	s.renderAccount(w, r, http.StatusOK, who, l.T(i18n.RecoveryCodesTitle), &accountView{Section: sectionSecurity,
		Security: &securityView{Codes: resp.GetRecoveryCodes(), DoneURL: s.path("account/security")}}, "", "")
}

// handlePasskeyNewGet starts registering a passkey: the page runs the
// ceremony in the browser and posts its answer with the name.
func (s *Service) handlePasskeyNewGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.showPasskeyNew(w, r, http.StatusOK, who, "", "")
}

func (s *Service) showPasskeyNew(w http.ResponseWriter, r *http.Request, status int, who *signedIn, name, formErr string) {
	l := s.localizer(r)
	begun, err := s.accounts.BeginPasskeyRegistration(s.asUser(r.Context(), who), &accountsv1.BeginPasskeyRegistrationRequest{UserId: who.user.GetId()})
	if err != nil {
		if !s.stepUp(w, r, err, "account/security/passkeys/new") {
			s.failure(w, r, "begin passkey registration", err)
		}
		return
	}
	s.cookies.Set(w, cookie.Passkey, begun.GetCeremony(), 300)
	pf := &passkeyForm{
		Action: s.path("account/security/passkeys/new"), CSRF: s.csrf.Token(w, r, "account-"+sectionSecurity), Options: begun.GetOptionsJson(),
		Kind: "create", Label: l.T(i18n.AccountPasskeyAdd), Failed: l.T(i18n.AccountPasskeyFailed),
		Name: &render.Field{ID: "passkey_name", Name: "name", Type: "text", Label: l.T(i18n.AccountPasskeyName), Hint: l.T(i18n.AccountPasskeyNameHint),
			Value: name, MaxLength: 64, Required: true, Autofocus: true},
	}
	s.renderAccount(w, r, status, who, l.T(i18n.AccountPasskeyAdd), &accountView{Section: sectionSecurity, Security: &securityView{NewPasskey: pf}}, "", formErr)
}

func (s *Service) handlePasskeyNewPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-"+sectionSecurity) {
		return
	}
	l := s.localizer(r)
	name := truncate(strings.TrimSpace(r.PostFormValue("name")), 256)
	resp, err := s.accounts.FinishPasskeyRegistration(s.asUser(r.Context(), who), &accountsv1.FinishPasskeyRegistrationRequest{
		Ceremony: s.cookies.Get(r, cookie.Passkey), CredentialJson: r.PostFormValue("credential"), Name: name, Locale: l.Lang,
	})
	s.cookies.Clear(w, cookie.Passkey)
	if err != nil {
		switch {
		case s.stepUp(w, r, err, "account/security/passkeys/new"):
		case errs.KindOf(err) == errs.KindInvalid, errs.KindOf(err) == errs.KindFailedPrecondition, errs.KindOf(err) == errs.KindAlreadyExists:
			s.showPasskeyNew(w, r, http.StatusBadRequest, who, name, errs.PublicMessage(err))
		default:
			s.failure(w, r, "finish passkey registration", err)
		}
		return
	}
	if codes := resp.GetRecoveryCodes(); len(codes) > 0 {
		s.renderAccount(w, r, http.StatusOK, who, l.T(i18n.RecoveryCodesTitle), &accountView{Section: sectionSecurity,
			Security: &securityView{Codes: codes, DoneURL: s.path("account/security?done=passkey_added")}}, "", "")
		return
	}
	s.done(w, r, "account/security", "passkey_added")
}

// The step-up page (/account/confirm?next=…): the password, a TOTP code or
// a passkey, recorded in the browser session by accounts; then back to next.

func (s *Service) handleConfirmGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.showConfirm(w, r, http.StatusOK, who, "", "")
}

func (s *Service) confirmNext(r *http.Request) string {
	next := safeNext(r.URL.Query().Get("next"))
	if next == "" || !strings.HasPrefix(next, s.base.Path) {
		next = s.path("account")
	}
	return next
}

func (s *Service) showConfirm(w http.ResponseWriter, r *http.Request, status int, who *signedIn, fieldErr, formErr string) {
	l := s.localizer(r)
	ctx := s.asUser(r.Context(), who)
	got, err := s.accounts.GetSecondFactors(ctx, &accountsv1.GetSecondFactorsRequest{UserId: who.user.GetId()})
	if err != nil {
		s.failure(w, r, "get second factors", err)
		return
	}
	q := url.Values{"next": {s.confirmNext(r)}}
	full := r.URL.Query().Get("full") == "1"
	if full {
		q.Set("full", "1")
	}
	action := s.path("account/confirm") + "?" + q.Encode()
	v := &confirmView{Action: action}
	if who.user.GetHasPassword() {
		v.Password = &render.Field{ID: "password", Name: "password", Type: "password", Label: l.T(i18n.FieldPassword), Autocomplete: "current-password", Required: true, Autofocus: true}
	}
	if got.GetFactors().GetTotpEnabled() {
		f := s.codeField(r, "")
		f.Autofocus = v.Password == nil
		v.Code = &f
	}
	// A complete sign-in with a password and an authenticator app takes both.
	v.Both = full && v.Password != nil && v.Code != nil
	if v.Both {
		v.Password.Autofocus, v.Code.Autofocus = true, false
	}
	if v.Password != nil && fieldErr != "" {
		v.Password.Error = fieldErr
	} else if v.Code != nil && fieldErr != "" {
		v.Code.Error = fieldErr
	}
	if len(got.GetFactors().GetPasskeys()) > 0 {
		if pf, err := s.passkeyGet(w, r, &accountsv1.BeginPasskeySignInRequest{}, action, "account-"+sectionConfirm, false); err == nil {
			v.Passkey = pf
		}
	}
	s.renderAccount(w, r, status, who, l.T(i18n.StepUpTitle), &accountView{Section: sectionConfirm, Confirm: v}, "", formErr)
}

func (s *Service) handleConfirmPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-"+sectionConfirm) {
		return
	}
	l := s.localizer(r)
	ctx := s.asUser(r.Context(), who)
	var (
		proof string
		err   error
	)
	full := r.URL.Query().Get("full") == "1"
	switch {
	case r.PostFormValue("action") == "passkey":
		var p *accountsv1.FinishPasskeySignInResponse
		p, err = s.accounts.FinishPasskeySignIn(ctx, &accountsv1.FinishPasskeySignInRequest{Ceremony: s.cookies.Get(r, cookie.Passkey), CredentialJson: r.PostFormValue("credential")})
		s.cookies.Clear(w, cookie.Passkey)
		proof = p.GetAuthProof()
	case r.PostFormValue("code") != "" && r.PostFormValue("password") == "":
		var v *accountsv1.VerifySecondFactorResponse
		v, err = s.accounts.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{TotpCode: truncate(strings.TrimSpace(r.PostFormValue("code")), 16)})
		proof = v.GetAuthProof()
	default:
		limit, lerr := s.take(w, r, s.loginKeys(r, who.user.GetUsername())...)
		if lerr != nil {
			s.failure(w, r, "rate limit step-up", lerr)
			return
		}
		if !limit.Allowed {
			s.showConfirm(w, r, http.StatusTooManyRequests, who, "", l.T(i18n.LoginRateLimited))
			return
		}
		var v *accountsv1.VerifyPasswordResponse
		v, err = s.accounts.VerifyPassword(r.Context(), &accountsv1.VerifyPasswordRequest{Username: who.user.GetUsername(), Password: r.PostFormValue("password"), SecondFactorCapable: true})
		if errs.KindOf(err) != errs.KindUnauthenticated {
			s.limiter.Refund(r.Context(), limit)
		}
		proof = v.GetAuthProof()
		if code := strings.TrimSpace(r.PostFormValue("code")); err == nil && code != "" {
			// The password's proof goes on with the code.
			var sf *accountsv1.VerifySecondFactorResponse
			sf, err = s.accounts.VerifySecondFactor(r.Context(), &accountsv1.VerifySecondFactorRequest{AuthProof: proof, TotpCode: truncate(code, 16)})
			proof = sf.GetAuthProof()
		}
	}
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindUnauthenticated, errs.KindInvalid, errs.KindNotFound:
			s.showConfirm(w, r, http.StatusUnauthorized, who, l.T(i18n.SecondFactorWrong), "")
		case errs.KindRateLimited:
			s.showConfirm(w, r, http.StatusTooManyRequests, who, "", l.T(i18n.SecondFactorRateLimited))
		default:
			s.failure(w, r, "step-up", err)
		}
		return
	}
	if _, err := s.accounts.ReauthenticateBrowserSession(ctx, &accountsv1.ReauthenticateBrowserSessionRequest{AuthProof: proof, RequireComplete: full}); err != nil {
		if errs.KindOf(err) == errs.KindFailedPrecondition { // a second factor is needed too
			s.showConfirm(w, r, http.StatusUnauthorized, who, "", l.T(i18n.SecondFactorIntro))
			return
		}
		s.failure(w, r, "record step-up", err)
		return
	}
	http.Redirect(w, r, s.confirmNext(r), http.StatusSeeOther)
}

// freshEnough reports whether the browser session's last authentication
// satisfies the application's prompt=login and max_age (as the authorize
// service checks when approving): after the request, or within max_age.
func freshEnough(g *authorizev1.Grant, bs *accountsv1.BrowserSession, now time.Time) bool {
	login := slices.Contains(strings.Fields(g.GetPrompt()), "login")
	if !login && g.MaxAge == nil {
		return true
	}
	authAt := bs.GetAuthenticatedAt().AsTime()
	if !authAt.Before(g.GetRequestedAt().AsTime().Truncate(time.Second)) {
		return true
	}
	return !login && g.GetMaxAge() > 0 && now.Sub(authAt) <= time.Duration(g.GetMaxAge())*time.Second
}

// signInAgain sends a signed-in person to authenticate again, completely,
// and come back to the consent page of grant.
func (s *Service) signInAgain(w http.ResponseWriter, r *http.Request, grant string) {
	next := s.path("consent") + "?" + url.Values{"grant": {grant}}.Encode()
	s.redirect(w, r, "account/confirm", url.Values{"next": {next}, "full": {"1"}})
}
