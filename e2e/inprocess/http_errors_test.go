package inprocess

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gatehouse.dev/services/token"
)

// errorCase is one request that must fail, and how.
type errorCase struct {
	name string
	req  func(t *testing.T) *http.Request
	// status and code: the answer, an OAuth error or a Matrix errcode.
	status int
	code   string
	// challenge is the WWW-Authenticate the answer must start with ("" none).
	challenge string
	// header names one more header the answer must have, with its value.
	header, value string
}

// check sends the request and checks the answer against the case.
func (tt errorCase) check(t *testing.T, st *stack) {
	t.Helper()
	r := st.do(t, tt.req(t))
	code := r.str("error")
	if strings.HasPrefix(tt.code, "M_") {
		code = r.str("errcode")
	}
	if r.status != tt.status || code != tt.code {
		t.Fatalf("%d %s, want %d %s", r.status, r.raw, tt.status, tt.code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: %v", r.header)
	}
	if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, tt.challenge) || (got == "") != (tt.challenge == "") {
		t.Errorf("WWW-Authenticate %q, want %q…", got, tt.challenge)
	}
	if tt.header != "" && r.header.Get(tt.header) != tt.value {
		t.Errorf("%s %q, want %q", tt.header, r.header.Get(tt.header), tt.value)
	}
}

