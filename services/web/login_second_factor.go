package web

import (
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/qrsvg"
	"gatehouse.dev/services/web/internal/render"
)

// The sign-in's second step (/login/second-factor). When accounts refuses to
// start a session because the proof of the first factor (a password, an
// upstream identity, a new registration) does not satisfy the person's
// second-factor policy, the proof is kept in a cookie of this browser
// (cookie.SecondFactor) and the browser comes here, with its flow: the page
// asks for a TOTP code, a passkey or a recovery code — or, for a person who
// must use a second factor and has none, sets up an authenticator app — and
// accounts turns the proof into a complete one. Every sign-in path (the
// pages, the device flow and compat SSO, which sign in through these pages,
// and upstream providers) goes through it. Passwordless passkey sign-in is
// on the sign-in page (/login/passkey).

// secondFactorLife is how long the first factor's proof waits (accounts
// accepts it for 10 minutes).
const secondFactorLife = 10 * time.Minute

// errSecondFactor is startSession's answer when the browser was sent to
// the second step instead.
var errSecondFactor = errors.New("a second factor is needed")

// secondFactorView is the data of the second step.
type secondFactorView struct {
	Action string
	// Verify: what the person has.
	TOTP     bool
	Code     render.Field
	Recovery *render.Field
	Passkey  *passkeyForm
	// Enrol: an authenticator app to set up first.
	Enrol  bool
	Intro  string
	QR     template.HTML
	Key    string
	Ticket string
	// Codes: the recovery codes, shown once, and where to go on.
	Codes       []string
	ContinueURL string
}

// passkeyForm is a form that runs a WebAuthn ceremony in the browser
// (static/gatehouse.js) and posts its answer.
type passkeyForm struct {
	Action  string
	CSRF    string
	Options string
	// Kind is "get" (an assertion) or "create" (a registration).
	Kind string
	// Conditional offers the passkeys in the username field's autofill.
	Conditional bool
	Label       string
	// Failed is said when the ceremony fails in the browser.
	Failed string
	Name   *render.Field
}

// sessionFailed handles a failed StartBrowserSession of a sign-in flow: the
// second step when that is what is missing, the failure page otherwise.
func (s *Service) sessionFailed(w http.ResponseWriter, r *http.Request, f flow, err error) {
	if errors.Is(err, errSecondFactor) {
		s.redirect(w, r, "login/second-factor", f.query())
		return
	}
	s.failure(w, r, "start browser session", err)
}

// secondFactorProof is the waiting proof, or "" (with the expired page shown).
func (s *Service) secondFactorProof(w http.ResponseWriter, r *http.Request) string {
	proof := s.cookies.Get(r, cookie.SecondFactor)
	if proof == "" {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.SecondFactorExpired)
	}
	return proof
}

// proofUserID is the user a proof names (its first part, see accounts'
// proofs.go); accounts checks the proof whatever this says.
func proofUserID(proof string) string {
	id, _, _ := strings.Cut(proof, ".")
	return id
}

func (s *Service) handleSecondFactorGet(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if _, ok := s.loadGrant(w, r, f); !ok {
		return
	}
	proof := s.secondFactorProof(w, r)
	if proof == "" {
		return
	}
	s.showSecondFactor(w, r, http.StatusOK, f, proof, "", "")
}

// showSecondFactor shows the second step for proof, with an error next to
// the code (codeErr) or about the page (formErr).
func (s *Service) showSecondFactor(w http.ResponseWriter, r *http.Request, status int, f flow, proof, codeErr, formErr string) {
	l := s.localizer(r)
	ctx := r.Context()
	got, err := s.accounts.GetSecondFactors(ctx, &accountsv1.GetSecondFactorsRequest{AuthProof: proof})
	if err != nil {
		s.secondFactorRefused(w, r, f, proof, err)
		return
	}
	fs := got.GetFactors()
	v := &secondFactorView{Action: s.flowURL("login/second-factor", f)}
	title := l.T(i18n.SecondFactorTitle)
	if fs.GetNeed() == accountsv1.SecondFactorNeed_SECOND_FACTOR_NEED_ENROL {
		enrol, err := s.accounts.StartTOTPEnrolment(ctx, &accountsv1.StartTOTPEnrolmentRequest{AuthProof: proof})
		if err != nil {
			s.secondFactorRefused(w, r, f, proof, err)
			return
		}
		if err := s.enrolView(r, v, enrol, l.T(i18n.EnrolIntro)); err != nil {
			s.failure(w, r, "draw QR code", err)
			return
		}
		v.Code = s.codeField(r, codeErr)
		title = l.T(i18n.EnrolTitle)
	} else {
		v.TOTP = fs.GetTotpEnabled()
		v.Code = s.codeField(r, codeErr)
		if fs.GetRecoveryCodesLeft() > 0 {
			v.Recovery = &render.Field{ID: "recovery_code", Name: "recovery_code", Type: "text", Label: l.T(i18n.SecondFactorRecoveryLabel),
				Autocomplete: "off", Autocapitalize: "none", MaxLength: 32}
		}
		if len(fs.GetPasskeys()) > 0 {
			pf, err := s.passkeyGet(w, r, &accountsv1.BeginPasskeySignInRequest{AuthProof: proof}, s.flowURL("login/second-factor", f), "second-factor", false)
			if err != nil {
				s.secondFactorRefused(w, r, f, proof, err)
				return
			}
			v.Passkey = pf
		}
		if !v.TOTP {
			v.Code.Autofocus = false
		}
	}
	s.render(w, r, status, "second_factor", &render.View{Title: title, CSRF: s.csrf.Token(w, r, "second-factor"), Error: formErr, Page: v})
}

