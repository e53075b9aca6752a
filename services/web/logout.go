package web

import (
	"net/http"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// handleLogoutPost ends the browser session and clears its cookie. A sign-out
// in the middle of a sign-in ("Not you?") goes back to the sign-in page of
// the same request.
func (s *Service) handleLogoutPost(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, msgErrTitle, msgErrBadRequest)
		return
	}
	if !s.checkCSRF(r, "logout") {
		s.errorPage(w, r, http.StatusForbidden, msgErrTitle, msgErrFormExpired)
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
	s.clearCookie(w, sessionCookie)
	if f.grant != "" || f.device != "" || f.next != "" {
		s.redirect(w, r, "login", f.query())
		return
	}
	s.redirect(w, r, "", nil)
}
