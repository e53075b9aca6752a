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

// The deactivation page: after the password and a confirmation, the account
// is deactivated, its applications' sessions ended and this browser signed
// out. The password attempts count against the per-account sign-in limit.

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
	// A wrong password counts against the account, as at sign-in.
	limit, err := s.take(w, r, ratelimit.Key{Rule: s.rules.LoginPerAccount, Subject: who.user.GetUsername()})
	if err != nil {
		s.failure(w, r, "rate limit password check", err)
		return
	}
	if !limit.Allowed {
		s.showDeactivate(w, r, http.StatusTooManyRequests, who, l.T(i18n.LoginRateLimited), "", confirm)
		return
	}
	ctx := s.asUser(r.Context(), who)
	if _, err := s.accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: who.user.GetUsername(), Password: password, SecondFactorCapable: true}); err != nil {
		switch errs.KindOf(err) {
		case errs.KindUnauthenticated, errs.KindNotFound, errs.KindInvalid:
			s.showDeactivate(w, r, http.StatusUnauthorized, who, l.T(i18n.AccountPasswordWrong), "", confirm)
		default:
			s.limiter.Refund(r.Context(), limit)
			s.failure(w, r, "verify password", err)
		}
		return
	}
	s.limiter.Refund(r.Context(), limit)
	// The applications' sessions are the token service's, and a deactivated
	// account keeps none: end them while this browser still acts for the
	// person (accounts ends the browser sessions when it deactivates).
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
	if _, err := s.accounts.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: who.user.GetId()}); err != nil {
		s.failure(w, r, "deactivate user", err)
		return
	}
	s.cookies.Clear(w, cookie.Session)
	s.cookies.Clear(w, cookie.AddEmail)
	s.cookies.Drop(r, cookie.Session)
	s.render(w, r, http.StatusOK, "account", &render.View{Title: l.T(i18n.AccountDeactivatedTitle), Page: &accountView{Section: sectionDeactivated}})
}
