package web

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"gatehouse.dev/platform/errs"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
	"gatehouse.dev/services/web/internal/ssostate"
)

// Matrix SSO for clients of the old login API (MSC3824).
//
// A client that only knows /_matrix/client/*/login sees the m.login.sso flow
// (the token service advertises it) and sends the browser to
// GET /_matrix/client/{r0,v3}/login/sso/redirect[/{idp}]?redirectUrl=… .
// This service:
//
//  1. checks redirectUrl (an absolute http or https URL with an ASCII host and
//     no user info, at most ssostate.MaxRedirectURL bytes), signs the request
//     into an id (package ssostate) and sends the browser to
//     /complete-compat-sso/<id>;
//  2. there, a browser that is not signed in goes to /login (or /register,
//     for action=register) with next=/complete-compat-sso/<id>, and comes back
//     once signed in;
//  3. the page asks "Continue to <host>?", showing who is signed in and the
//     host the login token will be given to. Without this step any page could
//     send a signed-in browser to the redirect endpoint with its own
//     redirectUrl and silently receive a login token for the account;
//  4. Continue asks token.CreateLoginToken for the user (single use, 30 s)
//     and redirects (303) to redirectUrl with loginToken=<token> added to its
//     query; the client then signs in with m.login.token. Cancel gives the
//     client nothing.
//
// Nothing is stored: the id is the request itself, signed with a key derived
// from web.secret (see package ssostate), so any replica sharing the secret
// can check an id, also after a restart. An id whose MAC does not match, that
// is malformed or that has expired shows the "not valid or has expired" page.
//
// An id is not single use: with no shared record of answers, it can be
// answered again until it expires. Answering needs the browser's session
// cookie and a CSRF token of its confirmation page, so only the same
// signed-in browser can do it, and each Continue mints another login token
// for the same user to the same redirect URL — what that browser would get by
// starting the sign-in again from the client. Each login token stays single
// use and valid 30 s (the token service enforces that). Cancel likewise only
// gives the client nothing this time.
//
// The id in the path is not bound to the browser: whoever has it sees the
// same confirmation, which names the destination, so it grants nothing that
// the redirect endpoint itself would not.

// ssoAction reads action (or its unstable name): "register" asks to create an
// account, anything else is a sign-in.
func ssoAction(q url.Values) bool {
	a := q.Get("action")
	if a == "" {
		a = q.Get("org.matrix.msc3824.action")
	}
	return a == "register"
}

// handleSSORedirect is /_matrix/client/{r0,v3}/login/sso/redirect[/{idp}].
func (s *Service) handleSSORedirect(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	raw := q.Get("redirectUrl")
	if _, ok := ssostate.RedirectURL(raw); !ok {
		s.grantError(w, r, http.StatusBadRequest, i18n.SSOBadRedirect)
		return
	}
	id := ssostate.Sign(s.keys.SSO, raw, ssoAction(q), s.now().Add(ssostate.TTL))
	if safeNext(s.ssoNext(id)) == "" {
		// Too long to come back to after signing in (a long public URL path).
		s.grantError(w, r, http.StatusBadRequest, i18n.SSOBadRedirect)
		return
	}
	s.redirect(w, r, "complete-compat-sso/"+id, nil)
}

// ssoView is the data of the confirmation page.
type ssoView struct {
	Action string
	// Host is where the login token goes: the redirect URL's host (and port).
	Host string
	// Insecure warns of plain http to another machine (native clients
	// listening on loopback use http, and that is fine).
	Insecure      bool
	SignOutAction string
	SignOutCSRF   string
}

// ssoNext is where sign-in and registration come back to.
func (s *Service) ssoNext(id string) string { return s.path("complete-compat-sso/" + id) }

// pendingSSO checks the page's id and returns its request, or shows that it
// is not valid or has expired and reports false.
func (s *Service) pendingSSO(w http.ResponseWriter, r *http.Request) (string, *ssostate.Request, bool) {
	id := r.PathValue("id")
	req, ok := ssostate.Parse(s.keys.SSO, id, s.now())
	if !ok {
		s.grantError(w, r, http.StatusNotFound, i18n.ErrorGrantUnknown)
		return "", nil, false
	}
	return id, req, true
}

// signInForSSO is where a browser that is not signed in signs in (or up),
// and the query that brings it back to the confirmation.
func (s *Service) signInForSSO(id string, req *ssostate.Request) (page string, back url.Values) {
	page = "login"
	if req.Register {
		page = "register"
	}
	return page, url.Values{"next": {s.ssoNext(id)}}
}

func (s *Service) handleSSOGet(w http.ResponseWriter, r *http.Request) {
	id, req, ok := s.pendingSSO(w, r)
	if !ok {
		return
	}
	page, back := s.signInForSSO(id, req)
	who, ok := s.requireUser(w, r, page, back)
	if !ok {
		return
	}
	l := s.localizer(r)
	v := ssoView{
		Action:        s.ssoNext(id),
		Host:          req.Redirect.Host,
		Insecure:      strings.EqualFold(req.Redirect.Scheme, "http") && !isLoopback(req.Redirect.Hostname()),
		SignOutAction: s.path("logout") + "?" + url.Values{"next": {s.ssoNext(id)}}.Encode(),
		SignOutCSRF:   s.csrf.Token(w, r, "logout"),
	}
	// Continue redirects to the client, which form-action 'self' would block.
	w.Header().Set("Content-Security-Policy", cspConsent)
	s.render(w, r, http.StatusOK, "sso", &render.View{Title: l.T(i18n.SSOTitle, v.Host), User: who.user, CSRF: s.csrf.Token(w, r, "sso"), Page: v})
}

func (s *Service) handleSSOPost(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	id, req, ok := s.pendingSSO(w, r)
	if !ok {
		return
	}
	page, back := s.signInForSSO(id, req)
	who, ok := s.requireUser(w, r, page, back)
	if !ok {
		return
	}
	if !s.csrf.Check(r, "sso") {
		// Show the page again with a fresh token; nothing was decided.
		http.Redirect(w, r, s.ssoNext(id), http.StatusSeeOther)
		return
	}
	l := s.localizer(r)
	action := r.PostFormValue("action")
	if action != "continue" && action != "cancel" {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	if action == "cancel" {
		s.render(w, r, http.StatusOK, "sso_message", &render.View{Title: l.T(i18n.SSOCancelledTitle), Page: l.T(i18n.SSOCancelledBody, req.Redirect.Host)})
		return
	}
	if s.token == nil {
		s.failure(w, r, "create login token", errs.Unavailable("no token service"))
		return
	}
	resp, err := s.token.CreateLoginToken(s.asUser(r.Context(), who), &tokenv1.CreateLoginTokenRequest{})
	if err != nil {
		s.failure(w, r, "create login token", err)
		return
	}
	http.Redirect(w, r, withLoginToken(req.Redirect, resp.GetLoginToken()), http.StatusSeeOther)
}

// isLoopback reports whether a host name is this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// withLoginToken adds loginToken to a redirect URL's query, keeping the rest
// of the query as the client wrote it (a loginToken already there is replaced).
func withLoginToken(u *url.URL, token string) string {
	out := *u
	if q := out.Query(); q.Has("loginToken") {
		q.Set("loginToken", token)
		out.RawQuery = q.Encode()
	} else if out.RawQuery == "" {
		out.RawQuery = "loginToken=" + url.QueryEscape(token)
	} else {
		out.RawQuery += "&loginToken=" + url.QueryEscape(token)
	}
	out.ForceQuery = false
	return out.String()
}