// request builds a request to the public server.
func (st *stack) request(method, path, contentType, body string, edit ...func(*http.Request)) func(t *testing.T) *http.Request {
	return func(t *testing.T) *http.Request {
		req, err := http.NewRequest(method, st.issuer+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for _, f := range edit {
			f(req)
		}
		return req
	}
}

// Every endpoint of the token and authorize services answers a client's
// mistake with the status its RFC gives it — 400, 401 for invalid_client
// and invalid_token with a challenge in the scheme the client used, 405
// with Allow — and the Matrix API with the client-server API's.
func TestErrorStatusesFollowTheRFCs(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	web := st.confidentialClient(t, "client_secret_basic", "authorization_code", "refresh_token")
	cc := st.confidentialClient(t, "client_secret_basic", "client_credentials")
	public := st.publicClient(t)
	tok := st.session(t, public, alice)
	form := "application/x-www-form-urlencoded"
	enc := func(v url.Values) string { return v.Encode() }

	tests := []errorCase{
		// The token endpoint (RFC 6749 §5.2).
		{name: "token: no client", req: st.request("POST", "oauth2/token", form, enc(url.Values{"grant_type": {"client_credentials"}})),
			status: 401, code: "invalid_client", challenge: "Basic "},
		{name: "token: wrong Basic secret", req: st.request("POST", "oauth2/token", form, enc(url.Values{"grant_type": {"client_credentials"}}), basicAuth(cc.id, "wrong")),
			status: 401, code: "invalid_client", challenge: "Basic "},
		{name: "token: wrong posted secret", req: st.request("POST", "oauth2/token", form, enc(url.Values{"grant_type": {"client_credentials"}, "client_id": {cc.id}, "client_secret": {"wrong"}})),
			status: 401, code: "invalid_client", challenge: "Basic "},
		{name: "token: unknown client", req: st.request("POST", "oauth2/token", form, enc(url.Values{"grant_type": {"refresh_token"}, "client_id": {"nobody"}})),
			status: 401, code: "invalid_client", challenge: "Basic "},
		{name: "token: two methods", req: st.request("POST", "oauth2/token", form, enc(url.Values{"grant_type": {"client_credentials"}, "client_secret": {cc.secret}}), basicAuth(cc.id, cc.secret)),
			status: 400, code: "invalid_request"},
		{name: "token: GET", req: st.request("GET", "oauth2/token", "", ""), status: 405, code: "invalid_request", header: "Allow", value: "POST"},
		{name: "token: JSON", req: st.request("POST", "oauth2/token", "application/json", `{"grant_type":"client_credentials"}`), status: 400, code: "invalid_request"},
		{name: "token: no grant type", req: st.request("POST", "oauth2/token", form, "", basicAuth(cc.id, cc.secret)), status: 400, code: "invalid_request"},
		{name: "token: unknown grant type", req: st.request("POST", "oauth2/token", form, enc(url.Values{"grant_type": {"password"}}), basicAuth(cc.id, cc.secret)),
			status: 400, code: "unsupported_grant_type"},
		{name: "token: grant not registered", req: st.request("POST", "oauth2/token", form, enc(url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}), basicAuth(cc.id, cc.secret)),
			status: 400, code: "unauthorized_client"},
		{name: "token: unknown code", req: st.request("POST", "oauth2/token", form, enc(url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {web.redirect}}), basicAuth(web.id, web.secret)),
			status: 400, code: "invalid_grant"},
		{name: "token: another client's refresh token", req: st.request("POST", "oauth2/token", form, enc(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.refresh}}), basicAuth(web.id, web.secret)),
			status: 400, code: "invalid_grant"},
		{name: "token: scope beyond entitlement", req: st.request("POST", "oauth2/token", form, enc(url.Values{"grant_type": {"client_credentials"}, "scope": {"urn:synapse:admin:*"}}), basicAuth(cc.id, cc.secret)),
			status: 400, code: "invalid_scope"},
		// Introspection (RFC 7662 §2.3) and revocation (RFC 7009 §2.2.1).
		{name: "introspect: wrong homeserver secret", req: st.request("POST", "oauth2/introspect", form, enc(url.Values{"token": {tok.access}}), bearer("wrong")),
			status: 401, code: "invalid_client", challenge: "Bearer "},
		{name: "introspect: wrong client secret", req: st.request("POST", "oauth2/introspect", form, enc(url.Values{"token": {tok.access}}), basicAuth(cc.id, "wrong")),
			status: 401, code: "invalid_client", challenge: "Basic "},
		{name: "introspect: a public client", req: st.request("POST", "oauth2/introspect", form, enc(url.Values{"token": {tok.access}, "client_id": {public.id}})),
			status: 401, code: "invalid_client", challenge: "Basic "},
		{name: "introspect: no token", req: st.request("POST", "oauth2/introspect", form, "", bearer(homeserverSecret)), status: 400, code: "invalid_request"},
		{name: "introspect: GET", req: st.request("GET", "oauth2/introspect", "", "", bearer(homeserverSecret)), status: 405, code: "invalid_request", header: "Allow", value: "POST"},
		{name: "revoke: no client", req: st.request("POST", "oauth2/revoke", form, enc(url.Values{"token": {tok.access}})), status: 401, code: "invalid_client", challenge: "Basic "},
		{name: "revoke: another client's token", req: st.request("POST", "oauth2/revoke", form, enc(url.Values{"token": {tok.access}}), basicAuth(cc.id, cc.secret)),
			status: 400, code: "unauthorized_client"},
		{name: "revoke: no token", req: st.request("POST", "oauth2/revoke", form, "", basicAuth(cc.id, cc.secret)), status: 400, code: "invalid_request"},
		// Userinfo (RFC 6750 §3.1).
		{name: "userinfo: no token", req: st.request("GET", "oauth2/userinfo", "", ""), status: 401, code: "invalid_token", challenge: `Bearer realm="gatehouse"`},
		{name: "userinfo: a refresh token", req: st.request("GET", "oauth2/userinfo", "", "", bearer(tok.refresh)),
			status: 401, code: "invalid_token", challenge: `Bearer realm="gatehouse", error="invalid_token"`},
		{name: "userinfo: PUT", req: st.request("PUT", "oauth2/userinfo", "", "", bearer(tok.access)), status: 405, code: "invalid_request", header: "Allow", value: "GET, POST"},
		// Registration (RFC 7591 §3.2.2) and device authorization (RFC 8628 §3.2).
		{name: "registration: GET", req: st.request("GET", "oauth2/registration", "", ""), status: 405, code: "invalid_request", header: "Allow", value: "POST"},
		{name: "registration: not JSON", req: st.request("POST", "oauth2/registration", "text/plain", "x"), status: 400, code: "invalid_client_metadata"},
		{name: "registration: bad redirect", req: st.request("POST", "oauth2/registration", "application/json", `{"client_uri":"https://a.example/","redirect_uris":["http://a.example/cb"]}`),
			status: 400, code: "invalid_redirect_uri"},
		{name: "device: no client", req: st.request("POST", "oauth2/device", form, ""), status: 401, code: "invalid_client", challenge: "Basic "},
		{name: "device: wrong secret", req: st.request("POST", "oauth2/device", form, "", basicAuth(cc.id, "wrong")), status: 401, code: "invalid_client", challenge: "Basic "},
		{name: "device: grant not registered", req: st.request("POST", "oauth2/device", form, "", basicAuth(cc.id, cc.secret)), status: 400, code: "unauthorized_client"},
		{name: "device: GET", req: st.request("GET", "oauth2/device", "", ""), status: 405, code: "invalid_request", header: "Allow", value: "POST"},
		// The Matrix compatibility API.
		{name: "matrix: wrong method", req: st.request("PUT", "_matrix/client/v3/login", "", ""), status: 405, code: "M_UNRECOGNIZED", header: "Allow", value: "GET, OPTIONS, POST"},
		{name: "matrix: unknown version", req: st.request("GET", "_matrix/client/x9/login", "", ""), status: 404, code: "M_UNRECOGNIZED"},
		{name: "matrix: not JSON", req: st.request("POST", "_matrix/client/v3/login", "", "{"), status: 400, code: "M_NOT_JSON"},
		{name: "matrix: body too large", req: st.request("POST", "_matrix/client/v3/login", "", `{"x":"`+strings.Repeat("a", 70<<10)+`"}`), status: 413, code: "M_TOO_LARGE"},
		{name: "matrix: logout without a token", req: st.request("POST", "_matrix/client/v3/logout", "", "{}"), status: 401, code: "M_MISSING_TOKEN", challenge: "Bearer "},
		{name: "matrix: logout with an OAuth token", req: st.request("POST", "_matrix/client/v3/logout", "", "{}", bearer(tok.access)), status: 401, code: "M_UNKNOWN_TOKEN", challenge: "Bearer "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, st) })
	}
}

