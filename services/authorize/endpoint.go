package authorize

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/oautherr"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/grant"
	"gatehouse.dev/services/authorize/internal/pkce"
	"gatehouse.dev/services/authorize/internal/redirect"
	"gatehouse.dev/services/authorize/internal/scope"
)

// authRequest is a parsed authorization request whose client and redirect
// URI are known to be good, so that every further error can be redirected.
type authRequest struct {
	client       *client
	redirectURI  string
	responseMode string
	state        string
}

// handleAuthorize is the authorization endpoint (RFC 6749 §4.1.1). An unknown
// client or an unregistered redirect URI is shown as an error page and never
// redirected; every other error goes back to the client.
func (s *Service) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	ar, err := s.readAuthRequest(w, r)
	if err != nil {
		httpx.WritePageError(w, r, s.logger, err, s.errorPage)
		return
	}
	q := r.Form
	grantID, err := s.requestGrant(r.Context(), ar, q)
	if err != nil {
		httpx.LogFault(r.Context(), s.logger, r, err)
		s.redirectError(w, r, ar, err)
		return
	}
	next := "login"
	if hasPrompt(q.Get("prompt"), "create") {
		next = "register"
	}
	http.Redirect(w, r, s.endpoint(next)+"?"+url.Values{"grant": {grantID}}.Encode(), http.StatusSeeOther)
}

// readAuthRequest reads an authorization request up to its client and
// redirect URI; its errors are shown as pages, never redirected.
func (s *Service) readAuthRequest(w http.ResponseWriter, r *http.Request) (*authRequest, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return nil, httpx.WithStatus(http.StatusMethodNotAllowed, errs.Invalid("This address only answers GET and POST."))
	}
	if err := s.admit(r, s.cfg.Limits.Authorization, "Too many sign-in requests came from your network. Wait a moment and try again."); err != nil {
		return nil, err
	}
	if err := r.ParseForm(); err != nil {
		return nil, errs.Invalid("The authorization request could not be read.")
	}
	q := r.Form
	for _, p := range []string{"client_id", "redirect_uri", "response_type", "response_mode", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "prompt", "login_hint", "max_age", "acr_values"} {
		if len(q[p]) > 1 {
			return nil, errs.Invalid("The parameter " + p + " appears more than once.")
		}
	}
	c, err := s.client(r.Context(), q.Get("client_id"))
	if err != nil {
		if errs.KindOf(err) == errs.KindNotFound {
			return nil, errs.Invalid("The application that sent you here is not registered (unknown client_id).")
		}
		return nil, errs.Wrap(errs.KindUnavailable, "Sign-in is unavailable right now; try again shortly.", err)
	}
	redirectURI, ok := redirect.Match(c.Meta.RedirectURIs, q.Get("redirect_uri"))
	if !ok {
		return nil, errs.Invalid("The application asked to return to an address it has not registered (redirect_uri).")
	}
	return &authRequest{client: c, redirectURI: redirectURI, responseMode: "query", state: q.Get("state")}, nil
}

func hasPrompt(prompt, value string) bool {
	for _, p := range strings.Fields(prompt) {
		if p == value {
			return true
		}
	}
	return false
}

