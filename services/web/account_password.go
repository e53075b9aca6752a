package web

import (
	"net/http"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ratelimit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// The password page: change it, optionally signing out the other browsers.
// It asks for the current password; the attempts count against the same
// per-account limit as signing in (as on the deactivation page).

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
	// A wrong current password counts against the account, as at sign-in.
	limit, err := s.take(w, r, ratelimit.Key{Rule: s.rules.LoginPerAccount, Subject: who.user.GetUsername()})
	if err != nil {
		s.failure(w, r, "rate limit password check", err)
		return
	}
	if !limit.Allowed {
		s.showPassword(w, r, http.StatusTooManyRequests, who, passwordErrors{form: l.T(i18n.LoginRateLimited)}, signOutOthers, "")
		return
	}
	ctx := s.asUser(r.Context(), who)
	_, err = s.accounts.ChangePassword(ctx, &accountsv1.ChangePasswordRequest{
		UserId: who.user.GetId(), CurrentPassword: current, NewPassword: next,
	})
	if errs.KindOf(err) != errs.KindUnauthenticated {
		s.limiter.Refund(r.Context(), limit)
	}
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
	ctx := s.asUser(r.Context(), who)
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
