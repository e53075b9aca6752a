package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"net/url"
	"strings"
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
//     no user info, at most maxSSORedirectURL bytes), signs the request into
//     an id (see ssoState) and sends the browser to /complete-compat-sso/<id>;
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
// Nothing is stored: the id is the request itself, base64url(payload) + "." +
// base64url(HMAC-SHA256(ssoKey, payload)), where the payload holds the
// redirect URL, the register flag and the expiry (ssoTTL after the redirect).
// ssoKey is derived from web.secret, so any replica sharing the secret can
// check an id, also after a restart. An id whose MAC does not match, that is
// malformed or that has expired shows the "not valid or has expired" page.
// The payload is signed, not encrypted: the id shows the redirect URL, as the
// client's own redirect did.
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
const (
	ssoTTL = 10 * time.Minute
	// maxSSORedirectURL bounds redirectUrl so that the id carrying it (about
	// 4/3 of its length plus 58 bytes) fits, with the path before it, in the
	// next parameter of sign-in (safeNext: at most 2048 bytes).
	maxSSORedirectURL = 1280
	// ssoVersion is the first byte of a payload.
	ssoVersion = 1
	// ssoHeaderLen is the payload's version, flags and expiry before the URL.
	ssoHeaderLen = 1 + 1 + 8
	// ssoRegister is the flag of action=register.
	ssoRegister = 1
)

// ssoEncoding encodes the parts of an id; Strict refuses other spellings of
// the same bytes.
var ssoEncoding = base64.RawURLEncoding.Strict()

// ssoRequest is a pending compat SSO sign-in.
type ssoRequest struct {
	redirect *url.URL
	register bool
	expires  time.Time
}

// ssoState signs a request into the id of its confirmation page: redirect is
// the redirectUrl as the client sent it (checked by ssoRedirectURL), register
// its action, expires the end of the request. The payload is a version byte,
// a flags byte (ssoRegister), the expiry in unix seconds (8 bytes,
// big-endian) and the redirect URL.
func ssoState(key []byte, redirect string, register bool, expires time.Time) string {
	var flags byte
	if register {
		flags |= ssoRegister
	}
	payload := make([]byte, 0, ssoHeaderLen+len(redirect))
	payload = append(payload, ssoVersion, flags)
	payload = binary.BigEndian.AppendUint64(payload, uint64(expires.Unix()))
	payload = append(payload, redirect...)
	return ssoEncoding.EncodeToString(payload) + "." + ssoEncoding.EncodeToString(ssoMAC(key, payload))
}

// ssoMAC is the HMAC-SHA256 of a payload.
func ssoMAC(key, payload []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(payload)
	return mac.Sum(nil)
}

// maxSSOID bounds the id parsed: the encoded payload of the longest redirect
// URL, the dot and the encoded MAC.
var maxSSOID = ssoEncoding.EncodedLen(ssoHeaderLen+maxSSORedirectURL) + 1 + ssoEncoding.EncodedLen(sha256.Size)

// parseSSOState returns the request an id signed with key holds, or false if
// the id is malformed, its MAC does not match or it has expired at now.
func parseSSOState(key []byte, id string, now time.Time) (*ssoRequest, bool) {
	if len(id) > maxSSOID {
		return nil, false
	}
	enc, encMAC, ok := strings.Cut(id, ".")
	if !ok {
		return nil, false
	}
	payload, err := ssoEncoding.DecodeString(enc)
	if err != nil {
		return nil, false
	}
	got, err := ssoEncoding.DecodeString(encMAC)
	if err != nil || !hmac.Equal(got, ssoMAC(key, payload)) {
		return nil, false
	}
	if len(payload) < ssoHeaderLen || payload[0] != ssoVersion || payload[1]&^ssoRegister != 0 {
		return nil, false
	}
	expires := time.Unix(int64(binary.BigEndian.Uint64(payload[2:ssoHeaderLen])), 0)
	if !now.Before(expires) {
		return nil, false
	}
	// Checked before it was signed; parsed again the same way.
	target, ok := ssoRedirectURL(string(payload[ssoHeaderLen:]))
	if !ok {
		return nil, false
	}
	return &ssoRequest{redirect: target, register: payload[1]&ssoRegister != 0, expires: expires}, true
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
	raw := q.Get("redirectUrl")
	if _, ok := ssoRedirectURL(raw); !ok {
		s.grantError(w, r, http.StatusBadRequest, msgSSOBadRedirect)
		return
	}
	id := ssoState(s.ssoKey, raw, ssoAction(q), s.now().Add(ssoTTL))
	if safeNext(s.ssoNext(id)) == "" {
		// Too long to come back to after signing in (a long public URL path).
		s.grantError(w, r, http.StatusBadRequest, msgSSOBadRedirect)
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
func (s *Service) pendingSSO(w http.ResponseWriter, r *http.Request) (string, *ssoRequest, bool) {
	id := r.PathValue("id")
	req, ok := parseSSOState(s.ssoKey, id, s.now())
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
	if action == "cancel" {
		s.render(w, r, http.StatusOK, "sso_message", &view{Title: l.T(msgSSOCancelledTitle), Page: l.T(msgSSOCancelledBody, req.redirect.Host)})
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
