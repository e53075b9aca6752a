package web

import (
	"net/http"
	"strings"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ratelimit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/input"
	"gatehouse.dev/services/web/internal/render"
)

// Password recovery.
//
//   - GET /recover asks for an email address. POST /recover asks notify for a
//     RECOVERY verification, naming the account when accounts knows the
//     address (notify then emails a link to <public_url>recover/<ticket>, and
//     sends nothing otherwise, at the same cost). The answer is always the same
//     page, whether or not an account uses the address. Requests are limited
//     per IP address here (recoverPerIP) and per address and IP by notify.
//   - GET /recover/<ticket> only shows the form to choose a new password: a
//     ticket works once (notify.CheckRecoveryTicket consumes it), and mail
//     scanners open the links of the emails they check, so opening the link
//     must not use it up.
//   - POST /recover/<ticket> checks the new password first (a refused password
//     does not cost the ticket), then consumes the ticket, sets the password
//     and ends all of the user's browser sessions.

// recoverTicketLength is the length of notify's recovery tickets, of
// letters and digits: anything else is refused without a call.
const recoverTicketLength = 32

// recoverView is the data of the page asking for the email address.
type recoverView struct {
	Action    string
	Email     render.Field
	SignInURL string
}

// recoverPasswordView is the data of the page choosing the new password.
type recoverPasswordView struct {
	Action   string
	Password render.Field
	Confirm  render.Field
}

// recoverMessageView is the data of the recovery pages that only say
// something, with a link to go on.
type recoverMessageView struct {
	Message  string
	Detail   string
	LinkURL  string
	LinkText string
	// Primary shows the link as the page's main button.
	Primary bool
}

func (s *Service) handleRecoverGet(w http.ResponseWriter, r *http.Request) {
	s.renderRecover(w, r, http.StatusOK, "", "", "")
}

func (s *Service) handleRecoverPost(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	l := s.localizer(r)
	email := truncate(strings.TrimSpace(r.PostFormValue("email")), 254)
	if !s.csrf.Check(r, "recover") {
		s.renderRecover(w, r, http.StatusForbidden, email, "", l.T(i18n.ErrorFormExpired))
		return
	}
	if email == "" {
		s.renderRecover(w, r, http.StatusBadRequest, email, l.T(i18n.RecoverEmailNone), "")
		return
	}
	if !input.ValidEmail(email) {
		s.renderRecover(w, r, http.StatusBadRequest, email, l.T(i18n.RegisterEmailBad), "")
		return
	}
	limit, err := s.take(w, r, perIP(s.rules.RecoveryPerIP, r), ratelimit.Key{Rule: s.rules.RecoveryPerAddress, Subject: strings.ToLower(email)})
	if err != nil {
		s.failure(w, r, "rate limit recovery", err)
		return
	}
	if !limit.Allowed {
		s.renderRecover(w, r, http.StatusTooManyRequests, email, "", l.T(i18n.RecoverRateLimited))
		return
	}
	ctx := r.Context()
	// Only an active account gets a link; for the others, as for unknown
	// addresses, notify sends nothing and answers the same.
	var userID string
	found, err := s.accounts.GetUserByEmail(ctx, &accountsv1.GetUserByEmailRequest{Email: email})
	switch {
	case err == nil:
		if u := found.GetUser(); !u.GetLocked() && !u.GetDeactivated() {
			userID = found.GetUser().GetId()
		}
	case errs.KindOf(err) != errs.KindNotFound && errs.KindOf(err) != errs.KindInvalid:
		s.failure(w, r, "find user by email", err)
		return
	}
	_, err = s.notify.StartVerification(ctx, &notifyv1.StartVerificationRequest{
		Email: email, Purpose: notifyv1.Purpose_PURPOSE_RECOVERY, UserId: userID, ClientIp: clientaddr.String(r), Locale: l.Lang,
	})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindInvalid:
			s.renderRecover(w, r, http.StatusBadRequest, email, l.T(i18n.RegisterEmailBad), "")
		case errs.KindRateLimited:
			s.renderRecover(w, r, http.StatusTooManyRequests, email, "", tryLater(l, err))
		default:
			s.failure(w, r, "start recovery", err)
		}
		return
	}
	s.render(w, r, http.StatusOK, "recover_message", &render.View{Title: l.T(i18n.RecoverSentTitle), Page: recoverMessageView{
		Message: l.T(i18n.RecoverSentBody, email), Detail: l.T(i18n.RecoverSentSpam),
		LinkURL: s.path("recover"), LinkText: l.T(i18n.RecoverSentAgain),
	}})
}

// renderRecover shows the form asking for the address.
func (s *Service) renderRecover(w http.ResponseWriter, r *http.Request, status int, email, emailErr, formErr string) {
	l := s.localizer(r)
	v := recoverView{
		Action:    s.path("recover"),
		SignInURL: s.path("login"),
		Email: render.Field{
			ID: "email", Name: "email", Type: "email", Label: l.T(i18n.FieldEmail), Hint: l.T(i18n.RecoverEmailHint),
			Autocomplete: "email", Value: email, Error: emailErr, Required: true, MaxLength: 254,
		},
	}
	render.FocusFirst(&v.Email)
	s.render(w, r, status, "recover", &render.View{Title: l.T(i18n.RecoverTitle), CSRF: s.csrf.Token(w, r, "recover"), Error: formErr, Page: v})
}

