package web

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/httpx"
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
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		// Every 503 says when to come back, as the error edge's do.
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(httpx.DefaultRetryAfter.Seconds()))))
	}
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
// another service (httpx.WritePageError): unavailable (503) when it may pass,
// internal (500) otherwise — a refusal the page did not expect is this
// service's fault, not the browser's — logged with its cause.
func (s *Service) failure(w http.ResponseWriter, r *http.Request, what string, err error) {
	// A sensitive action without a recent authentication: confirm it is
	// the person (account_security.go), then back to the page.
	if back, ok := r.Context().Value(returnPageKey{}).(string); ok {
		if v, _ := errs.FactOf(err, errs.FactStepUp); v == "required" {
			http.Redirect(w, r, s.path("account/confirm")+"?"+url.Values{"next": {back}}.Encode(), http.StatusSeeOther)
			return
		}
	}
	switch kind := errs.KindOf(err); {
	case kind == errs.KindRateLimited:
		err = errs.Wrap(errs.KindUnavailable, "", err)
	case !kind.ServerFault():
		err = errs.Internalf("%w", err)
	}
	httpx.WritePageError(w, r, s.logger, fmt.Errorf("%s: %w", what, err), func(w http.ResponseWriter, r *http.Request, status int, _ string) {
		message := i18n.ErrorInternal
		if status == http.StatusServiceUnavailable {
			message = i18n.ErrorUnavailable
		}
		s.errorPage(w, r, status, i18n.ErrorTitle, message)
	})
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
