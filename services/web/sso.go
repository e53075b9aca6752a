package web

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"gatehouse.dev/platform/errs"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// Matrix SSO for clients of the old login API (MSC3824).
//
// A client that only knows /_matrix/client/*/login sees the m.login.sso flow
// (the token service advertises it) and sends the browser to
// GET /_matrix/client/{r0,v3}/login/sso/redirect[/{idp}]?redirectUrl=… .
// This service:
//
//  1. checks redirectUrl (an absolute http or https URL with an ASCII host and
//     no user info), keeps the request (ssoStore) under a random id and sends
//     the browser to /complete-compat-sso/<id>;
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
// Requests are kept in this process's memory for ssoTTL, at most maxSSO of
// them: like pending registrations they are per replica, so the confirmation
// must reach the replica that received the redirect (sticky sessions), and a
// restart loses the requests in progress (the person starts again in the
// client). An id works once: Continue or Cancel removes it.
//
// The id in the path is not bound to the browser: whoever has it sees the
// same confirmation, which names the destination, so it grants nothing that
// the redirect endpoint itself would not.
const (
	ssoTTL            = 10 * time.Minute
	maxSSO            = 10000
	maxSSORedirectURL = 2048
)

// ssoRequest is a pending compat SSO sign-in.
type ssoRequest struct {
	redirect *url.URL
	register bool
	expires  time.Time
}

type ssoStore struct {
	mu sync.Mutex
	m  map[string]*ssoRequest
}

func newSSOStore() *ssoStore { return &ssoStore{m: map[string]*ssoRequest{}} }

var errSSOFull = errors.New("too many pending SSO sign-ins")

// add keeps a request and returns its id.
func (st *ssoStore) add(req *ssoRequest, now time.Time) (string, error) {
	id := randomToken(16)
	req.expires = now.Add(ssoTTL)
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.m) >= maxSSO {
		st.sweepLocked(now)
		if len(st.m) >= maxSSO {
			return "", errSSOFull
		}
	}
	st.m[id] = req
	return id, nil
}

// get returns the request of an id while it is pending.
func (st *ssoStore) get(id string, now time.Time) (*ssoRequest, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	req, ok := st.m[id]
	if !ok || !now.Before(req.expires) {
		return nil, false
	}
	return req, true
}

// take returns the request of an id and forgets it: only one answer counts.
func (st *ssoStore) take(id string, now time.Time) (*ssoRequest, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	req, ok := st.m[id]
	delete(st.m, id)
	if !ok || !now.Before(req.expires) {
		return nil, false
	}
	return req, true
}

func (st *ssoStore) sweep(now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(now)
}

func (st *ssoStore) sweepLocked(now time.Time) {
	for id, req := range st.m {
		if !now.Before(req.expires) {
			delete(st.m, id)
		}
	}
}

// registerSSO adds the compat SSO pages to the public mux. The redirect
// endpoints are literal paths per version, more specific than the token
// service's /_matrix/client/{version}/login (and of other paths, so nothing
// overlaps); only r0 and v3 exist in the Matrix specification.
func (s *Service) registerSSO(mux *http.ServeMux) {
	for _, v := range []string{"r0", "v3"} {
		prefix := "/_matrix/client/" + v + "/login/sso/redirect"
		mux.Handle(prefix, s.page(s.handleSSORedirect, nil))
		// "/" and "/{idp}": there are no upstream identity providers, so
		// every idp means the same sign-in.
		mux.Handle(prefix+"/", s.page(s.handleSSORedirect, nil))
	}
	mux.Handle("/complete-compat-sso/{id}", s.page(s.handleSSOGet, s.handleSSOPost))
}

