package inprocess

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"gatehouse.dev/platform/ids"
	"gatehouse.dev/services/authorize"
	"gatehouse.dev/services/token"
)

// The client_credentials grant gives a confidential client an access token
// for itself (no user, no refresh token), whichever secret method it uses,
// with the scope it registered.
func TestClientCredentialsGrant(t *testing.T) {
	st := newStack(t)
	for _, method := range []string{"client_secret_basic", "client_secret_post"} {
		t.Run(method, func(t *testing.T) {
			c := st.register(t, map[string]any{
				"client_name": "Stats", "client_uri": "https://stats.example.com/", "application_type": "web",
				"token_endpoint_auth_method": method, "grant_types": []string{"client_credentials"}, "scope": "read:stats write:stats",
			})
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {"write:stats  read:stats"}}
			var auth func(*http.Request)
			if method == "client_secret_basic" {
				auth = basicAuth(c.id, c.secret)
			} else {
				form.Set("client_id", c.id)
				form.Set("client_secret", c.secret)
			}
			tok := st.tokenRequest(t, form, auth).tokens(t, method)
			if tok.refresh != "" || tok.idToken != "" || tok.scope != "write:stats read:stats" || !strings.HasPrefix(tok.access, "mat_") {
				t.Fatalf("client_credentials response: %+v", tok)
			}
			got := st.wantActive(t, "client token", tok.access, true)
			if got["client_id"] != c.id || got["sub"] != nil || got["username"] != nil || got["device_id"] != nil {
				t.Fatalf("introspection of a client's own token: %v", got)
			}
		})
	}
}

// Issue 9, scopes only by entitlement: a client that registered itself gets
// no admin scope for itself, whatever it registered; a client the
// configuration names as an admin client does (regression: any client got
// any scope, urn:synapse:admin:* included).
func TestClientCredentialsAdminScopes(t *testing.T) {
	const adminID, adminSecret = "synapse-admin-tool", "the admin tool's secret, long enough"
	st := newStackWith(t, func(c *authorize.Config) {
		c.StaticClients = append(c.StaticClients, authorize.StaticClient{
			ID: adminID, Secret: adminSecret, AuthMethod: "client_secret_basic", Name: "Admin tool",
			GrantTypes: []string{"client_credentials"}, Scope: "read:stats",
		})
	}, func(c *token.Config) { c.AdminClients = []string{adminID} })
	self := st.register(t, map[string]any{
		"client_name": "Self", "client_uri": "https://self.example.com/", "application_type": "web",
		"grant_types": []string{"client_credentials"}, "scope": "urn:synapse:admin:* urn:mas:admin read:stats",
	})
	ask := func(scope string, auth func(*http.Request)) reply {
		return st.tokenRequest(t, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, auth)
	}
	for _, scope := range []string{"urn:synapse:admin:*", "urn:mas:admin", "urn:gatehouse:admin", "read:stats urn:synapse:admin:*"} {
		ask(scope, basicAuth(self.id, self.secret)).wantOAuthError(t, "a self-registered client asking "+scope, http.StatusBadRequest, "invalid_scope")
	}
	if tok := ask("read:stats", basicAuth(self.id, self.secret)).tokens(t, "a registered scope"); tok.scope != "read:stats" {
		t.Fatalf("registered scope: %+v", tok)
	}

	tok := ask("urn:synapse:admin:*", basicAuth(adminID, adminSecret)).tokens(t, "the admin client")
	if tok.scope != "urn:synapse:admin:*" {
		t.Fatalf("admin client's scope: %+v", tok)
	}
	if got := st.wantActive(t, "admin client's token", tok.access, true); got["scope"] != "urn:synapse:admin:*" || got["client_id"] != adminID {
		t.Fatalf("introspection: %v", got)
	}
	if tok := ask("urn:gatehouse:admin read:stats", basicAuth(adminID, adminSecret)).tokens(t, "the admin client"); tok.scope != "urn:gatehouse:admin read:stats" {
		t.Fatalf("admin client's scope: %+v", tok)
	}
	for _, scope := range []string{"write:stats", "openid", "urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*", "email"} {
		ask(scope, basicAuth(adminID, adminSecret)).wantOAuthError(t, "the admin client asking "+scope, http.StatusBadRequest, "invalid_scope")
	}
}

