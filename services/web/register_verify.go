package web

import (
	"net/http"
	"strings"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// The second step of registration: the 6-digit code notify emailed, typed on
// /register/verify (or a new one sent, /register/resend); the account is then
// created by accounts, against notify's confirmation, and signed in.

// verifyView is the data of the page asking for the emailed code.
type verifyView struct {
	Action       string
	ResendAction string
	ResendCSRF   string
	StartOverURL string
	Sent         string
	Code         render.Field
}

// pendingRegistration is the browser's registration waiting for its code.
type pendingRegistration struct {
	id, verificationID, username, email string
}

// pendingOf finds the browser's pending registration. Without one (no
// cookie, or a registration that expired or is complete), it shows the
// registration form again, saying so, and reports false.
func (s *Service) pendingOf(w http.ResponseWriter, r *http.Request, f flow) (*pendingRegistration, bool) {
	id, verificationID, _ := strings.Cut(s.cookies.Get(r, cookie.Registration), ".")
	if id != "" && verificationID != "" {
		got, err := s.accounts.GetRegistration(r.Context(), &accountsv1.GetRegistrationRequest{RegistrationId: id})
		reg := got.GetRegistration()
		switch {
		case err == nil && reg.GetUserId() == "" && s.now().Before(reg.GetExpiresAt().AsTime()):
			return &pendingRegistration{id: id, verificationID: verificationID, username: reg.GetUsername(), email: reg.GetEmail()}, true
		case err != nil && errs.KindOf(err) != errs.KindNotFound && errs.KindOf(err) != errs.KindInvalid:
			s.failure(w, r, "read pending registration", err)
			return nil, false
		}
	}
	s.cookies.Clear(w, cookie.Registration)
	s.renderRegister(w, r, http.StatusBadRequest, f, nil, registerForm{}, s.localizer(r).T(i18n.VerifyNoPending))
	return nil, false
}

func (s *Service) handleVerifyGet(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	p, ok := s.pendingOf(w, r, f)
	if !ok {
		return
	}
	notice := ""
	if r.URL.Query().Get("resent") == "1" {
		notice = s.localizer(r).T(i18n.VerifyResent)
	}
	s.renderVerify(w, r, http.StatusOK, f, p, "", "", notice)
}

func (s *Service) handleVerifyPost(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	l := s.localizer(r)
	p, ok := s.pendingOf(w, r, f)
	if !ok {
		return
	}
	code := truncate(strings.TrimSpace(r.PostFormValue("code")), 32)
	if !s.csrf.Check(r, "verify") {
		s.renderVerify(w, r, http.StatusForbidden, f, p, code, l.T(i18n.ErrorFormExpired), "")
		return
	}
	if code == "" {
		s.renderVerify(w, r, http.StatusBadRequest, f, p, code, l.T(i18n.VerifyNoCode), "")
		return
	}
	ctx := r.Context()
	_, err := s.notify.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: p.verificationID, Code: code})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindInvalid:
			msg := wrongCode(l, err)
			s.renderVerify(w, r, http.StatusBadRequest, f, p, code, msg, "")
		case errs.KindFailedPrecondition, errs.KindNotFound:
			s.renderVerify(w, r, http.StatusBadRequest, f, p, code, l.T(i18n.VerifyExpired), "")
		case errs.KindRateLimited:
			s.renderVerify(w, r, http.StatusTooManyRequests, f, p, code, tryLater(l, err), "")
		default:
			s.failure(w, r, "check email code", err)
		}
		return
	}
	// The accounts service checks the confirmation itself (its projection of
	// the notify service's events): the address, the purpose, and that it
	// came after the registration started.
	resp, err := s.accounts.CompleteRegistration(ctx, &accountsv1.CompleteRegistrationRequest{
		RegistrationId: p.id, VerificationId: p.verificationID,
	})
	if err != nil {
		s.cookies.Clear(w, cookie.Registration)
		if errs.KindOf(err) == errs.KindFailedPrecondition || errs.KindOf(err) == errs.KindNotFound {
			s.renderRegister(w, r, http.StatusBadRequest, f, nil, registerForm{username: p.username, email: p.email}, l.T(i18n.VerifyNoPending))
			return
		}
		s.registrationRefused(w, r, f, nil, registerForm{username: p.username, email: p.email}, err)
		return
	}
	s.cookies.Clear(w, cookie.Registration)
	if err := s.startSession(w, r, resp.GetUser(), resp.GetAuthProof()); err != nil {
		s.sessionFailed(w, r, f, err)
		return
	}
	s.continueFlow(w, r, f)
}

// handleResendPost emails a new code.
func (s *Service) handleResendPost(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	l := s.localizer(r)
	p, ok := s.pendingOf(w, r, f)
	if !ok {
		return
	}
	if !s.csrf.Check(r, "resend") {
		s.renderVerify(w, r, http.StatusForbidden, f, p, "", "", l.T(i18n.ErrorFormExpired))
		return
	}
	_, err := s.notify.ResendVerification(r.Context(), &notifyv1.ResendVerificationRequest{
		VerificationId: p.verificationID, ClientIp: clientaddr.String(r),
	})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindRateLimited:
			s.renderVerify(w, r, http.StatusTooManyRequests, f, p, "", "", l.T(i18n.VerifyWait))
		case errs.KindFailedPrecondition, errs.KindNotFound:
			s.renderVerify(w, r, http.StatusBadRequest, f, p, "", "", l.T(i18n.VerifyExpired))
		default:
			s.failure(w, r, "resend email code", err)
		}
		return
	}
	q := f.query()
	q.Set("resent", "1")
	s.redirect(w, r, "register/verify", q)
}

// renderVerify shows the code form. codeErr goes next to the field; notice
// is about the page (a new code was sent, or could not be).
func (s *Service) renderVerify(w http.ResponseWriter, r *http.Request, status int, f flow, p *pendingRegistration, code, codeErr, notice string) {
	l := s.localizer(r)
	v := verifyView{
		Action:       s.flowURL("register/verify", f),
		ResendAction: s.flowURL("register/resend", f),
		ResendCSRF:   s.csrf.Token(w, r, "resend"),
		StartOverURL: s.flowURL("register", f),
		Sent:         l.T(i18n.VerifySent, p.email),
		Code: render.Field{
			ID: "code", Name: "code", Type: "text", Label: l.T(i18n.FieldCode), Hint: l.T(i18n.FieldCodeHint),
			Autocomplete: "one-time-code", InputMode: "numeric", Value: code, Error: codeErr, Required: true,
			MaxLength: 12, Autofocus: true,
		},
	}
	s.render(w, r, status, "verify", &render.View{Title: l.T(i18n.VerifyTitle), CSRF: s.csrf.Token(w, r, "verify"), Notice: notice, Page: v})
}