// ssoRedirectURL checks a client's redirectUrl: an absolute http or https
// URL with a host of printable ASCII (so that the host shown on the
// confirmation page is the one the token goes to: no look-alike Unicode) and
// no user info (https://trusted.example@evil.example/).
func ssoRedirectURL(raw string) (*url.URL, bool) {
	if raw == "" || len(raw) > maxSSORedirectURL {
		return nil, false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f || raw[i] == '\\' {
			return nil, false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Hostname() == "" {
		return nil, false
	}
	if scheme := strings.ToLower(u.Scheme); scheme != "http" && scheme != "https" {
		return nil, false
	}
	return u, true
}

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
	target, ok := ssoRedirectURL(q.Get("redirectUrl"))
	if !ok {
		s.grantError(w, r, http.StatusBadRequest, msgSSOBadRedirect)
		return
	}
	id, err := s.sso.add(&ssoRequest{redirect: target, register: ssoAction(q)}, s.now())
	if err != nil {
		s.errorPage(w, r, http.StatusServiceUnavailable, msgErrTitle, msgErrUnavailable)
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

// pendingSSO finds the request of the page's id, or shows that it has
// expired and reports false.
func (s *Service) pendingSSO(w http.ResponseWriter, r *http.Request) (string, *ssoRequest, bool) {
	id := r.PathValue("id")
	req, ok := s.sso.get(id, s.now())
	if !ok {
		s.grantError(w, r, http.StatusNotFound, msgErrGrantUnknown)
		return "", nil, false
	}
	return id, req, true
}

// signInForSSO sends a browser that is not signed in to sign in (or up) and
// come back.
func (s *Service) signInForSSO(w http.ResponseWriter, r *http.Request, id string, req *ssoRequest) {
	page := "login"
	if req.register {
		page = "register"
	}
	s.redirect(w, r, page, url.Values{"next": {s.ssoNext(id)}})
}

func (s *Service) handleSSOGet(w http.ResponseWriter, r *http.Request) {
	id, req, ok := s.pendingSSO(w, r)
	if !ok {
		return
	}
	who, err := s.currentUser(w, r)
	if err != nil {
		s.failure(w, r, "authenticate browser session", err)
		return
	}
	if who == nil {
		s.signInForSSO(w, r, id, req)
		return
	}
	l := s.localizer(r)
	v := ssoView{
		Action:        s.ssoNext(id),
		Host:          req.redirect.Host,
		Insecure:      strings.EqualFold(req.redirect.Scheme, "http") && !isLoopback(req.redirect.Hostname()),
		SignOutAction: s.path("logout") + "?" + url.Values{"next": {s.ssoNext(id)}}.Encode(),
		SignOutCSRF:   s.csrfToken(w, r, "logout"),
	}
	// Continue redirects to the client, which form-action 'self' would block.
	w.Header().Set("Content-Security-Policy", cspConsent)
	s.render(w, r, http.StatusOK, "sso", &view{Title: l.T(msgSSOTitle, v.Host), User: who.user, CSRF: s.csrfToken(w, r, "sso"), Page: v})
}

func (s *Service) handleSSOPost(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, msgErrTitle, msgErrBadRequest)
		return
	}
	id, req, ok := s.pendingSSO(w, r)
	if !ok {
		return
	}
	who, err := s.currentUser(w, r)
	if err != nil {
		s.failure(w, r, "authenticate browser session", err)
		return
	}
	if who == nil {
		s.signInForSSO(w, r, id, req)
		return
	}
	if !s.checkCSRF(r, "sso") {
		// Show the page again with a fresh token; nothing was decided.
		http.Redirect(w, r, s.ssoNext(id), http.StatusSeeOther)
		return
	}
	l := s.localizer(r)
	action := r.PostFormValue("action")
	if action != "continue" && action != "cancel" {
		s.errorPage(w, r, http.StatusBadRequest, msgErrTitle, msgErrBadRequest)
		return
	}
	if req, ok = s.sso.take(id, s.now()); !ok {
		s.grantError(w, r, http.StatusConflict, msgErrGrantAnswered)
		return
	}
	if action == "cancel" {
		s.render(w, r, http.StatusOK, "sso_message", &view{Title: l.T(msgSSOCancelledTitle), Page: l.T(msgSSOCancelledBody, req.redirect.Host)})
		return
	}
	if s.token == nil {
		s.failure(w, r, "create login token", errs.Unavailable("no token service"))
		return
	}
	resp, err := s.token.CreateLoginToken(s.asUser(r.Context(), who.user.GetId()), &tokenv1.CreateLoginTokenRequest{
		UserId: who.user.GetId(), Username: who.user.GetUsername(), Admin: who.user.GetAdmin(),
	})
	if err != nil {
		s.failure(w, r, "create login token", err)
		return
	}
	http.Redirect(w, r, withLoginToken(req.redirect, resp.GetLoginToken()), http.StatusSeeOther)
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
