package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) for
// Gatehouse's own clients: GET or POST /oauth2/logout, discovery's
// end_session_endpoint.
//
//   - id_token_hint is checked by the token service (signed by this
//     deployment's keys, current or still published; an expired one is
//     accepted, as §2 advises, to identify the session). It names the client
//     (aud) and the browser session it was issued in (sid).
//   - client_id, when given with a hint, must be the hint's audience.
//   - post_logout_redirect_uri must be exactly one of the client's registered
//     post_logout_redirect_uris (client_id or the hint names the client);
//     anything else ends on a page here, never at the URI: no open redirect.
//     state is added to it.
//   - ui_locales picks the page's language before Accept-Language.
//   - The browser session ends at once when the hint's sid is the browser's
//     session and its subject the signed-in user: the client holds a token
//     of this very session. Otherwise — no hint, a hint that does not verify,
//     one from another or an ended session, or older than a browser session
//     may live — the page asks for confirmation. Nobody signed in: nothing
//     to end.
//
// It ends the browser session only: the client ends its own tokens with
// revocation (as MAS does, OAuth sessions outlive the browser's).

// hintMaxAge is how old an id_token_hint may be to end a session without
// asking: no browser session lives longer.
const hintMaxAge = 30 * 24 * time.Hour

// endSessionView is the data of the confirmation page.
type endSessionView struct {
	Action string
	Intro  string
	Fields []hiddenField
}

// endSessionRequest is a checked logout request.
type endSessionRequest struct {
	clientID, redirect, state, uiLocales string
	// hint is the verified id_token_hint, nil without one (or one that does not verify).
	hint *tokenv1.CheckIDTokenHintResponse
	// clientName names the client on the page.
	clientName string
}

// handleEndSession is GET and POST /oauth2/logout.
func (s *Service) handleEndSession(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
			return
		}
		params = r.PostForm
	}
	if ui := strings.Fields(truncate(params.Get("ui_locales"), 256)); len(ui) > 0 {
		r.Header.Set("Accept-Language", strings.Join(append(ui, r.Header.Get("Accept-Language")), ", "))
	}
	req, ok := s.checkEndSession(w, r, params)
	if !ok {
		return
	}
	who, err := s.currentUser(w, r)
	if err != nil {
		s.failure(w, r, "authenticate browser session", err)
		return
	}
	decision := params.Get("action")
	switch {
	case who == nil:
		s.endSessionDone(w, r, req, true)
		return
	case decision != "":
		if r.Method != http.MethodPost || !s.csrf.Check(r, "end-session") {
			s.errorPage(w, r, http.StatusForbidden, i18n.ErrorTitle, i18n.ErrorFormExpired)
			return
		}
		if decision != "sign_out" {
			s.endSessionDone(w, r, req, false)
			return
		}
	case !s.hintNamesSession(req.hint, who):
		s.confirmEndSession(w, r, req)
		return
	}
	if _, err := s.accounts.EndBrowserSession(s.asUser(r.Context(), who), &accountsv1.EndBrowserSessionRequest{
		SessionId: who.session.GetSessionId(), UserId: who.user.GetId(),
	}); err != nil {
		s.failure(w, r, "end browser session", err)
		return
	}
	s.cookies.Clear(w, cookie.Session)
	s.endSessionDone(w, r, req, true)
}

