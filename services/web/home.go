package web

import (
	"net/http"

	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// homeView is the data of the start page.
type homeView struct {
	SignOutAction string
	SignOutCSRF   string
	SignInURL     string
	RegisterURL   string
}

// handleHome is the start page: who is signed in, with a way to sign out,
// or ways to sign in. Account management comes later.
func (s *Service) handleHome(w http.ResponseWriter, r *http.Request) {
	who, err := s.currentUser(w, r)
	if err != nil {
		s.failure(w, r, "authenticate browser session", err)
		return
	}
	l := s.localizer(r)
	v := &render.View{Title: l.T(i18n.HomeTitle)}
	if who != nil {
		v.User = who.user
		v.Page = homeView{SignOutAction: s.path("logout"), SignOutCSRF: s.csrf.Token(w, r, "logout")}
	} else {
		v.Page = homeView{SignInURL: s.path("login"), RegisterURL: s.path("register")}
	}
	s.render(w, r, http.StatusOK, "home", v)
}
