package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestAttacks drives the attack checklist (anchors.md §C) against one real
// `gatehouse serve` at the HTTP level. Each subtest is named for the attack
// it tries and asserts the exact status and OAuth error it must get.
func TestAttacks(t *testing.T) {
	e := newOAuthEnv(t)
	a := newAttackEnv(t, e)

	t.Run("RedirectURITricksAtAuthorize", a.redirectTricksAtAuthorize)
	t.Run("LoopbackRedirectWithOtherPortIsAccepted", a.loopbackOtherPort)
	t.Run("ResponseModeVariantsNeverOpenRedirect", a.responseModeVariants)
	t.Run("UnknownClientAtAuthorize", a.unknownClientAtAuthorize)
	t.Run("RedirectURITricksAtRegistration", a.redirectTricksAtRegistration)
	t.Run("PKCERequiredForPublicClients", a.pkceRequired)
	t.Run("PKCEPlainMethodRefused", a.pkcePlainRefused)
	t.Run("PKCEWrongOrMissingVerifier", a.pkceWrongVerifier)
	t.Run("PKCEDowngrade", a.pkceDowngrade)
	t.Run("CodeBoundToClientAndRedirectURI", a.codeBinding)
	t.Run("RefreshTokenBoundToClient", a.refreshBinding)
	t.Run("TokenTypeConfusion", a.tokenTypeConfusion)
	t.Run("ClientAuthenticationFailures", a.clientAuthFailures)
	t.Run("IntrospectionAuthentication", a.introspectionAuth)
	t.Run("IntrospectionOfBadTokens", a.introspectionBadTokens)
	t.Run("TokenEndpointBodies", a.tokenEndpointBodies)
	t.Run("RegistrationBodies", a.registrationBodies)
	t.Run("Revocation", a.revocation)
	t.Run("DiscoveryDocument", a.discovery)
}

// attackEnv is the shared server with the extra clients the attacks need.
type attackEnv struct {
	e *oauthEnv
	// other is a second public client with the same redirect URI as e.client.
	other oauth2.Config
	// loopback is a public native client with several loopback redirect URIs.
	loopback string
	// basic and post are confidential web clients on https://app.example.com/.
	basic, postClient     oauth2.Config
	basicSecret, postSecr string
	// tok is a live session of e.client.
	tok *oauth2.Token
}

const (
	confidentialRedirect = "https://app.example.com/cb"
	// A syntactically valid S256 challenge (43 base64url characters).
	someChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbkRmcPbDvYQ"
)

func newAttackEnv(t *testing.T, e *oauthEnv) *attackEnv {
	t.Helper()
	a := &attackEnv{e: e}
	public := func(redirects ...string) map[string]any {
		return map[string]any{
			"client_name": "Attack Client", "client_uri": "https://client.example.com/", "redirect_uris": redirects,
			"application_type": "native", "token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		}
	}
	reg := e.register(t, public("http://127.0.0.1/callback"), http.StatusCreated)
	a.other = e.client
	a.other.ClientID = reg["client_id"].(string)
	reg = e.register(t, public("http://127.0.0.1/callback", "http://localhost/callback", "http://[::1]/callback"), http.StatusCreated)
	a.loopback = reg["client_id"].(string)

	confidential := func(method string) (oauth2.Config, string) {
		reg := e.register(t, map[string]any{
			"client_name": "Web App", "client_uri": "https://app.example.com/", "redirect_uris": []string{confidentialRedirect},
			"application_type": "web", "token_endpoint_auth_method": method,
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		}, http.StatusCreated)
		secret, _ := reg["client_secret"].(string)
		if secret == "" {
			t.Fatalf("confidential registration without a secret: %v", reg)
		}
		cfg := e.client
		cfg.ClientID, cfg.ClientSecret, cfg.RedirectURL = reg["client_id"].(string), secret, confidentialRedirect
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
		if method == "client_secret_post" {
			cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		}
		return cfg, secret
	}
	a.basic, a.basicSecret = confidential("client_secret_basic")
	a.postClient, a.postSecr = confidential("client_secret_post")
	a.tok = a.session(t)
	return a
}

// session runs a full authorization code flow for e.client and returns its tokens.
func (a *attackEnv) session(t *testing.T) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	back := a.e.authorize(t, a.e.client, oauth2.S256ChallengeOption(verifier))
	tok, err := a.e.client.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v (%v)", err, tok)
	}
	return tok
}

// ---- HTTP helpers ----

// reply is an HTTP response with its body read and, when JSON, decoded.
type reply struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (a *attackEnv) do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := plainHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// post sends a form (or a raw body with its content type) to path, letting
// edit change the request before it is sent.
func (a *attackEnv) post(t *testing.T, path, contentType, body string, edit func(*http.Request)) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.e.issuer+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if edit != nil {
		edit(req)
	}
	return a.do(t, req)
}

func (a *attackEnv) postForm(t *testing.T, path string, form url.Values, edit func(*http.Request)) reply {
	t.Helper()
	return a.post(t, path, "application/x-www-form-urlencoded", form.Encode(), edit)
}

// wantOAuthError asserts an OAuth error response: the status, a JSON body
// (application/json) whose error is code, and never a 5xx.
func wantOAuthError(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	got, _ := r.body["error"].(string)
	if r.status != status || mt != "application/json" || got != code || r.status >= 500 {
		t.Errorf("%s: %d %s %q; want %d application/json with error %q", what, r.status, r.header.Get("Content-Type"), r.raw, status, code)
	}
}

// wantInactive asserts an introspection answer of exactly {"active":false}.
func wantInactive(t *testing.T, what string, r reply) {
	t.Helper()
	if r.status != http.StatusOK || len(r.body) != 1 || r.body["active"] != false || strings.TrimSpace(r.raw) != `{"active":false}` {
		t.Errorf("%s: %d %q; want 200 {\"active\":false}", what, r.status, r.raw)
	}
}