// recoverTicket reads the ticket of a recovery link, or shows the page of an
// invalid link and reports false.
func (s *Service) recoverTicket(w http.ResponseWriter, r *http.Request) (string, bool) {
	t := r.PathValue("ticket")
	ok := len(t) == recoverTicketLength
	for i := 0; ok && i < len(t); i++ {
		c := t[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	if !ok {
		s.recoverInvalid(w, r, http.StatusNotFound, i18n.RecoverInvalidLink)
		return "", false
	}
	return t, true
}

// recoverInvalid shows why a recovery link does not work, with a way to ask
// for a new one.
func (s *Service) recoverInvalid(w http.ResponseWriter, r *http.Request, status int, message i18n.ID) {
	l := s.localizer(r)
	s.render(w, r, status, "recover_message", &render.View{Title: l.T(i18n.RecoverInvalidTitle), Page: recoverMessageView{
		Message: l.T(message), LinkURL: s.path("recover"), LinkText: l.T(i18n.RecoverStartAgain), Primary: true,
	}})
}

// handleRecoverTicketGet shows the new password form. It does not use the
// ticket up (see the top of this file).
func (s *Service) handleRecoverTicketGet(w http.ResponseWriter, r *http.Request) {
	ticket, ok := s.recoverTicket(w, r)
	if !ok {
		return
	}
	s.renderRecoverPassword(w, r, http.StatusOK, ticket, map[string]string{}, "")
}

func (s *Service) handleRecoverTicketPost(w http.ResponseWriter, r *http.Request) {
	ticket, ok := s.recoverTicket(w, r)
	if !ok {
		return
	}
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	l := s.localizer(r)
	password, confirm := r.PostFormValue("password"), r.PostFormValue("password_confirm")
	if !s.csrf.Check(r, "recover-password") {
		s.renderRecoverPassword(w, r, http.StatusForbidden, ticket, map[string]string{}, l.T(i18n.ErrorFormExpired))
		return
	}
	fieldErrs := map[string]string{}
	if id := s.passwords.Check(password, ""); id != "" {
		fieldErrs["password"] = l.T(id)
	} else if confirm != password {
		fieldErrs["password_confirm"] = l.T(i18n.RegisterConfirmWrong)
	}
	if len(fieldErrs) > 0 {
		s.renderRecoverPassword(w, r, http.StatusBadRequest, ticket, fieldErrs, "")
		return
	}
	checked, err := s.notify.CheckRecoveryTicket(r.Context(), &notifyv1.CheckRecoveryTicketRequest{Ticket: ticket})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindNotFound, errs.KindInvalid:
			s.recoverInvalid(w, r, http.StatusNotFound, i18n.RecoverInvalidLink)
		case errs.KindFailedPrecondition:
			s.recoverInvalid(w, r, http.StatusGone, i18n.RecoverExpiredLink)
		default:
			s.failure(w, r, "check recovery ticket", err)
		}
		return
	}
	userID := checked.GetUserId()
	if userID == "" {
		// notify issues no ticket for an address without an account.
		s.logger.ErrorContext(r.Context(), "recovery ticket without a user", "verification", checked.GetVerificationId())
		s.recoverInvalid(w, r, http.StatusNotFound, i18n.RecoverInvalidLink)
		return
	}

	if _, err := s.accounts.SetPassword(r.Context(), &accountsv1.SetPasswordRequest{
		UserId: userID, NewPassword: password, RecoveryVerificationId: checked.GetVerificationId(),
	}); err != nil {
		switch errs.KindOf(err) {
		case errs.KindFailedPrecondition, errs.KindPermissionDenied, errs.KindNotFound:
			s.errorPage(w, r, http.StatusForbidden, i18n.ErrorTitle, i18n.RecoverAccountBlocked)
		case errs.KindInvalid:
			// accounts refused a password these pages accepted: the ticket
			// is spent, so the person asks for a new link.
			s.recoverInvalid(w, r, http.StatusBadRequest, i18n.RecoverExpiredLink)
		default:
			s.failure(w, r, "set password", err)
		}
		return
	}
	// accounts signed the user out of every browser; whoever this browser
	// was signed in as, it now starts afresh.
	s.cookies.Clear(w, cookie.Session)
	s.render(w, r, http.StatusOK, "recover_message", &render.View{Title: l.T(i18n.RecoverDoneTitle), Page: recoverMessageView{
		Message: l.T(i18n.RecoverDoneBody), LinkURL: s.path("login"), LinkText: l.T(i18n.RecoverDoneSignIn), Primary: true,
	}})
}

// renderRecoverPassword shows the form choosing the new password.
func (s *Service) renderRecoverPassword(w http.ResponseWriter, r *http.Request, status int, ticket string, fieldErrs map[string]string, formErr string) {
	l := s.localizer(r)
	v := recoverPasswordView{
		Action: s.path("recover/" + ticket),
		Password: render.Field{
			ID: "password", Name: "password", Type: "password", Label: l.T(i18n.FieldNewPassword), Hint: l.T(i18n.FieldNewPasswordHint),
			Autocomplete: "new-password", Error: fieldErrs["password"], Required: true,
		},
		Confirm: render.Field{
			ID: "password_confirm", Name: "password_confirm", Type: "password", Label: l.T(i18n.FieldConfirmPassword),
			Autocomplete: "new-password", Error: fieldErrs["password_confirm"], Required: true,
		},
	}
	render.FocusFirst(&v.Password, &v.Confirm)
	s.render(w, r, status, "recover_password", &render.View{
		Title: l.T(i18n.RecoverChooseTitle), CSRF: s.csrf.Token(w, r, "recover-password"), Error: formErr, Page: v,
	})
}
