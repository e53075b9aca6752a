package inprocess

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// The authorization_code grant with PKCE: tokens of the documented shapes,
// an ID token signed by a published key with the user's claims, and a
// session the homeserver sees.
func TestAuthorizationCodeGrant(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	p := newPKCE()
	code := st.code(t, c, alice, p, url.Values{"nonce": {"nonce-1"}})
	tok := st.exchange(t, c, code, p)

	if !strings.HasPrefix(tok.access, "mat_") || !strings.HasPrefix(tok.refresh, "mar_") || tok.idToken == "" ||
		tok.expiresIn < 250 || tok.expiresIn > 300 {
		t.Fatalf("token response: %+v", tok)
	}
	device := ""
	for _, s := range strings.Fields(tok.scope) {
		if d, ok := strings.CutPrefix(s, "urn:matrix:client:device:"); ok {
			device = d
		}
	}
	if len(device) < 10 || !strings.Contains(tok.scope, "openid") || !strings.Contains(tok.scope, "urn:matrix:client:api:*") {
		t.Fatalf("granted scope %q", tok.scope)
	}

	claims := verifyIDToken(t, st, tok.idToken)
	sum := sha256.Sum256([]byte(tok.access))
	if claims.Issuer != st.issuer || claims.Subject != alice.GetId() || !claims.Audience.Contains(c.id) || claims.AuthorizedParty != c.id ||
		claims.Nonce != "nonce-1" || claims.AccessTokenHash != base64.RawURLEncoding.EncodeToString(sum[:16]) ||
		claims.Username != "alice" || claims.Expiry.Time().Before(time.Now()) {
		t.Fatalf("ID token claims: %+v", claims)
	}

	got := st.wantActive(t, "access token", tok.access, true)
	if got["sub"] != alice.GetId() || got["username"] != "alice" || got["client_id"] != c.id || got["device_id"] != device ||
		got["token_type"] != "access_token" {
		t.Fatalf("introspection: %v", got)
	}
	sessions, err := st.tokens.ListSessions(context.Background(), &tokenv1.ListSessionsRequest{UserId: alice.GetId()})
	if err != nil || len(sessions.GetSessions()) != 1 || sessions.GetSessions()[0].GetKind() != "oauth" ||
		sessions.GetSessions()[0].GetDeviceId() != device || sessions.GetSessions()[0].GetClientId() != c.id {
		t.Fatalf("ListSessions: %v, %v", sessions, err)
	}
}

// idClaims are the ID token's claims the tests look at.
type idClaims struct {
	jwt.Claims
	AuthorizedParty string `json:"azp"`
	Nonce           string `json:"nonce"`
	AccessTokenHash string `json:"at_hash"`
	Username        string `json:"username"`
}