// authorizeRequest is GET /authorize with sensible parameters for clientID,
// overridden or removed (empty value) by extra.
func (a *attackEnv) authorizeRequest(t *testing.T, clientID string, extra url.Values) reply {
	t.Helper()
	q := url.Values{
		"client_id": {clientID}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s-1"},
		"code_challenge": {someChallenge}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		if len(v) == 0 || v[0] == "" {
			q.Del(k)
		} else {
			q[k] = v
		}
	}
	req, _ := http.NewRequest(http.MethodGet, a.e.issuer+"authorize?"+q.Encode(), nil)
	return a.do(t, req)
}

// wantErrorPage asserts an error page: a 4xx HTML answer that redirects nowhere.
func wantErrorPage(t *testing.T, what string, r reply) {
	t.Helper()
	mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	if r.status < 400 || r.status >= 500 || r.header.Get("Location") != "" || mt != "text/html" {
		t.Errorf("%s: %d, Location %q, Content-Type %q; want a 4xx error page without Location", what, r.status, r.header.Get("Location"), r.header.Get("Content-Type"))
	}
}

// wantRedirectError asserts a 303 back to want (a registered redirect URI)
// carrying error=code and the request's state.
func wantRedirectError(t *testing.T, what string, r reply, want, code string) {
	t.Helper()
	loc, err := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || err != nil {
		t.Errorf("%s: %d, Location %q; want 303 back to %s", what, r.status, r.header.Get("Location"), want)
		return
	}
	q := loc.Query()
	base := *loc
	base.RawQuery = ""
	if base.String() != want || q.Get("error") != code || q.Get("state") != "s-1" {
		t.Errorf("%s: redirected to %s; want %s with error=%s and state=s-1", what, loc, want, code)
	}
}

// code authorizes cfg (approving as the user) and returns the code.
func (a *attackEnv) code(t *testing.T, cfg oauth2.Config, opts ...oauth2.AuthCodeOption) string {
	t.Helper()
	back := a.e.authorize(t, cfg, opts...)
	code := back.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", back)
	}
	return code
}

// ---- redirect URIs ----

// redirectTricks are redirect URIs that must never match a registered
// loopback URI, nor be accepted at registration.
var redirectTricks = []string{
	"http://127.0.0.1@evil.example/callback",
	"http://127.0.0.1:@evil.example/callback",
	"http://127.0.0.1@127.0.0.1@evil.example/callback",
	"http://a@b@127.0.0.1/callback",
	"http://127.0.0.1/callback/..;/x",
	"http://127.0.0.1/..;/callback",
	"http://127.0.0.1/callback/%2e%2e/x",
	"http://127.0.0.1/callback/%2E%2E/x",
	"http://127.0.0.1/callback/%252e%252e/x",
	"http://127.0.0.1/callback/%2e%2e%2fx",
	"http://127.0.0.1\\@evil.example/callback",
	"http://127.0.0.1/callback\\..\\x",
	"http:\\\\evil.example\\callback",
	"http://127.0.0.1./callback",
	"http://localhost./callback",
	"http://localhost.evil.test/callback",
	"http://127.0.0.1.evil.test/callback",
	"http://127.0.0.1/callback#frag",
	"http://127.1/callback",
	"http://0x7f.0.0.1/callback",
	"http://2130706433/callback",
	"http://LOCALHOST/callback",
	"JaVaScRiPt:alert(1)",
	"javascript://127.0.0.1/callback%0aalert(1)",
	"data:text/html,x",
	"DATA:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
	"https://evil.example/callback",
}

func (a *attackEnv) redirectTricksAtAuthorize(t *testing.T) {
	tricks := append(slices.Clone(redirectTricks),
		// The loopback rule lets the port vary, nothing else.
		"http://127.0.0.1:5000/callback?x=1",
		"http://127.0.0.1/callback?x=1",
		"http://127.0.0.1/callback?",
		"http://127.0.0.1/callback/",
		"http://127.0.0.1/Callback",
		"https://127.0.0.1/callback",
		"http://127.0.0.1:0/callback",
		"http://127.0.0.1:65536/callback",
		"http://[::ffff:127.0.0.1]/callback",
	)
	for _, clientID := range []string{a.e.client.ClientID, a.loopback} {
		for _, trick := range tricks {
			r := a.authorizeRequest(t, clientID, url.Values{"redirect_uri": {trick}})
			wantErrorPage(t, trick, r)
		}
	}
	// A client with several redirect URIs must name one.
	wantErrorPage(t, "no redirect_uri with several registered", a.authorizeRequest(t, a.loopback, url.Values{"redirect_uri": {""}}))
	// A repeated redirect_uri is ambiguous.
	req, _ := http.NewRequest(http.MethodGet, a.e.issuer+"authorize?client_id="+a.e.client.ClientID+
		"&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&redirect_uri=https%3A%2F%2Fevil.example%2F", nil)
	wantErrorPage(t, "repeated redirect_uri", a.do(t, req))
	// So is a query that cannot be read.
	req, _ = http.NewRequest(http.MethodGet, a.e.issuer+"authorize?client_id="+a.e.client.ClientID+"&redirect_uri=%zz", nil)
	wantErrorPage(t, "garbage percent-encoding", a.do(t, req))
}

func (a *attackEnv) loopbackOtherPort(t *testing.T) {
	for _, tc := range []struct{ clientID, uri string }{
		{a.e.client.ClientID, "http://127.0.0.1:5000/callback"},
		{a.e.client.ClientID, "http://127.0.0.1/callback"},
		{a.loopback, "http://localhost:6000/callback"},
		{a.loopback, "http://[::1]:7000/callback"},
	} {
		r := a.authorizeRequest(t, tc.clientID, url.Values{"redirect_uri": {tc.uri}})
		loc, _ := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusSeeOther || loc == nil || loc.String() == "" || !strings.HasPrefix(loc.String(), a.e.issuer+"login?") || loc.Query().Get("grant") == "" {
			t.Errorf("%s: %d, Location %q; want 303 to the login page", tc.uri, r.status, r.header.Get("Location"))
		}
	}
	// An error after the redirect URI is known goes back to that very port.
	r := a.authorizeRequest(t, a.e.client.ClientID, url.Values{"redirect_uri": {"http://127.0.0.1:5000/callback"}, "response_type": {"token"}})
	wantRedirectError(t, "unsupported response_type", r, "http://127.0.0.1:5000/callback", "unsupported_response_type")
	// The state comes back unchanged, whatever it holds.
	state := "a b&c=d/é?#%25<script>"
	r = a.authorizeRequest(t, a.e.client.ClientID, url.Values{"redirect_uri": {"http://127.0.0.1:5000/callback"}, "response_type": {"token"}, "state": {state}})
	if loc, err := url.Parse(r.header.Get("Location")); err != nil || loc.Query().Get("state") != state {
		t.Errorf("state not echoed unchanged: Location %q", r.header.Get("Location"))
	}
}

