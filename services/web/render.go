package web

import (
	"bytes"
	"net/http"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// Every page is written by render (package render parses the templates, by
// name); errors are shown on the error page, in the request's language.

// render writes a page with the given status.
func (s *Service) render(w http.ResponseWriter, r *http.Request, status int, name string, v *render.View) {
	l := s.localizer(r)
	// The page's language depends on Accept-Language: caches must know.
	w.Header().Add("Vary", "Accept-Language")
	v.Lang, v.ServiceName, v.Base, v.ServerName = l.Lang, s.cfg.ServiceName, s.base.Path, s.serverName()
	v.TermsURI, v.PolicyURI, v.LogoURI = s.cfg.TermsURI, s.cfg.PolicyURI, s.cfg.LogoURI
	if v.User != nil && v.UserID == "" {
		v.UserID = s.matrixID(v.User.GetUsername())
	}
	var buf bytes.Buffer
	if err := s.templates.Execute(&buf, l.Lang, name, v); err != nil {
		s.logger.ErrorContext(r.Context(), "render page", "page", name, "err", err)
		http.Error(w, l.T(i18n.ErrorInternal), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// localizer picks the language of a request from its Accept-Language header.
func (s *Service) localizer(r *http.Request) i18n.Localizer {
	if s.texts == nil {
		return i18n.Localizer{Lang: i18n.DefaultLanguage}
	}
	return s.texts.Match(r.Header.Get("Accept-Language"))
}

// errorView is the data of the error page.
type errorView struct {
	Message string
	// Back says to go back to the application (the page was part of a sign-in).
	Back bool
}

// errorPage shows an error in the layout.
func (s *Service) errorPage(w http.ResponseWriter, r *http.Request, status int, title, message i18n.ID, args ...any) {
	l := s.localizer(r)
	s.render(w, r, status, "error", &render.View{Title: l.T(title), Page: errorView{Message: l.T(message, args...)}})
}

// failure shows the error page for an unexpected failure of a call to
// another service: unavailable (503) or internal (500), logged with its cause.
func (s *Service) failure(w http.ResponseWriter, r *http.Request, what string, err error) {
	kind := errs.KindOf(err)
	if kind == errs.KindUnavailable || kind == errs.KindConflict || kind == errs.KindRateLimited {
		s.logger.WarnContext(r.Context(), what, "err", err)
		s.errorPage(w, r, http.StatusServiceUnavailable, i18n.ErrorTitle, i18n.ErrorUnavailable)
		return
	}
	s.logger.ErrorContext(r.Context(), what, "err", err)
	s.errorPage(w, r, http.StatusInternalServerError, i18n.ErrorTitle, i18n.ErrorInternal)
}

// serverName is the Matrix server name, or the public URL's host without one.
func (s *Service) serverName() string {
	if s.cfg.ServerName != "" {
		return s.cfg.ServerName
	}
	return s.base.Hostname()
}

// matrixID is the Matrix user ID of a username.
func (s *Service) matrixID(username string) string {
	if s.cfg.ServerName == "" {
		return "@" + username
	}
	return "@" + username + ":" + s.cfg.ServerName
}