// Bad client_credentials requests are refused with the RFC's errors.
func TestClientCredentialsGrantBadInput(t *testing.T) {
	st := newStack(t)
	c := st.confidentialClient(t, "client_secret_basic", "client_credentials")
	codeOnly := st.confidentialClient(t, "client_secret_basic", "authorization_code")
	public := st.publicClient(t)
	form := func(scope string) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}}
		if scope != "" {
			f.Set("scope", scope)
		}
		return f
	}
	tests := []struct {
		name   string
		form   url.Values
		edit   func(*http.Request)
		status int
		code   string
	}{
		{"wrong secret", form(""), basicAuth(c.id, c.secret[:len(c.secret)-1]), http.StatusUnauthorized, "invalid_client"},
		{"empty secret", form(""), basicAuth(c.id, ""), http.StatusUnauthorized, "invalid_client"},
		{"another client's secret", form(""), basicAuth(c.id, codeOnly.secret), http.StatusUnauthorized, "invalid_client"},
		{"unknown client", form(""), basicAuth("no-such-client", "x"), http.StatusUnauthorized, "invalid_client"},
		{"no authentication", form(""), nil, http.StatusUnauthorized, "invalid_client"},
		{"a Matrix user scope", form("urn:matrix:client:api:*"), basicAuth(c.id, c.secret), http.StatusBadRequest, "invalid_scope"},
		{"openid", form("openid"), basicAuth(c.id, c.secret), http.StatusBadRequest, "invalid_scope"},
		{"an unregistered scope", form("extra"), basicAuth(c.id, c.secret), http.StatusBadRequest, "invalid_scope"},
		{"a client not registered for the grant", form(""), basicAuth(codeOnly.id, codeOnly.secret), http.StatusBadRequest, "unauthorized_client"},
		{"a public client", url.Values{"grant_type": {"client_credentials"}, "client_id": {public.id}}, nil, http.StatusBadRequest, "unauthorized_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st.tokenRequest(t, tt.form, tt.edit).wantOAuthError(t, tt.name, tt.status, tt.code)
		})
	}
}

// Client authentication by signed assertions (RFC 7523): client_secret_jwt
// and private_key_jwt each work once per assertion, for this token endpoint
// only, signed by the client's own key.
func TestClientAssertionAuthentication(t *testing.T) {
	st := newStack(t)
	tokenURL := st.issuer + "oauth2/token"
	ec, jwks := clientKey(t)
	keyClient := st.register(t, map[string]any{"client_uri": "https://jwt.example.com/", "application_type": "web",
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks})
	secretClient := st.register(t, map[string]any{"client_uri": "https://jwt.example.com/", "application_type": "web",
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "HS256"})
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	withAssertion := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	}
	for _, tt := range []struct {
		name string
		c    client
		key  any
		alg  jose.SignatureAlgorithm
	}{
		{"private_key_jwt", keyClient, ec, jose.ES256},
		{"client_secret_jwt", secretClient, []byte(secretClient.secret), jose.HS256},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := assertion(t, tt.key, tt.alg, tt.c.id, tokenURL, time.Minute)
			st.tokenRequest(t, withAssertion(a), nil).tokens(t, "first use")
			st.tokenRequest(t, withAssertion(a), nil).wantOAuthError(t, "replayed assertion", http.StatusUnauthorized, "invalid_client")
			st.tokenRequest(t, withAssertion(assertion(t, tt.key, tt.alg, tt.c.id, "https://elsewhere.example/token", time.Minute)), nil).
				wantOAuthError(t, "another audience", http.StatusUnauthorized, "invalid_client")
			st.tokenRequest(t, withAssertion(assertion(t, tt.key, tt.alg, tt.c.id, tokenURL, -time.Minute)), nil).
				wantOAuthError(t, "expired assertion", http.StatusUnauthorized, "invalid_client")
			wrongType := withAssertion(assertion(t, tt.key, tt.alg, tt.c.id, tokenURL, time.Minute))
			wrongType.Set("client_assertion_type", "urn:example:other")
			st.tokenRequest(t, wrongType, nil).wantOAuthError(t, "wrong assertion type", http.StatusBadRequest, "invalid_request")
			named := withAssertion(assertion(t, tt.key, tt.alg, tt.c.id, tokenURL, time.Minute))
			named.Set("client_id", "someone-else")
			st.tokenRequest(t, named, nil).wantOAuthError(t, "client_id differing from the subject", http.StatusBadRequest, "invalid_request")
		})
	}
	st.tokenRequest(t, withAssertion(assertion(t, other, jose.ES256, keyClient.id, tokenURL, time.Minute)), nil).
		wantOAuthError(t, "signed by another key", http.StatusUnauthorized, "invalid_client")
	st.tokenRequest(t, withAssertion("not.a.jwt"), nil).wantOAuthError(t, "unreadable assertion", http.StatusUnauthorized, "invalid_client")
	st.tokenRequest(t, url.Values{"grant_type": {"client_credentials"}}, basicAuth(keyClient.id, "guess")).
		wantOAuthError(t, "a secret for a private_key_jwt client", http.StatusUnauthorized, "invalid_client")
}

// clientKey makes a client's P-256 key pair and its public JWK Set, as
// client registration takes it (jwks).
func clientKey(t *testing.T) (*ecdsa.PrivateKey, map[string]any) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	var jwks map[string]any
	if err := json.Unmarshal(raw, &jwks); err != nil {
		t.Fatal(err)
	}
	return key, jwks
}

// assertion signs an RFC 7523 client assertion valid for ttl from now (in the
// past when ttl is negative).
func assertion(t *testing.T, key any, alg jose.SignatureAlgorithm, clientID, audience string, ttl time.Duration) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	issued := now
	if ttl < 0 {
		issued = now.Add(2 * ttl)
	}
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: jwt.Audience{audience}, ID: ids.Token(24),
		IssuedAt: jwt.NewNumericDate(issued), Expiry: jwt.NewNumericDate(now.Add(ttl)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