// The server's own faults are 503 with Retry-After when they may pass —
// never a 4xx, as if the client were wrong: here the token service cannot
// reach the services it asks.
func TestServerFaultsAre503(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	unseen := st.confidentialClient(t, "client_secret_basic", "client_credentials") // not in the token service's cache
	st.stopGRPC()
	form := "application/x-www-form-urlencoded"
	for _, tt := range []errorCase{
		{name: "token: clients cannot be checked", req: st.request("POST", "oauth2/token", form, url.Values{"grant_type": {"client_credentials"}}.Encode(), basicAuth(unseen.id, unseen.secret)),
			status: 503, code: "temporarily_unavailable", header: "Retry-After", value: "2"},
		{name: "matrix: passwords cannot be checked", req: st.request("POST", "_matrix/client/v3/login", "", mustJSON(t, password(alice.GetUsername(), nil))),
			status: 503, code: "M_UNKNOWN", header: "Retry-After", value: "2"},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, st) })
	}
}

// The token endpoint's grant table is what discovery announces and what
// clients may register: adding a grant in one place and not the other fails
// here.
func TestGrantTypesAgree(t *testing.T) {
	st := newStack(t)
	r := st.do(t, st.request("GET", ".well-known/openid-configuration", "", "")(t))
	var announced []string
	for _, g := range r.body["grant_types_supported"].([]any) {
		announced = append(announced, g.(string))
	}
	if strings.Join(announced, " ") != strings.Join(token.GrantTypes(), " ") {
		t.Fatalf("discovery announces %v, the token endpoint takes %v", announced, token.GrantTypes())
	}
	st.register(t, map[string]any{"client_uri": "https://a.example.com/", "application_type": "web", "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": token.GrantTypes(), "redirect_uris": []string{"https://a.example.com/cb"}, "response_types": []string{"code"}})
}
