package authorize

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/clientmeta"
	"gatehouse.dev/services/authorize/internal/grant"
	"gatehouse.dev/services/authorize/internal/oautherr"
	"gatehouse.dev/services/authorize/internal/pkce"
	"gatehouse.dev/services/authorize/internal/redirect"
	"gatehouse.dev/services/authorize/internal/scope"
)

// client is a registered client as the read model holds it.
type client struct {
	ID         string
	Meta       clientmeta.Metadata
	SecretHash string
}

func (s *Service) client(ctx context.Context, id string) (*client, error) {
	if id == "" || len(id) > 256 {
		return nil, errs.NotFound("Unknown client.")
	}
	c := &client{ID: id}
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT metadata, secret_hash FROM clients WHERE client_id = $1`, id).Scan(&raw, &c.SecretHash)
	if errors.Is(err, pgx.ErrNoRows) {
		// The read model may lag a registration that just happened (on this or
		// another replica, or from configuration at start): the log decides.
		raw, c.SecretHash, err = s.clientFromLog(ctx, id)
	}
	if err != nil {
		if errs.KindOf(err) == errs.KindNotFound {
			return nil, err
		}
		return nil, errs.Wrap(errs.KindUnavailable, "Clients cannot be read right now.", err)
	}
	if err := json.Unmarshal(raw, &c.Meta); err != nil {
		return nil, errs.Wrap(errs.KindInternal, "", err)
	}
	return c, nil
}

// clientFromLog reads a client's latest registration from the event log.
func (s *Service) clientFromLog(ctx context.Context, id string) ([]byte, string, error) {
	ref := eventlog.Ref{Type: eventsv1.AuthorizeClient.Type, ID: id}
	if !validClientID(id) {
		return nil, "", errs.NotFound("Unknown client.")
	}
	history, _, err := s.log.Load(ctx, ref)
	if err != nil {
		return nil, "", err
	}
	for i := len(history) - 1; i >= 0; i-- {
		if ev, ok := history[i].Event.(*eventsv1.ClientRegistered); ok {
			return ev.GetMetadataJson(), ev.GetSecretHash(), nil
		}
	}
	return nil, "", errs.NotFound("Unknown client.")
}

// validClientID reports whether id can name a client (and a subject token).
func validClientID(id string) bool {
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return id != "" && len(id) <= 64
}

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
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "This address only answers GET and POST.")
		return
	}
	if ok, status := s.admit(w, r, s.cfg.Limits.Authorization); !ok {
		s.errorPage(w, status, "Too many sign-in requests came from your network. Wait a moment and try again.")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The authorization request could not be read.")
		return
	}
	q := r.Form
	for _, p := range []string{"client_id", "redirect_uri", "response_type", "response_mode", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "prompt", "login_hint"} {
		if len(q[p]) > 1 {
			s.errorPage(w, http.StatusBadRequest, "The parameter "+p+" appears more than once.")
			return
		}
	}
	c, err := s.client(r.Context(), q.Get("client_id"))
	if err != nil {
		if errs.KindOf(err) == errs.KindNotFound {
			s.errorPage(w, http.StatusBadRequest, "The application that sent you here is not registered (unknown client_id).")
		} else {
			s.errorPage(w, http.StatusServiceUnavailable, "Sign-in is unavailable right now; try again shortly.")
		}
		return
	}
	redirectURI, ok := redirect.Match(c.Meta.RedirectURIs, q.Get("redirect_uri"))
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "The application asked to return to an address it has not registered (redirect_uri).")
		return
	}
	ar := &authRequest{client: c, redirectURI: redirectURI, responseMode: "query", state: q.Get("state")}
	switch m := q.Get("response_mode"); m {
	case "", "query":
	case "fragment":
		ar.responseMode = "fragment"
	default:
		s.redirectError(w, r, ar, oautherr.InvalidRequest, "response_mode must be query or fragment")
		return
	}
	grantID, oerr := s.requestGrant(r.Context(), ar, q)
	if oerr != nil {
		s.redirectError(w, r, ar, oerr.Code, oerr.Description)
		return
	}
	next := "login"
	if hasPrompt(q.Get("prompt"), "create") {
		next = "register"
	}
	http.Redirect(w, r, s.endpoint(next)+"?"+url.Values{"grant": {grantID}}.Encode(), http.StatusSeeOther)
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
func (s *Service) requestGrant(ctx context.Context, ar *authRequest, q url.Values) (string, *oautherr.Error) {
	switch {
	case q.Get("request") != "":
		return "", &oautherr.Error{Code: "request_not_supported", Description: "request objects are not supported"}
	case q.Get("request_uri") != "":
		return "", &oautherr.Error{Code: "request_uri_not_supported", Description: "request_uri is not supported"}
	case q.Get("response_type") != "code":
		return "", &oautherr.Error{Code: "unsupported_response_type", Description: "response_type must be code"}
	case !contains(ar.client.Meta.GrantTypes, "authorization_code"):
		return "", &oautherr.Error{Code: "unauthorized_client", Description: "this client is not registered for the authorization_code grant"}
	}
	scopes, err := scope.Parse(q.Get("scope"))
	if err != nil {
		return "", asOAuth(err, oautherr.InvalidScope)
	}
	if _, err := scope.Interpret(scopes); err != nil {
		return "", asOAuth(err, oautherr.InvalidScope)
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
			return "", oautherr.Errorf("login_required", "the user is not signed in")
		case "login", "consent", "create", "select_account":
		default:
			return "", oautherr.Errorf(oautherr.InvalidRequest, "unsupported prompt value %q", p)
		}
	}
	for p, max := range map[string]int{"state": 2048, "nonce": 512, "login_hint": 512} {
		if len(q.Get(p)) > max {
			return "", oautherr.Errorf(oautherr.InvalidRequest, "%s is longer than %d bytes", p, max)
		}
	}
	id := ids.New()
	now := s.now()
	_, err = s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: eventsv1.AuthorizeGrant.Type, ID: id}, Actor: "client:" + ar.client.ID,
		Payload: &eventsv1.GrantRequested{
			GrantId: id, ClientId: ar.client.ID, RedirectUri: ar.redirectURI, ResponseMode: ar.responseMode,
			Scope: scopes.String(), State: ar.state, Nonce: q.Get("nonce"), CodeChallenge: challenge,
			Prompt: q.Get("prompt"), LoginHint: q.Get("login_hint"), ExpiresAt: grant.Timestamp(now.Add(s.cfg.GrantTTL)),
		},
	}})
	if err != nil {
		s.logger.ErrorContext(ctx, "record grant", "err", err)
		return "", &oautherr.Error{Code: "temporarily_unavailable", Description: "the authorization server cannot record the request right now"}
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

// asOAuth keeps an *oautherr.Error as it is and turns anything else into one with code.
func asOAuth(err error, code string) *oautherr.Error {
	var oe *oautherr.Error
	if errors.As(err, &oe) {
		return oe
	}
	return &oautherr.Error{Code: code, Description: errs.PublicMessage(err)}
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

func (s *Service) redirectError(w http.ResponseWriter, r *http.Request, ar *authRequest, code, description string) {
	params := url.Values{"error": {code}, "error_description": {description}}
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

// errorPage shows an error in the browser without redirecting anywhere.
func (s *Service) errorPage(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = errorPageTemplate.Execute(w, message)
}
