package web

import (
	"net/http"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
)

// handleLogoutPost ends the browser session and clears its cookie. A sign-out
// in the middle of a sign-in ("Not you?") goes back to the sign-in page of
// the same request.
func (s *Service) handleLogoutPost(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	if !s.csrf.Check(r, "logout") {
		s.errorPage(w, r, http.StatusForbidden, i18n.ErrorTitle, i18n.ErrorFormExpired)
		return
	}
	who, err := s.currentUser(w, r)
	if err != nil {
		s.failure(w, r, "authenticate browser session", err)
		return
	}
	if who != nil {
		_, err := s.accounts.EndBrowserSession(s.asUser(r.Context(), who), &accountsv1.EndBrowserSessionRequest{
			SessionId: who.session.GetSessionId(), UserId: who.user.GetId(),
		})
		if err != nil {
			s.failure(w, r, "end browser session", err)
			return
		}
	}
	s.cookies.Clear(w, cookie.Session)
	if f.grant != "" || f.device != "" || f.next != "" {
		s.redirect(w, r, "login", f.query())
		return
	}
	s.redirect(w, r, "", nil)
}
