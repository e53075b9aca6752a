package web

import (
	"net/http"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ratelimit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// The password page (change it, optionally signing out the other browsers)
// and the deactivation page. Both ask for the current password; the attempts
// count against the same per-account limit as signing in.

// passwordView is the data of the password page.
type passwordView struct {
	Action string
	// Username is a hidden field for password managers, so they know whose
	// password changes.
	Username      string
	Current       render.Field
	New           render.Field
	Confirm       render.Field
	SignOutOthers bool
	HasPassword   bool
}

// passwordErrors are the password form's messages.
type passwordErrors struct{ current, next, confirm, form string }

func (s *Service) handlePasswordGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.showPassword(w, r, http.StatusOK, who, passwordErrors{}, true, s.doneNotice(r))
}

func (s *Service) showPassword(w http.ResponseWriter, r *http.Request, status int, who *signedIn, e passwordErrors, signOutOthers bool, notice string) {
	l := s.localizer(r)
	v := &passwordView{
		Action:      s.path("account/password"),
		Username:    who.user.GetUsername(),
		HasPassword: who.user.GetHasPassword(),
		Current: render.Field{
			ID: "current_password", Name: "current_password", Type: "password", Label: l.T(i18n.AccountPasswordCurrent),
			Autocomplete: "current-password", Error: e.current, Required: true,
		},
		New: render.Field{
			ID: "new_password", Name: "new_password", Type: "password", Label: l.T(i18n.AccountPasswordNew),
			Hint: l.T(i18n.FieldNewPasswordHint), Autocomplete: "new-password", Error: e.next, Required: true,
		},
		Confirm: render.Field{
			ID: "new_password_confirm", Name: "new_password_confirm", Type: "password", Label: l.T(i18n.AccountPasswordConfirm),
			Autocomplete: "new-password", Error: e.confirm, Required: true,
		},
		SignOutOthers: signOutOthers,
	}
	render.FocusFirst(&v.Current, &v.New, &v.Confirm)
	if status == http.StatusOK {
		v.Current.Autofocus = false // do not jump into the form when the page is only visited
	}
	s.renderAccount(w, r, status, who, l.T(i18n.AccountPasswordTitle), &accountView{Section: sectionPassword, Password: v}, notice, e.form)
}

// handlePasswordPost changes the password, and signs the other browsers out
// when asked.
func (s *Service) handlePasswordPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-"+sectionPassword) {
		return
	}
	l := s.localizer(r)
	current := r.PostFormValue("current_password")
	next := r.PostFormValue("new_password")
	confirm := r.PostFormValue("new_password_confirm")
	signOutOthers := r.PostFormValue("sign_out_others") == "on"
	var e passwordErrors
	if current == "" {
		e.current = l.T(i18n.LoginPasswordNone)
	}
	if id := s.passwords.Check(next, who.user.GetUsername()); id != "" {
		e.next = l.T(id)
	} else if confirm != next {
		e.confirm = l.T(i18n.RegisterConfirmWrong)
	}
	if e != (passwordErrors{}) {
		s.showPassword(w, r, http.StatusBadRequest, who, e, signOutOthers, "")
		return
	}
	if ok, wait := s.limits.Allow(s.now(), ratelimit.Key{Rule: s.loginPerAccount, Subject: who.user.GetUsername()}); !ok {
		retryAfter(w, wait)
		s.showPassword(w, r, http.StatusTooManyRequests, who, passwordErrors{form: l.T(i18n.LoginRateLimited)}, signOutOthers, "")
		return
	}
	ctx := s.asUser(r.Context(), who.user.GetId())
	_, err := s.accounts.ChangePassword(ctx, &accountsv1.ChangePasswordRequest{
		UserId: who.user.GetId(), CurrentPassword: current, NewPassword: next,
	})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindUnauthenticated:
			s.showPassword(w, r, http.StatusUnauthorized, who, passwordErrors{current: l.T(i18n.AccountPasswordWrong)}, signOutOthers, "")
		case errs.KindInvalid:
			// The accounts service's own policy (length, valid text).
			s.showPassword(w, r, http.StatusBadRequest, who, passwordErrors{next: errs.PublicMessage(err)}, signOutOthers, "")
		default:
			s.failure(w, r, "change password", err)
		}
		return
	}
	if !signOutOthers {
		s.done(w, r, "account/password", "password")
		return
	}
	if err := s.endOtherBrowsers(r, who); err != nil {
		// The password did change; say what did not happen.
		s.logger.WarnContext(r.Context(), "sign out other browsers", "err", err)
		s.showPassword(w, r, http.StatusServiceUnavailable, who, passwordErrors{form: l.T(i18n.AccountPasswordSignOutFailed)}, true, "")
		return
	}
	s.done(w, r, "account/password", "password_signout")
}