// codeField is the six-digit code's field.
func (s *Service) codeField(r *http.Request, codeErr string) render.Field {
	l := s.localizer(r)
	return render.Field{ID: "code", Name: "code", Type: "text", Label: l.T(i18n.SecondFactorTOTPLabel), Hint: l.T(i18n.SecondFactorTOTPHint),
		Autocomplete: "one-time-code", InputMode: "numeric", MaxLength: 8, Error: codeErr, Autofocus: true, Required: true}
}

// enrolView fills in an authenticator app's enrolment: the QR code (drawn
// here, as inline SVG) and the key to type.
func (s *Service) enrolView(r *http.Request, v *secondFactorView, enrol *accountsv1.StartTOTPEnrolmentResponse, intro string) error {
	l := s.localizer(r)
	qr, err := qrsvg.SVG(enrol.GetUri(), l.T(i18n.EnrolQRLabel), 200)
	if err != nil {
		return err
	}
	v.Enrol, v.Intro, v.QR, v.Ticket = true, intro, qr, enrol.GetTicket()
	// Groups of four, as apps show keys.
	key := enrol.GetSecret()
	var groups []string
	for len(key) > 4 {
		groups, key = append(groups, key[:4]), key[4:]
	}
	v.Key = strings.Join(append(groups, key), " ")
	return nil
}

// passkeyGet starts an assertion and returns its form; the ceremony is kept
// in this browser's cookie.
func (s *Service) passkeyGet(w http.ResponseWriter, r *http.Request, req *accountsv1.BeginPasskeySignInRequest, action, csrfForm string, conditional bool) (*passkeyForm, error) {
	ctx := r.Context()
	if who, _ := s.currentUser(w, r); who != nil && req.GetAuthProof() == "" {
		ctx = s.asUser(ctx, who)
	}
	begun, err := s.accounts.BeginPasskeySignIn(ctx, req)
	if err != nil {
		return nil, err
	}
	s.cookies.Set(w, cookie.Passkey, begun.GetCeremony(), int(5*time.Minute/time.Second))
	l := s.localizer(r)
	label := l.T(i18n.SecondFactorPasskeyButton)
	if conditional {
		label = l.T(i18n.LoginPasskey)
	}
	return &passkeyForm{Action: action, CSRF: s.csrf.Token(w, r, csrfForm), Options: begun.GetOptionsJson(), Kind: "get", Conditional: conditional, Label: label,
		Failed: l.T(i18n.SecondFactorPasskeyFailed)}, nil
}

// secondFactorRefused shows why the second step cannot go on: an expired
// proof sends the person back to sign in.
func (s *Service) secondFactorRefused(w http.ResponseWriter, r *http.Request, f flow, proof string, err error) {
	switch errs.KindOf(err) {
	case errs.KindPermissionDenied, errs.KindFailedPrecondition, errs.KindNotFound, errs.KindInvalid:
		s.cookies.Clear(w, cookie.SecondFactor)
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.SecondFactorExpired)
	default:
		s.failure(w, r, "second factor", err)
	}
}