func (a *attackEnv) responseModeVariants(t *testing.T) {
	for _, mode := range []string{"form_post", "query.jwt", "fragment.jwt", "form_post.jwt", "jwt", "web_message"} {
		// With an unregistered redirect URI: an error page, whatever the mode.
		r := a.authorizeRequest(t, a.e.client.ClientID, url.Values{"redirect_uri": {"https://evil.example/cb"}, "response_mode": {mode}})
		wantErrorPage(t, mode+" with an unregistered redirect_uri", r)
		// With the registered one: refused, back to it in the query.
		r = a.authorizeRequest(t, a.e.client.ClientID, url.Values{"redirect_uri": {"http://127.0.0.1:5000/callback"}, "response_mode": {mode}})
		wantRedirectError(t, mode, r, "http://127.0.0.1:5000/callback", "invalid_request")
	}
}

func (a *attackEnv) unknownClientAtAuthorize(t *testing.T) {
	for _, id := range []string{"01HZZZZZZZZZZZZZZZZZZZZZZZ", "nobody", "", strings.Repeat("x", 300), "' OR 1=1 --"} {
		r := a.authorizeRequest(t, id, url.Values{"redirect_uri": {"http://127.0.0.1/callback"}})
		wantErrorPage(t, "client_id "+id, r)
		r = a.authorizeRequest(t, id, url.Values{"redirect_uri": {"https://evil.example/cb"}})
		wantErrorPage(t, "client_id "+id+" with an evil redirect", r)
	}
	// Unsupported methods are refused without a redirect either.
	req, _ := http.NewRequest(http.MethodPut, a.e.issuer+"authorize?client_id="+a.e.client.ClientID, nil)
	if r := a.do(t, req); r.status != http.StatusMethodNotAllowed || r.header.Get("Location") != "" {
		t.Errorf("PUT /authorize: %d, Location %q", r.status, r.header.Get("Location"))
	}
}

func (a *attackEnv) redirectTricksAtRegistration(t *testing.T) {
	try := func(appType, clientURI, uri string) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{
			"client_name": "Evil", "client_uri": clientURI, "redirect_uris": []string{uri},
			"application_type": appType, "token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
		})
		r := a.post(t, "oauth2/registration", "application/json", string(body), nil)
		wantOAuthError(t, appType+" "+uri, r, http.StatusBadRequest, "invalid_redirect_uri")
	}
	for _, trick := range redirectTricks {
		if trick == "https://evil.example/callback" { // fine for a web client on evil.example
			continue
		}
		try("native", "https://client.example.com/", trick)
		try("web", "https://client.example.com/", trick)
	}
	for _, uri := range []string{
		"https://app.example.com@evil.example/cb",
		"https://app.example.com:@evil.example/cb",
		"https://x@app.example.com/cb",
		"https://a@b@app.example.com/cb",
		"https://app.example.com./cb",
		"https://app.example.com/cb/..;/x",
		"https://app.example.com/cb/%2e%2e/x",
		"https://app.example.com/cb\\..\\x",
		"https://app.example.com\\@evil.example/cb",
		"https://app.example.com.evil.test/cb",
		"https://evilapp.example.com.evil/cb",
		"https://app.example.com/cb#x",
		"https://APP.example.com/cb",
		"https://аpp.example.com/cb", // Cyrillic а
		"https://xn--pp-8cd.example.com.evil/cb",
		"http://app.example.com/cb",
		"https://evil.example/cb",
		"vbscript:msgbox(1)",
		"file:///etc/passwd",
		" javascript:alert(1)",
		"java\tscript:alert(1)",
	} {
		try("web", "https://app.example.com/", uri)
	}
	// Private-use schemes must be the client_uri host reversed.
	try("native", "https://client.example.com/", "com.evil.app:/callback")
	try("native", "https://client.example.com/", "com.example.clientevil:/callback")
}

// ---- PKCE ----

func (a *attackEnv) pkceRequired(t *testing.T) {
	r := a.authorizeRequest(t, a.e.client.ClientID, url.Values{"redirect_uri": {"http://127.0.0.1:5000/callback"}, "code_challenge": {""}, "code_challenge_method": {""}})
	wantRedirectError(t, "public client without code_challenge", r, "http://127.0.0.1:5000/callback", "invalid_request")
	r = a.authorizeRequest(t, a.e.client.ClientID, url.Values{"redirect_uri": {"http://127.0.0.1:5000/callback"}, "code_challenge_method": {""}})
	wantRedirectError(t, "code_challenge without method", r, "http://127.0.0.1:5000/callback", "invalid_request")
	for _, c := range []string{"short", someChallenge + "A", strings.Replace(someChallenge, "E", "+", 1)} {
		r = a.authorizeRequest(t, a.e.client.ClientID, url.Values{"redirect_uri": {"http://127.0.0.1:5000/callback"}, "code_challenge": {c}})
		wantRedirectError(t, "malformed code_challenge "+c, r, "http://127.0.0.1:5000/callback", "invalid_request")
	}
}