// endOtherBrowsers ends every live browser session of the user except this one.
func (s *Service) endOtherBrowsers(r *http.Request, who *signedIn) error {
	ctx := s.asUser(r.Context(), who.user.GetId())
	list, err := s.accounts.ListBrowserSessions(ctx, &accountsv1.ListBrowserSessionsRequest{UserId: who.user.GetId()})
	if err != nil {
		return err
	}
	for _, bs := range list.GetSessions() {
		if bs.GetSessionId() == who.session.GetSessionId() || bs.GetEndedAt() != nil {
			continue
		}
		_, err := s.accounts.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: bs.GetSessionId(), UserId: who.user.GetId()})
		if err != nil && errs.KindOf(err) != errs.KindNotFound {
			return err
		}
	}
	return nil
}

// deactivateView is the data of the deactivation page.
type deactivateView struct {
	Action   string
	Username string
	Password render.Field
	Confirm  bool
	// ConfirmError is the message next to the confirmation checkbox.
	ConfirmError string
	CancelURL    string
}

func (s *Service) handleDeactivateGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.showDeactivate(w, r, http.StatusOK, who, "", "", false)
}

func (s *Service) showDeactivate(w http.ResponseWriter, r *http.Request, status int, who *signedIn, passwordErr, confirmErr string, confirm bool) {
	l := s.localizer(r)
	v := &deactivateView{
		Action:   s.path("account/deactivate"),
		Username: who.user.GetUsername(),
		Password: render.Field{
			ID: "password", Name: "password", Type: "password", Label: l.T(i18n.AccountDeactivatePassword),
			Autocomplete: "current-password", Error: passwordErr, Required: true, Autofocus: passwordErr != "",
		},
		Confirm:      confirm,
		ConfirmError: confirmErr,
		CancelURL:    s.path("account"),
	}
	s.renderAccount(w, r, status, who, l.T(i18n.AccountDeactivateTitle), &accountView{Section: sectionDeactivate, Deactivate: v}, "", "")
}

// handleDeactivatePost checks the password, deactivates the account, ends its
// applications' sessions and signs this browser out.
func (s *Service) handleDeactivatePost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-"+sectionDeactivate) {
		return
	}
	l := s.localizer(r)
	password := r.PostFormValue("password")
	confirm := r.PostFormValue("confirm") == "on"
	var passwordErr, confirmErr string
	if password == "" {
		passwordErr = l.T(i18n.LoginPasswordNone)
	}
	if !confirm {
		confirmErr = l.T(i18n.AccountDeactivateConfirmNone)
	}
	if passwordErr != "" || confirmErr != "" {
		s.showDeactivate(w, r, http.StatusBadRequest, who, passwordErr, confirmErr, confirm)
		return
	}
	if ok, wait := s.limits.Allow(s.now(), ratelimit.Key{Rule: s.loginPerAccount, Subject: who.user.GetUsername()}); !ok {
		retryAfter(w, wait)
		s.showDeactivate(w, r, http.StatusTooManyRequests, who, l.T(i18n.LoginRateLimited), "", confirm)
		return
	}
	ctx := s.asUser(r.Context(), who.user.GetId())
	if _, err := s.accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: who.user.GetUsername(), Password: password}); err != nil {
		switch errs.KindOf(err) {
		case errs.KindUnauthenticated, errs.KindNotFound, errs.KindInvalid:
			s.showDeactivate(w, r, http.StatusUnauthorized, who, l.T(i18n.AccountPasswordWrong), "", confirm)
		default:
			s.failure(w, r, "verify password", err)
		}
		return
	}
	if _, err := s.accounts.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: who.user.GetId()}); err != nil {
		s.failure(w, r, "deactivate user", err)
		return
	}
	// accounts ended the browser sessions; the applications' sessions are the
	// token service's, and a deactivated account keeps none.
	if s.token != nil {
		if list, err := s.token.ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: who.user.GetId()}); err != nil {
			s.logger.WarnContext(r.Context(), "list sessions of a deactivated user", "err", err)
		} else {
			for _, ts := range list.GetSessions() {
				if _, err := s.token.EndSession(ctx, &tokenv1.EndSessionRequest{SessionId: ts.GetSessionId(), Reason: "account deactivated"}); err != nil {
					s.logger.WarnContext(r.Context(), "end session of a deactivated user", "session", ts.GetSessionId(), "err", err)
				}
			}
		}
	}
	s.cookies.Clear(w, cookie.Session)
	s.cookies.Clear(w, cookie.AddEmail)
	s.cookies.Drop(r, cookie.Session)
	s.render(w, r, http.StatusOK, "account", &render.View{Title: l.T(i18n.AccountDeactivatedTitle), Page: &accountView{Section: sectionDeactivated}})
}