// checkEndSession checks the request's parameters; on a refusal it shows
// the page and reports false.
func (s *Service) checkEndSession(w http.ResponseWriter, r *http.Request, params url.Values) (endSessionRequest, bool) {
	req := endSessionRequest{clientID: truncate(params.Get("client_id"), 256), state: truncate(params.Get("state"), 2048)}
	if raw := params.Get("id_token_hint"); raw != "" && s.token != nil {
		hint, err := s.token.CheckIDTokenHint(r.Context(), &tokenv1.CheckIDTokenHintRequest{IdTokenHint: raw})
		switch {
		case err == nil:
			req.hint = hint
		case errs.KindOf(err) == errs.KindInvalid:
			// Not ours, or signed by a key no longer published: as if absent.
		default:
			s.failure(w, r, "check id_token_hint", err)
			return req, false
		}
	}
	if req.hint != nil {
		if req.clientID != "" && req.clientID != req.hint.GetClientId() {
			s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.EndSessionBadClient)
			return req, false
		}
		req.clientID = req.hint.GetClientId()
	}
	uri := params.Get("post_logout_redirect_uri")
	if req.clientID == "" {
		if uri != "" {
			s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.EndSessionBadRedirect)
			return req, false
		}
		return req, true
	}
	c, err := s.authorize.GetClient(r.Context(), &authorizev1.GetClientRequest{ClientId: req.clientID})
	if err != nil {
		if k := errs.KindOf(err); k == errs.KindNotFound || k == errs.KindInvalid {
			s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.EndSessionBadClient)
		} else {
			s.failure(w, r, "get client", err)
		}
		return req, false
	}
	var meta struct {
		ClientName string   `json:"client_name"`
		URIs       []string `json:"post_logout_redirect_uris"`
	}
	_ = json.Unmarshal(c.GetMetadataJson(), &meta)
	req.clientName = strings.TrimSpace(meta.ClientName)
	if req.clientName == "" {
		req.clientName = req.clientID
	}
	if uri != "" {
		registered := false
		for _, u := range meta.URIs {
			registered = registered || u == uri
		}
		if !registered {
			s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.EndSessionBadRedirect)
			return req, false
		}
		req.redirect = uri
	}
	return req, true
}

// hintNamesSession reports whether a verified hint was issued in this
// browser's session, to its user, recently enough.
func (s *Service) hintNamesSession(hint *tokenv1.CheckIDTokenHintResponse, who *signedIn) bool {
	return hint != nil && hint.GetSid() != "" && hint.GetSid() == who.session.GetSessionId() &&
		hint.GetUserId() == who.user.GetId() && hint.GetIssuedAt() != nil && s.now().Sub(hint.GetIssuedAt().AsTime()) < hintMaxAge
}

// confirmEndSession asks whether to sign out.
func (s *Service) confirmEndSession(w http.ResponseWriter, r *http.Request, req endSessionRequest) {
	l := s.localizer(r)
	v := endSessionView{Action: s.path("oauth2/logout"), Intro: l.T(i18n.EndSessionIntro, s.cfg.ServiceName)}
	if req.clientName != "" {
		v.Intro = l.T(i18n.EndSessionIntroClient, req.clientName, s.cfg.ServiceName)
	}
	for name, value := range map[string]string{"client_id": req.clientID, "post_logout_redirect_uri": req.redirect, "state": req.state} {
		if value != "" {
			v.Fields = append(v.Fields, hiddenField{Name: name, Value: value})
		}
	}
	// Signing out redirects to the client, which form-action 'self' would block.
	w.Header().Set("Content-Security-Policy", cspConsent)
	s.render(w, r, http.StatusOK, "end_session", &render.View{Title: l.T(i18n.EndSessionTitle), CSRF: s.csrf.Token(w, r, "end-session"), Page: v})
}

// endSessionDone goes back to the client's registered URI once signed out,
// or says what happened (staying signed in goes back to nobody: the client
// must not believe the person signed out).
func (s *Service) endSessionDone(w http.ResponseWriter, r *http.Request, req endSessionRequest, signedOut bool) {
	if req.redirect != "" && signedOut {
		u, err := url.Parse(req.redirect)
		if err == nil {
			if req.state != "" {
				q := u.Query()
				q.Set("state", req.state)
				u.RawQuery = q.Encode()
			}
			http.Redirect(w, r, u.String(), http.StatusSeeOther)
			return
		}
	}
	l := s.localizer(r)
	title, body := i18n.EndSessionDoneTitle, i18n.EndSessionDoneBody
	if !signedOut {
		title, body = i18n.EndSessionTitle, i18n.EndSessionStayedBody
	}
	s.render(w, r, http.StatusOK, "sso_message", &render.View{Title: l.T(title), Page: l.T(body)})
}