func (a *attackEnv) pkcePlainRefused(t *testing.T) {
	for _, m := range []string{"plain", "PLAIN", "s256", "S512"} {
		r := a.authorizeRequest(t, a.e.client.ClientID, url.Values{"redirect_uri": {"http://127.0.0.1:5000/callback"}, "code_challenge_method": {m}})
		wantRedirectError(t, "code_challenge_method="+m, r, "http://127.0.0.1:5000/callback", "invalid_request")
	}
	// A plain "challenge" that is the verifier itself is refused as well.
	verifier := oauth2.GenerateVerifier()
	r := a.authorizeRequest(t, a.e.client.ClientID, url.Values{"redirect_uri": {"http://127.0.0.1:5000/callback"}, "code_challenge": {verifier}, "code_challenge_method": {"plain"}})
	wantRedirectError(t, "plain with the verifier", r, "http://127.0.0.1:5000/callback", "invalid_request")
}

func (a *attackEnv) exchange(t *testing.T, form url.Values, edit func(*http.Request)) reply {
	t.Helper()
	form.Set("grant_type", "authorization_code")
	return a.postForm(t, "oauth2/token", form, edit)
}

func (a *attackEnv) pkceWrongVerifier(t *testing.T) {
	verifier := oauth2.GenerateVerifier()
	code := a.code(t, a.e.client, oauth2.S256ChallengeOption(verifier))
	base := url.Values{"code": {code}, "client_id": {a.e.client.ClientID}, "redirect_uri": {a.e.client.RedirectURL}}
	for name, v := range map[string]string{
		"wrong verifier":               oauth2.GenerateVerifier(),
		"missing verifier":             "",
		"challenge as verifier":        oauth2.S256ChallengeFromVerifier(verifier),
		"verifier shorter than 43":     verifier[:42],
		"verifier with bad characters": verifier[:42] + "+",
	} {
		form := url.Values{}
		for k, vs := range base {
			form[k] = vs
		}
		if v != "" {
			form.Set("code_verifier", v)
		}
		wantOAuthError(t, name, a.exchange(t, form, nil), http.StatusBadRequest, "invalid_grant")
	}
}

func (a *attackEnv) pkceDowngrade(t *testing.T) {
	// A confidential client may skip PKCE, but then no verifier may appear later.
	code := a.code(t, a.basic) // no challenge
	form := url.Values{"code": {code}, "redirect_uri": {confidentialRedirect}, "code_verifier": {oauth2.GenerateVerifier()}}
	wantOAuthError(t, "verifier without challenge", a.exchange(t, form, basicAuth(a.basic.ClientID, a.basicSecret)), http.StatusBadRequest, "invalid_grant")
	// The code itself was good: without the verifier it is exchanged.
	form.Del("code_verifier")
	if r := a.exchange(t, form, basicAuth(a.basic.ClientID, a.basicSecret)); r.status != http.StatusOK || r.body["access_token"] == nil {
		t.Fatalf("exchange without verifier: %d %s", r.status, r.raw)
	}
}

// ---- codes ----