// verifyIDToken checks raw's signature against the published key set and
// returns its claims.
func verifyIDToken(t *testing.T, st *stack, raw string) idClaims {
	t.Helper()
	resp, err := http.Get(st.issuer + "oauth2/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("keys.json: %v, %d keys", err, len(set.Keys))
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var c idClaims
	if err := tok.Claims(set, &c); err != nil {
		t.Fatalf("ID token signature: %v", err)
	}
	return c
}

// A code is exchanged once, by its client, at its redirect URI, with its
// verifier; anything else is refused with the OAuth error RFC 6749 §5.2 names,
// and a second use ends the session the first one started.
func TestAuthorizationCodeGrantBadInput(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	other := st.publicClient(t)
	p := newPKCE()
	code := st.code(t, c, alice, p, nil)
	good := func() url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect},
			"client_id": {c.id}, "code_verifier": {p.verifier}}
	}
	with := func(edit func(url.Values)) url.Values { f := good(); edit(f); return f }
	tests := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"no code", with(func(f url.Values) { f.Del("code") }), http.StatusBadRequest, "invalid_request"},
		{"unknown code", with(func(f url.Values) { f.Set("code", code+"x") }), http.StatusBadRequest, "invalid_grant"},
		{"no verifier", with(func(f url.Values) { f.Del("code_verifier") }), http.StatusBadRequest, "invalid_grant"},
		{"wrong verifier", with(func(f url.Values) { f.Set("code_verifier", newPKCE().verifier) }), http.StatusBadRequest, "invalid_grant"},
		{"the challenge as verifier", with(func(f url.Values) { f.Set("code_verifier", p.challenge) }), http.StatusBadRequest, "invalid_grant"},
		{"another redirect URI", with(func(f url.Values) { f.Set("redirect_uri", "http://127.0.0.1:9/callback") }), http.StatusBadRequest, "invalid_grant"},
		{"no redirect URI", with(func(f url.Values) { f.Del("redirect_uri") }), http.StatusBadRequest, "invalid_grant"},
		{"another client", with(func(f url.Values) { f.Set("client_id", other.id) }), http.StatusBadRequest, "invalid_grant"},
		{"unknown client", with(func(f url.Values) { f.Set("client_id", "01HZZZZZZZZZZZZZZZZZZZZZZZ") }), http.StatusUnauthorized, "invalid_client"},
		{"no client", with(func(f url.Values) { f.Del("client_id") }), http.StatusUnauthorized, "invalid_client"},
		{"no grant type", with(func(f url.Values) { f.Del("grant_type") }), http.StatusBadRequest, "invalid_request"},
		{"unknown grant type", with(func(f url.Values) { f.Set("grant_type", "password") }), http.StatusBadRequest, "unsupported_grant_type"},
		{"a grant the client may not use", with(func(f url.Values) { f.Set("grant_type", "client_credentials") }), http.StatusBadRequest, "unauthorized_client"},
		{"a repeated parameter", with(func(f url.Values) { f.Add("code", code) }), http.StatusBadRequest, "invalid_request"},
		{"a client secret for a public client", with(func(f url.Values) { f.Set("client_secret", "guess") }), http.StatusUnauthorized, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st.tokenRequest(t, tt.form, nil).wantOAuthError(t, tt.name, tt.status, tt.code)
		})
	}
	// Requests that are not forms at all.
	body := good().Encode()
	st.post(t, "oauth2/token", "application/json", `{"grant_type":"authorization_code"}`, nil).wantOAuthError(t, "JSON body", http.StatusBadRequest, "invalid_request")
	st.post(t, "oauth2/token", "", body, nil).wantOAuthError(t, "no content type", http.StatusBadRequest, "invalid_request")
	st.post(t, "oauth2/token", "application/x-www-form-urlencoded", body+"&pad="+strings.Repeat("a", 65<<10), nil).
		wantOAuthError(t, "body over 64 KiB", http.StatusBadRequest, "invalid_request")
	st.post(t, "oauth2/token", "application/x-www-form-urlencoded", "code=%zz", nil).wantOAuthError(t, "bad form encoding", http.StatusBadRequest, "invalid_request")
	get, _ := http.NewRequest(http.MethodGet, st.issuer+"oauth2/token?"+body, nil)
	r := st.do(t, get)
	r.wantOAuthError(t, "GET", http.StatusMethodNotAllowed, "invalid_request")
	if r.header.Get("Allow") != "POST" {
		t.Fatalf("GET: Allow %q", r.header.Get("Allow"))
	}

	// None of that used the code up: the rightful exchange works, once.
	tok := st.tokenRequest(t, good(), nil).tokens(t, "rightful exchange")
	st.tokenRequest(t, good(), nil).wantOAuthError(t, "second use of the code", http.StatusBadRequest, "invalid_grant")
	// The replay ended the session the first use started (RFC 6749 §4.1.2).
	st.wantActive(t, "access token of a replayed code", tok.access, false)
	st.wantActive(t, "refresh token of a replayed code", tok.refresh, false)
	st.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.refresh}, "client_id": {c.id}}, nil).
		wantOAuthError(t, "refresh of a replayed code's session", http.StatusBadRequest, "invalid_grant")
}

// A confidential client authenticates at the token endpoint by the method it
// registered, and by that method only.
func TestAuthorizationCodeGrantConfidentialClient(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.confidentialClient(t, "client_secret_basic", "authorization_code", "refresh_token")
	exchange := func(edit func(*http.Request), extra url.Values) reply {
		p := newPKCE()
		form := url.Values{"grant_type": {"authorization_code"}, "code": {st.code(t, c, alice, p, nil)}, "redirect_uri": {c.redirect}, "code_verifier": {p.verifier}}
		for k, v := range extra {
			form[k] = v
		}
		return st.tokenRequest(t, form, edit)
	}
	tok := exchange(basicAuth(c.id, c.secret), nil).tokens(t, "client_secret_basic")
	st.wantActive(t, "confidential client's token", tok.access, true)

	exchange(basicAuth(c.id, c.secret+"x"), nil).wantOAuthError(t, "wrong secret", http.StatusUnauthorized, "invalid_client")
	exchange(nil, url.Values{"client_id": {c.id}}).wantOAuthError(t, "no secret", http.StatusUnauthorized, "invalid_client")
	exchange(nil, url.Values{"client_id": {c.id}, "client_secret": {c.secret}}).wantOAuthError(t, "client_secret_post for a basic client", http.StatusUnauthorized, "invalid_client")
	exchange(basicAuth(c.id, c.secret), url.Values{"client_secret": {c.secret}}).wantOAuthError(t, "two methods at once", http.StatusBadRequest, "invalid_request")
	exchange(basicAuth(c.id, c.secret), url.Values{"client_id": {"someone-else"}}).wantOAuthError(t, "client_id differing from Basic", http.StatusBadRequest, "invalid_request")
	exchange(func(r *http.Request) { r.Header.Set("Authorization", "Basic %%%") }, url.Values{"client_id": {c.id}}).
		wantOAuthError(t, "malformed Basic header", http.StatusUnauthorized, "invalid_client")
}