func (s *Service) handleSecondFactorPost(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	if _, ok := s.loadGrant(w, r, f); !ok {
		return
	}
	proof := s.secondFactorProof(w, r)
	if proof == "" {
		return
	}
	l := s.localizer(r)
	if !s.csrf.Check(r, "second-factor") {
		s.showSecondFactor(w, r, http.StatusForbidden, f, proof, "", l.T(i18n.ErrorFormExpired))
		return
	}
	ctx := r.Context()
	locale := l.Lang
	var (
		user     *accountsv1.User
		complete string
		codes    []string
		err      error
	)
	code := truncate(strings.TrimSpace(r.PostFormValue("code")), 16)
	switch r.PostFormValue("action") {
	case "totp", "recovery":
		recovery := truncate(strings.TrimSpace(r.PostFormValue("recovery_code")), 64)
		if r.PostFormValue("action") == "totp" {
			recovery = ""
		} else {
			code = ""
		}
		if code == "" && recovery == "" {
			s.showSecondFactor(w, r, http.StatusBadRequest, f, proof, l.T(i18n.SecondFactorCodeNone), "")
			return
		}
		var v *accountsv1.VerifySecondFactorResponse
		v, err = s.accounts.VerifySecondFactor(ctx, &accountsv1.VerifySecondFactorRequest{AuthProof: proof, TotpCode: code, RecoveryCode: recovery, Locale: locale})
		user, complete = v.GetUser(), v.GetAuthProof()
	case "enrol":
		if code == "" {
			s.showSecondFactor(w, r, http.StatusBadRequest, f, proof, l.T(i18n.SecondFactorCodeNone), "")
			return
		}
		var c *accountsv1.ConfirmTOTPEnrolmentResponse
		c, err = s.accounts.ConfirmTOTPEnrolment(ctx, &accountsv1.ConfirmTOTPEnrolmentRequest{Ticket: r.PostFormValue("ticket"), Code: code, AuthProof: proof, Locale: locale})
		user, complete, codes = &accountsv1.User{Id: proofUserID(proof)}, c.GetAuthProof(), c.GetRecoveryCodes()
	case "passkey":
		var p *accountsv1.FinishPasskeySignInResponse
		p, err = s.accounts.FinishPasskeySignIn(ctx, &accountsv1.FinishPasskeySignInRequest{
			Ceremony: s.cookies.Get(r, cookie.Passkey), CredentialJson: r.PostFormValue("credential"), AuthProof: proof,
		})
		s.cookies.Clear(w, cookie.Passkey)
		if err != nil && errs.KindOf(err) == errs.KindUnauthenticated {
			s.showSecondFactor(w, r, http.StatusUnauthorized, f, proof, "", l.T(i18n.SecondFactorPasskeyFailed))
			return
		}
		user, complete = p.GetUser(), p.GetAuthProof()
	default:
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindUnauthenticated:
			if code == "" { // a recovery code: said about the page
				s.showSecondFactor(w, r, http.StatusUnauthorized, f, proof, "", l.T(i18n.SecondFactorWrong))
				return
			}
			s.showSecondFactor(w, r, http.StatusUnauthorized, f, proof, l.T(i18n.SecondFactorWrong), "")
		case errs.KindRateLimited:
			retryAfter(w, errs.RetryAfterOf(err))
			s.showSecondFactor(w, r, http.StatusTooManyRequests, f, proof, "", l.T(i18n.SecondFactorRateLimited))
		default:
			s.secondFactorRefused(w, r, f, proof, err)
		}
		return
	}
	if err := s.startSession(w, r, user, complete); err != nil {
		s.secondFactorRefused(w, r, f, proof, err)
		return
	}
	s.cookies.Clear(w, cookie.SecondFactor)
	if len(codes) > 0 {
		s.showCodes(w, r, codes, s.flowURL("login", f))
		return
	}
	s.continueFlow(w, r, f)
}

// showCodes shows recovery codes, once, with the way on.
func (s *Service) showCodes(w http.ResponseWriter, r *http.Request, codes []string, next string) {
	l := s.localizer(r)
	s.render(w, r, http.StatusOK, "second_factor", &render.View{Title: l.T(i18n.RecoveryCodesTitle), Page: &secondFactorView{Codes: codes, ContinueURL: next}})
}

// handlePasskeyLoginPost finishes a passwordless passkey sign-in started by
// the sign-in page.
func (s *Service) handlePasskeyLoginPost(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	g, ok := s.loadGrant(w, r, f)
	if !ok {
		return
	}
	l := s.localizer(r)
	if !s.csrf.Check(r, "login") {
		s.renderLogin(w, r, http.StatusForbidden, f, g, loginErrors{form: l.T(i18n.ErrorFormExpired)}, "")
		return
	}
	p, err := s.accounts.FinishPasskeySignIn(r.Context(), &accountsv1.FinishPasskeySignInRequest{
		Ceremony: s.cookies.Get(r, cookie.Passkey), CredentialJson: r.PostFormValue("credential"),
	})
	s.cookies.Clear(w, cookie.Passkey)
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindUnauthenticated, errs.KindFailedPrecondition, errs.KindPermissionDenied, errs.KindInvalid, errs.KindNotFound:
			s.renderLogin(w, r, http.StatusUnauthorized, f, g, loginErrors{form: l.T(i18n.SecondFactorPasskeyFailed)}, "")
		default:
			s.failure(w, r, "passkey sign-in", err)
		}
		return
	}
	if err := s.replaceSession(w, r, p.GetUser(), p.GetAuthProof()); err != nil {
		s.sessionFailed(w, r, f, err)
		return
	}
	s.continueFlow(w, r, f)
}