// requestGrant validates the rest of the request and records the grant.
func (s *Service) requestGrant(ctx context.Context, ar *authRequest, q url.Values) (string, error) {
	switch m := q.Get("response_mode"); m {
	case "", "query":
	case "fragment":
		ar.responseMode = "fragment"
	default:
		return "", oautherr.New(oautherr.InvalidRequest, "response_mode must be query or fragment")
	}
	switch {
	case q.Get("request") != "":
		return "", oautherr.New(oautherr.RequestNotSupported, "request objects are not supported")
	case q.Get("request_uri") != "":
		return "", oautherr.New(oautherr.RequestURINotSupported, "request_uri is not supported")
	case q.Get("response_type") != "code":
		return "", oautherr.New(oautherr.UnsupportedResponseType, "response_type must be code")
	case !contains(ar.client.Meta.GrantTypes, "authorization_code"):
		return "", oautherr.New(oautherr.UnauthorizedClient, "this client is not registered for the authorization_code grant")
	}
	scopes, err := scope.Parse(q.Get("scope"))
	if err != nil {
		return "", err
	}
	if _, err := scope.Interpret(scopes); err != nil {
		return "", err
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case method == "plain":
		return "", oautherr.Errorf(oautherr.InvalidRequest, "code_challenge_method plain is not allowed; use S256")
	case method != "" && method != "S256":
		return "", oautherr.Errorf(oautherr.InvalidRequest, "code_challenge_method must be S256")
	case challenge != "" && method == "":
		return "", oautherr.Errorf(oautherr.InvalidRequest, "code_challenge_method is required with code_challenge (S256)")
	case challenge == "" && ar.client.Meta.IsPublic():
		return "", oautherr.Errorf(oautherr.InvalidRequest, "public clients must use PKCE: send code_challenge with code_challenge_method S256")
	case challenge != "":
		if err := pkce.ValidChallenge(method, challenge); err != nil {
			return "", oautherr.Errorf(oautherr.InvalidRequest, "%s", errs.PublicMessage(err))
		}
	}
	for _, p := range strings.Fields(q.Get("prompt")) {
		switch p {
		case "none":
			// No browser session can exist before the web pages: nobody is signed in.
			return "", oautherr.New(oautherr.LoginRequired, "the user is not signed in")
		case "login", "consent", "create", "select_account":
		default:
			return "", oautherr.Errorf(oautherr.InvalidRequest, "unsupported prompt value %q", p)
		}
	}
	var maxAge *int64
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 1<<31 {
			return "", oautherr.Errorf(oautherr.InvalidRequest, "max_age must be a number of seconds")
		}
		maxAge = &n
	}
	for p, max := range map[string]int{"state": 2048, "nonce": 512, "login_hint": 512, "acr_values": 512} {
		if len(q.Get(p)) > max {
			return "", oautherr.Errorf(oautherr.InvalidRequest, "%s is longer than %d bytes", p, max)
		}
	}
	id := ids.New()
	now := s.now()
	if err := s.room.check(ctx, now); err != nil {
		return "", err
	}
	req := &eventsv1.GrantRequested{
		GrantId: id, ClientId: ar.client.ID, RedirectUri: ar.redirectURI, ResponseMode: ar.responseMode,
		Scope: scopes.String(), State: ar.state, Nonce: q.Get("nonce"), CodeChallenge: challenge,
		Prompt: q.Get("prompt"), LoginHint: q.Get("login_hint"), ExpiresAt: grant.Timestamp(now.Add(s.cfg.GrantTTL)),
		MaxAge: maxAge, AcrValues: q.Get("acr_values"),
	}
	_, err = s.pending.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), TTL: s.ttl(s.grantEnd(req)), Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: eventsv1.AuthorizeGrant.Type, ID: id}, Actor: "client:" + ar.client.ID, Payload: req,
	}})
	if err != nil {
		return "", errs.Wrap(errs.KindUnavailable, "the authorization server cannot record the request right now", fmt.Errorf("record grant: %w", err))
	}
	return id, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// responseURL builds the redirect back to the client with params in the
// query or the fragment, adding iss (RFC 9207).
func (s *Service) responseURL(redirectURI, mode string, params url.Values) string {
	params.Set("iss", s.cfg.Issuer)
	u, _ := url.Parse(redirectURI) // registered URIs parse
	if mode == "fragment" {
		u.Fragment = ""
		return u.String() + "#" + params.Encode()
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// redirectError sends err back to the client (RFC 6749 §4.1.2.1).
func (s *Service) redirectError(w http.ResponseWriter, r *http.Request, ar *authRequest, err error) {
	params := url.Values{"error": {oautherr.Of(err, "")}, "error_description": {errs.PublicMessage(err)}}
	if ar.state != "" {
		params.Set("state", ar.state)
	}
	http.Redirect(w, r, s.responseURL(ar.redirectURI, ar.responseMode, params), http.StatusSeeOther)
}

var errorPageTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign-in problem</title></head>
<body><main><h1>Sign-in problem</h1><p role="alert">{{.}}</p>
<p>Go back to the application and try again. If this keeps happening, tell the application's developers.</p></main></body></html>
`))

// errorPage shows an error in the browser without redirecting anywhere (an
// httpx.Page).
func (s *Service) errorPage(w http.ResponseWriter, _ *http.Request, status int, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = errorPageTemplate.Execute(w, message)
}