func (a *attackEnv) codeBinding(t *testing.T) {
	verifier := oauth2.GenerateVerifier()
	code := a.code(t, a.e.client, oauth2.S256ChallengeOption(verifier))
	form := func(clientID, redirectURI string) url.Values {
		f := url.Values{"code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
		if clientID != "" {
			f.Set("client_id", clientID)
		}
		return f
	}
	wantOAuthError(t, "another public client", a.exchange(t, form(a.other.ClientID, a.e.client.RedirectURL), nil), http.StatusBadRequest, "invalid_grant")
	wantOAuthError(t, "another confidential client", a.exchange(t, form("", a.e.client.RedirectURL), basicAuth(a.basic.ClientID, a.basicSecret)), http.StatusBadRequest, "invalid_grant")
	for _, uri := range []string{"http://127.0.0.1:41235/callback", "http://127.0.0.1/callback", "http://127.0.0.1:41234/callback?x=1", "https://evil.example/callback"} {
		wantOAuthError(t, "redirect_uri "+uri, a.exchange(t, form(a.e.client.ClientID, uri), nil), http.StatusBadRequest, "invalid_grant")
	}
	wantOAuthError(t, "no redirect_uri", a.exchange(t, url.Values{"code": {code}, "client_id": {a.e.client.ClientID}, "code_verifier": {verifier}}, nil), http.StatusBadRequest, "invalid_grant")
	wantOAuthError(t, "unknown code", a.exchange(t, url.Values{"code": {code + "x"}, "client_id": {a.e.client.ClientID}, "redirect_uri": {a.e.client.RedirectURL}, "code_verifier": {verifier}}, nil), http.StatusBadRequest, "invalid_grant")
	// The rightful client still gets its tokens.
	if r := a.exchange(t, form(a.e.client.ClientID, a.e.client.RedirectURL), nil); r.status != http.StatusOK {
		t.Fatalf("rightful exchange: %d %s", r.status, r.raw)
	}
}

// ---- tokens ----

func (a *attackEnv) refreshBinding(t *testing.T) {
	tok := a.session(t)
	r := a.postForm(t, "oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {a.other.ClientID}}, nil)
	wantOAuthError(t, "refresh by another public client", r, http.StatusBadRequest, "invalid_grant")
	r = a.postForm(t, "oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, basicAuth(a.basic.ClientID, a.basicSecret))
	wantOAuthError(t, "refresh by another confidential client", r, http.StatusBadRequest, "invalid_grant")
	r = a.postForm(t, "oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {flip(tok.RefreshToken, 6)}, "client_id": {a.e.client.ClientID}}, nil)
	wantOAuthError(t, "forged refresh token", r, http.StatusBadRequest, "invalid_grant")
	// The attempts neither ended the session nor used the token up.
	if got := a.e.introspect(t, tok.AccessToken); got["active"] != true {
		t.Fatalf("access token after foreign refresh attempts: %v", got)
	}
	r = a.postForm(t, "oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {a.e.client.ClientID}}, nil)
	if r.status != http.StatusOK || r.body["refresh_token"] == nil || r.body["refresh_token"] == tok.RefreshToken {
		t.Fatalf("rightful refresh: %d %s", r.status, r.raw)
	}
}

func (a *attackEnv) introspect(t *testing.T, form url.Values, edit func(*http.Request)) reply {
	t.Helper()
	return a.postForm(t, "oauth2/introspect", form, edit)
}

func (a *attackEnv) tokenTypeConfusion(t *testing.T) {
	tok := a.session(t)
	// A refresh token introspected as an access token is reported as what it is.
	for _, hint := range []string{"access_token", ""} {
		form := url.Values{"token": {tok.RefreshToken}}
		if hint != "" {
			form.Set("token_type_hint", hint)
		}
		r := a.introspect(t, form, bearer(homeserverSecret))
		if r.status != http.StatusOK || (r.body["active"] == true && r.body["token_type"] != "refresh_token") {
			t.Errorf("refresh token introspected with hint %q: %d %s", hint, r.status, r.raw)
		}
		if r.body["token_type"] == "access_token" {
			t.Errorf("refresh token reported as an access token: %s", r.raw)
		}
	}
	// A refresh token is no bearer token.
	req, _ := http.NewRequest(http.MethodGet, a.e.issuer+"oauth2/userinfo", nil)
	bearer(tok.RefreshToken)(req)
	r := a.do(t, req)
	wantOAuthError(t, "refresh token at userinfo", r, http.StatusUnauthorized, "invalid_token")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("userinfo 401 without a Bearer challenge: %q", r.header.Get("WWW-Authenticate"))
	}
	// The access token works there (control).
	req, _ = http.NewRequest(http.MethodGet, a.e.issuer+"oauth2/userinfo", nil)
	bearer(tok.AccessToken)(req)
	if r := a.do(t, req); r.status != http.StatusOK || r.body["sub"] != a.e.user.GetId() {
		t.Fatalf("userinfo with the access token: %d %s", r.status, r.raw)
	}
	// An access token is no refresh token.
	r = a.postForm(t, "oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.AccessToken}, "client_id": {a.e.client.ClientID}}, nil)
	wantOAuthError(t, "access token as refresh_token", r, http.StatusBadRequest, "invalid_grant")
	// A refresh token is no authorization code.
	r = a.exchange(t, url.Values{"code": {tok.RefreshToken}, "client_id": {a.e.client.ClientID}, "redirect_uri": {a.e.client.RedirectURL}}, nil)
	wantOAuthError(t, "refresh token as code", r, http.StatusBadRequest, "invalid_grant")
	// Neither attempt harmed the session.
	if got := a.e.introspect(t, tok.AccessToken); got["active"] != true || got["token_type"] != "access_token" {
		t.Fatalf("access token after the confusion attempts: %v", got)
	}
}

func (a *attackEnv) clientAuthFailures(t *testing.T) {
	form := func(extra ...string) url.Values {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {"some-code"}, "redirect_uri": {confidentialRedirect}}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Set(extra[i], extra[i+1])
		}
		return f
	}
	want401 := func(what string, r reply) {
		t.Helper()
		wantOAuthError(t, what, r, http.StatusUnauthorized, "invalid_client")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", what)
		}
	}
	want401("wrong secret (client_secret_basic)", a.postForm(t, "oauth2/token", form(), basicAuth(a.basic.ClientID, a.basicSecret+"x")))
	want401("empty secret (client_secret_basic)", a.postForm(t, "oauth2/token", form(), basicAuth(a.basic.ClientID, "")))
	want401("other client's secret (client_secret_basic)", a.postForm(t, "oauth2/token", form(), basicAuth(a.basic.ClientID, a.postSecr)))
	want401("wrong secret (client_secret_post)", a.postForm(t, "oauth2/token", form("client_id", a.postClient.ClientID, "client_secret", a.postSecr[:len(a.postSecr)-1]), nil))
	want401("empty secret (client_secret_post)", a.postForm(t, "oauth2/token", form("client_id", a.postClient.ClientID, "client_secret", ""), nil))
	want401("basic client using post", a.postForm(t, "oauth2/token", form("client_id", a.basic.ClientID, "client_secret", a.basicSecret), nil))
	want401("post client using basic", a.postForm(t, "oauth2/token", form(), basicAuth(a.postClient.ClientID, a.postSecr)))
	want401("confidential client without a secret", a.postForm(t, "oauth2/token", form("client_id", a.basic.ClientID), nil))
	want401("unknown client (post)", a.postForm(t, "oauth2/token", form("client_id", "01HZZZZZZZZZZZZZZZZZZZZZZZ", "client_secret", "x"), nil))
	want401("unknown client (basic)", a.postForm(t, "oauth2/token", form(), basicAuth("nobody", "x")))
	want401("unknown public client", a.postForm(t, "oauth2/token", form("client_id", "nobody"), nil))
	want401("no client at all", a.postForm(t, "oauth2/token", form(), nil))
	want401("public client with a forged assertion", a.postForm(t, "oauth2/token", form("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), nil))
	wantOAuthError(t, "basic and post at once",
		a.postForm(t, "oauth2/token", form("client_id", a.basic.ClientID, "client_secret", a.basicSecret), basicAuth(a.basic.ClientID, a.basicSecret)),
		http.StatusBadRequest, "invalid_request")
	wantOAuthError(t, "basic and assertion at once",
		a.postForm(t, "oauth2/token", form("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", "a.b.c"), basicAuth(a.basic.ClientID, a.basicSecret)),
		http.StatusBadRequest, "invalid_request")
	wantOAuthError(t, "basic client_id differs from the form's",
		a.postForm(t, "oauth2/token", form("client_id", a.postClient.ClientID), basicAuth(a.basic.ClientID, a.basicSecret)),
		http.StatusBadRequest, "invalid_request")
	// Control: the right secret gets past authentication to the grant (a bad code).
	wantOAuthError(t, "right secret, bad code", a.postForm(t, "oauth2/token", form(), basicAuth(a.basic.ClientID, a.basicSecret)), http.StatusBadRequest, "invalid_grant")
	wantOAuthError(t, "right post secret, bad code", a.postForm(t, "oauth2/token", form("client_id", a.postClient.ClientID, "client_secret", a.postSecr), nil), http.StatusBadRequest, "invalid_grant")
}

func (a *attackEnv) introspectionAuth(t *testing.T) {
	form := url.Values{"token": {a.tok.AccessToken}}
	withID := url.Values{"token": {a.tok.AccessToken}, "client_id": {a.e.client.ClientID}}
	for _, tc := range []struct {
		what string
		form url.Values
		edit func(*http.Request)
	}{
		{"no credentials", form, nil},
		{"wrong homeserver secret", form, bearer(homeserverSecret + "x")},
		{"empty bearer", form, bearer("")},
		{"the access token as bearer", form, bearer(a.tok.AccessToken)},
		{"homeserver secret as Basic", form, basicAuth(homeserverSecret, "")},
		{"wrong client secret", form, basicAuth(a.basic.ClientID, a.postSecr)},
		{"unknown client", form, basicAuth("nobody", "x")},
		{"public client without credentials", withID, nil},
	} {
		r := a.introspect(t, tc.form, tc.edit)
		wantOAuthError(t, tc.what, r, http.StatusUnauthorized, "invalid_client")
		if r.body["active"] != nil {
			t.Errorf("%s: the answer reveals the token: %s", tc.what, r.raw)
		}
	}
	// Control: a confidential client and the homeserver may introspect.
	if r := a.introspect(t, form, basicAuth(a.basic.ClientID, a.basicSecret)); r.status != http.StatusOK || r.body["active"] != true {
		t.Errorf("introspection by a confidential client: %d %s", r.status, r.raw)
	}
	if r := a.introspect(t, form, bearer(homeserverSecret)); r.status != http.StatusOK || r.body["active"] != true {
		t.Errorf("introspection by the homeserver: %d %s", r.status, r.raw)
	}
}

// flip changes the character at i of an alphanumeric token to another one.
func flip(token string, i int) string {
	c := byte('a')
	if token[i] == 'a' {
		c = 'b'
	}
	return token[:i] + string(c) + token[i+1:]
}

func (a *attackEnv) introspectionBadTokens(t *testing.T) {
	access, refresh := a.tok.AccessToken, a.tok.RefreshToken
	ended := a.session(t)
	if r := a.postForm(t, "oauth2/revoke", url.Values{"token": {ended.AccessToken}, "client_id": {a.e.client.ClientID}}, nil); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	tokens := map[string]string{
		"malformed":                    "not-a-token",
		"empty parts":                  "mat__",
		"too long":                     access + strings.Repeat("A", 100),
		"unicode":                      "mat_ÄÖÜ",
		"forged (random part flipped)": flip(access, 5),
		"forged (checksum flipped)":    flip(access, len(access)-1),
		"forged refresh":               flip(refresh, 10),
		"wrong prefix":                 "mar" + access[3:],
		"compat prefix":                "mct" + access[3:],
		"unknown prefix":               "xyz" + access[3:],
		"upper-case prefix":            strings.ToUpper(access[:3]) + access[3:],
		"expired format (JWT)":         "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTAwMDAwMDAwMH0.c2lnbmF0dXJl",
		"expired format (Synapse)":     "syt_YWxpY2U_RxQBmQhIGwYfpwCyTpIR_0pQ9ab",
		"expired format (old length)":  "mat_" + access[4:20] + "_" + access[len(access)-6:],
		"unknown (well-formed)":        "mat_" + strings.Repeat("A", 30) + "_AAAAAA",
		"revoked access token":         ended.AccessToken,
		"revoked refresh token":        ended.RefreshToken,
	}
	for what, tok := range tokens {
		wantInactive(t, what, a.introspect(t, url.Values{"token": {tok}}, bearer(homeserverSecret)))
		wantInactive(t, what+" (client auth)", a.introspect(t, url.Values{"token": {tok}}, basicAuth(a.basic.ClientID, a.basicSecret)))
	}
	// And userinfo refuses every one of them.
	for what, tok := range tokens {
		req, _ := http.NewRequest(http.MethodGet, a.e.issuer+"oauth2/userinfo", nil)
		bearer(tok)(req)
		wantOAuthError(t, "userinfo with "+what, a.do(t, req), http.StatusUnauthorized, "invalid_token")
	}
	wantOAuthError(t, "introspection without token", a.introspect(t, url.Values{}, bearer(homeserverSecret)), http.StatusBadRequest, "invalid_request")
}

// ---- request bodies ----

func (a *attackEnv) tokenEndpointBodies(t *testing.T) {
	id := a.e.client.ClientID
	r := a.post(t, "oauth2/token", "application/json", `{"grant_type":"refresh_token","refresh_token":"x","client_id":"`+id+`"}`, nil)
	wantOAuthError(t, "JSON body", r, http.StatusBadRequest, "invalid_request")
	r = a.post(t, "oauth2/token", "", "grant_type=refresh_token&client_id="+id, nil)
	wantOAuthError(t, "no Content-Type", r, http.StatusBadRequest, "invalid_request")
	r = a.post(t, "oauth2/token", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nrefresh_token\r\n--x--\r\n", nil)
	wantOAuthError(t, "multipart body", r, http.StatusBadRequest, "invalid_request")

	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(method, a.e.issuer+"oauth2/token?grant_type=refresh_token&client_id="+id, nil)
		r := a.do(t, req)
		wantOAuthError(t, method, r, http.StatusMethodNotAllowed, "invalid_request")
		if !strings.Contains(r.header.Get("Allow"), "POST") {
			t.Errorf("%s: 405 without Allow: POST", method)
		}
	}
	for _, path := range []string{"oauth2/introspect", "oauth2/revoke"} {
		req, _ := http.NewRequest(http.MethodGet, a.e.issuer+path, nil)
		wantOAuthError(t, "GET "+path, a.do(t, req), http.StatusMethodNotAllowed, "invalid_request")
	}

	big := "grant_type=refresh_token&client_id=" + id + "&refresh_token=" + strings.Repeat("a", 100<<10)
	wantOAuthError(t, "100 KiB body", a.post(t, "oauth2/token", "application/x-www-form-urlencoded", big, nil), http.StatusBadRequest, "invalid_request")
	wantOAuthError(t, "100 KiB body at introspection", a.post(t, "oauth2/introspect", "application/x-www-form-urlencoded", "token="+strings.Repeat("a", 100<<10), bearer(homeserverSecret)), http.StatusBadRequest, "invalid_request")

	r = a.post(t, "oauth2/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&grant_type=authorization_code&client_id="+id, nil)
	wantOAuthError(t, "repeated grant_type", r, http.StatusBadRequest, "invalid_request")
	r = a.post(t, "oauth2/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&client_id="+id+"&client_id="+a.other.ClientID, nil)
	wantOAuthError(t, "repeated client_id", r, http.StatusBadRequest, "invalid_request")
	r = a.post(t, "oauth2/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&client_id="+id+"&refresh_token=a&refresh_token=b", nil)
	wantOAuthError(t, "repeated refresh_token", r, http.StatusBadRequest, "invalid_request")
	r = a.post(t, "oauth2/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&client_id="+id, func(r *http.Request) { r.URL.RawQuery = "client_id=" + a.other.ClientID })
	if r.status >= 500 || r.status == http.StatusOK {
		t.Errorf("client_id in the query and the body: %d %s", r.status, r.raw)
	}

	for _, body := range []string{"grant_type=%zz&client_id=" + id, "grant_type=refresh_token&client_id=" + id + "&refresh_token=%", "%%%", "grant_type=refresh_token;client_id=" + id} {
		wantOAuthError(t, "garbage "+body, a.post(t, "oauth2/token", "application/x-www-form-urlencoded", body, nil), http.StatusBadRequest, "invalid_request")
	}

	wantOAuthError(t, "missing grant_type", a.postForm(t, "oauth2/token", url.Values{"client_id": {id}}, nil), http.StatusBadRequest, "invalid_request")
	wantOAuthError(t, "empty grant_type", a.postForm(t, "oauth2/token", url.Values{"client_id": {id}, "grant_type": {""}}, nil), http.StatusBadRequest, "invalid_request")
	for _, gt := range []string{"password", "implicit", "AUTHORIZATION_CODE", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange", "authorization_code "} {
		wantOAuthError(t, "grant_type "+gt, a.postForm(t, "oauth2/token", url.Values{"client_id": {id}, "grant_type": {gt}}, nil), http.StatusBadRequest, "unsupported_grant_type")
	}
	// A public client may not use client_credentials.
	wantOAuthError(t, "client_credentials for a public client", a.postForm(t, "oauth2/token", url.Values{"client_id": {id}, "grant_type": {"client_credentials"}}, nil), http.StatusBadRequest, "unauthorized_client")
	wantOAuthError(t, "authorization_code without code", a.postForm(t, "oauth2/token", url.Values{"client_id": {id}, "grant_type": {"authorization_code"}}, nil), http.StatusBadRequest, "invalid_request")
	wantOAuthError(t, "refresh_token without token", a.postForm(t, "oauth2/token", url.Values{"client_id": {id}, "grant_type": {"refresh_token"}}, nil), http.StatusBadRequest, "invalid_request")
}

func (a *attackEnv) registrationBodies(t *testing.T) {
	for _, tc := range []struct{ what, contentType, body string }{
		{"text body", "text/plain", "hello"},
		{"form body", "application/x-www-form-urlencoded", "client_name=x&redirect_uris=http%3A%2F%2F127.0.0.1%2Fcb"},
		{"no Content-Type", "", `{"client_uri":"https://client.example.com/"}`},
		{"JSON label, not JSON", "application/json", "not json"},
		{"truncated JSON", "application/json", `{"client_uri":"https://client.example.com/"`},
		{"JSON array", "application/json", `[]`},
		{"JSON null", "application/json", `null`},
		{"JSON string", "application/json", `"x"`},
		{"empty body", "application/json", ``},
		{"redirect_uris a string", "application/json", `{"client_uri":"https://client.example.com/","application_type":"native","redirect_uris":"http://127.0.0.1/callback"}`},
		{"redirect_uris numbers", "application/json", `{"client_uri":"https://client.example.com/","application_type":"native","redirect_uris":[1,2]}`},
		{"client_name a number", "application/json", `{"client_uri":"https://client.example.com/","client_name":42,"application_type":"native","redirect_uris":["http://127.0.0.1/callback"]}`},
		{"application_type a list", "application/json", `{"client_uri":"https://client.example.com/","application_type":["native"],"redirect_uris":["http://127.0.0.1/callback"]}`},
		{"grant_types an object", "application/json", `{"client_uri":"https://client.example.com/","application_type":"native","grant_types":{"a":1},"redirect_uris":["http://127.0.0.1/callback"]}`},
		{"client_uri a bool", "application/json", `{"client_uri":true,"application_type":"native","redirect_uris":["http://127.0.0.1/callback"]}`},
		{"jwks a string", "application/json", `{"client_uri":"https://client.example.com/","token_endpoint_auth_method":"private_key_jwt","jwks":"{}","redirect_uris":["https://client.example.com/cb"]}`},
		{"unknown auth method", "application/json", `{"client_uri":"https://client.example.com/","token_endpoint_auth_method":"magic","redirect_uris":["https://client.example.com/cb"]}`},
		{"implicit response type", "application/json", `{"client_uri":"https://client.example.com/","response_types":["token"],"redirect_uris":["https://client.example.com/cb"]}`},
	} {
		r := a.post(t, "oauth2/registration", tc.contentType, tc.body, nil)
		wantOAuthError(t, tc.what, r, http.StatusBadRequest, "invalid_client_metadata")
	}
	big := `{"client_uri":"https://client.example.com/","client_name":"` + strings.Repeat("a", 100<<10) + `"}`
	r := a.post(t, "oauth2/registration", "application/json", big, nil)
	if r.status != http.StatusBadRequest || r.body["error"] == nil {
		t.Errorf("100 KiB registration: %d %s", r.status, r.raw)
	}
	req, _ := http.NewRequest(http.MethodGet, a.e.issuer+"oauth2/registration", nil)
	wantOAuthError(t, "GET registration", a.do(t, req), http.StatusMethodNotAllowed, "invalid_request")
}

// ---- revocation ----

func (a *attackEnv) revocation(t *testing.T) {
	revoke := func(what string, form url.Values, edit func(*http.Request)) reply {
		t.Helper()
		return a.postForm(t, "oauth2/revoke", form, edit)
	}
	for what, tok := range map[string]string{
		"unknown well-formed": "mat_" + strings.Repeat("B", 30) + "_BBBBBB",
		"forged":              flip(a.tok.AccessToken, 7),
		"garbage":             "garbage!",
		"very long":           strings.Repeat("x", 4096),
	} {
		r := revoke(what, url.Values{"token": {tok}, "client_id": {a.e.client.ClientID}}, nil)
		if r.status != http.StatusOK {
			t.Errorf("revoke %s: %d %s; want 200", what, r.status, r.raw)
		}
	}
	// Another client may not revoke the session.
	for _, tok := range []string{a.tok.AccessToken, a.tok.RefreshToken} {
		r := revoke("another public client", url.Values{"token": {tok}, "client_id": {a.other.ClientID}}, nil)
		wantOAuthError(t, "another public client revokes", r, http.StatusBadRequest, "unauthorized_client")
		r = revoke("another confidential client", url.Values{"token": {tok}}, basicAuth(a.basic.ClientID, a.basicSecret))
		wantOAuthError(t, "another confidential client revokes", r, http.StatusBadRequest, "unauthorized_client")
	}
	if got := a.e.introspect(t, a.tok.AccessToken); got["active"] != true {
		t.Fatalf("the token did not survive another client's revocation: %v", got)
	}
	// Without (valid) client authentication nothing is revoked.
	wantOAuthError(t, "revoke without client", revoke("no client", url.Values{"token": {a.tok.AccessToken}}, nil), http.StatusUnauthorized, "invalid_client")
	wantOAuthError(t, "revoke with a wrong secret", revoke("wrong secret", url.Values{"token": {a.tok.AccessToken}}, basicAuth(a.basic.ClientID, "nope")), http.StatusUnauthorized, "invalid_client")
	wantOAuthError(t, "revoke without token", revoke("no token", url.Values{"client_id": {a.e.client.ClientID}}, nil), http.StatusBadRequest, "invalid_request")
	if got := a.e.introspect(t, a.tok.AccessToken); got["active"] != true {
		t.Fatalf("the token did not survive unauthenticated revocations: %v", got)
	}
}

// ---- discovery ----

func (a *attackEnv) discovery(t *testing.T) {
	for _, path := range []string{".well-known/openid-configuration", ".well-known/oauth-authorization-server"} {
		req, _ := http.NewRequest(http.MethodGet, a.e.issuer+path, nil)
		r := a.do(t, req)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d", path, r.status)
		}
		var doc map[string]any
		dec := json.NewDecoder(bytes.NewReader([]byte(r.raw)))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		strs := func(k string) []string {
			var out []string
			list, ok := doc[k].([]any)
			if !ok {
				t.Errorf("%s: %s is not a list: %v", path, k, doc[k])
			}
			for _, v := range list {
				s, _ := v.(string)
				out = append(out, s)
			}
			return out
		}
		for k, want := range map[string]string{
			"issuer":                 a.e.issuer,
			"authorization_endpoint": a.e.issuer + "authorize",
			"token_endpoint":         a.e.issuer + "oauth2/token",
			"registration_endpoint":  a.e.issuer + "oauth2/registration",
			"introspection_endpoint": a.e.issuer + "oauth2/introspect",
			"revocation_endpoint":    a.e.issuer + "oauth2/revoke",
			"userinfo_endpoint":      a.e.issuer + "oauth2/userinfo",
			"jwks_uri":               a.e.issuer + "oauth2/keys.json",
			"account_management_uri": a.e.issuer + "account",
		} {
			if doc[k] != want {
				t.Errorf("%s: %s = %v, want %s", path, k, doc[k], want)
			}
		}
		if got := strs("code_challenge_methods_supported"); !slices.Equal(got, []string{"S256"}) {
			t.Errorf("%s: code_challenge_methods_supported = %v", path, got)
		}
		if got := strs("response_types_supported"); !slices.Equal(got, []string{"code"}) {
			t.Errorf("%s: response_types_supported = %v", path, got)
		}
		if got := strs("response_modes_supported"); len(got) != 2 || !slices.Contains(got, "query") || !slices.Contains(got, "fragment") {
			t.Errorf("%s: response_modes_supported = %v", path, got)
		}
		if got := strs("grant_types_supported"); !slices.Contains(got, "authorization_code") || !slices.Contains(got, "refresh_token") || slices.Contains(got, "implicit") || slices.Contains(got, "password") {
			t.Errorf("%s: grant_types_supported = %v", path, got)
		}
		if got := strs("prompt_values_supported"); !slices.Contains(got, "create") {
			t.Errorf("%s: prompt_values_supported = %v", path, got)
		}
		if got := strs("introspection_endpoint_auth_methods_supported"); slices.Contains(got, "none") || len(got) == 0 {
			t.Errorf("%s: introspection_endpoint_auth_methods_supported = %v", path, got)
		}
		if got := strs("subject_types_supported"); len(got) == 0 {
			t.Errorf("%s: subject_types_supported is empty", path)
		}
		if got := strs("id_token_signing_alg_values_supported"); !slices.Contains(got, "RS256") {
			t.Errorf("%s: id_token_signing_alg_values_supported = %v", path, got)
		}
		if doc["authorization_response_iss_parameter_supported"] != true {
			t.Errorf("%s: authorization_response_iss_parameter_supported = %v", path, doc["authorization_response_iss_parameter_supported"])
		}
	}
}
