package inprocess

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// userinfo answers sub and username for a live access token, and the email
// address when the email scope was granted; by GET and POST.
func TestUserinfo(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice", func(r *accountsv1.RegisterRequest) { r.Email, r.SkipVerification = "alice@example.org", true })
	c := st.publicClient(t)
	tok := st.session(t, c, alice)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, st.issuer+"oauth2/userinfo", nil)
		bearer(tok.access)(req)
		r := st.do(t, req)
		if r.status != http.StatusOK || r.body["sub"] != alice.GetId() || r.body["username"] != "alice" || r.body["email"] != nil {
			t.Fatalf("%s userinfo: %d %s", method, r.status, r.raw)
		}
	}
	p := newPKCE()
	withEmail := st.exchange(t, c, st.code(t, c, alice, p, url.Values{"scope": {"openid email urn:matrix:client:api:*"}}), p)
	req, _ := http.NewRequest(http.MethodGet, st.issuer+"oauth2/userinfo", nil)
	bearer(withEmail.access)(req)
	if r := st.do(t, req); r.status != http.StatusOK || r.body["email"] != "alice@example.org" || r.body["email_verified"] != false {
		t.Fatalf("userinfo with the email scope: %d %s", r.status, r.raw)
	}
}

// userinfo refuses anything but a live user access token with 401
// invalid_token and a WWW-Authenticate challenge (RFC 6750 §3).
func TestUserinfoBadInput(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	tok := st.session(t, c, alice)
	confidential := st.confidentialClient(t, "client_secret_basic", "client_credentials")
	cc := st.tokenRequest(t, url.Values{"grant_type": {"client_credentials"}}, basicAuth(confidential.id, confidential.secret)).tokens(t, "client_credentials")
	ended := st.session(t, c, alice)
	if r := st.postForm(t, "oauth2/revoke", url.Values{"token": {ended.access}, "client_id": {c.id}}, nil); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}

	for _, tt := range []struct{ name, authorization string }{
		{"no token", ""},
		{"an empty bearer", "Bearer "},
		{"another scheme", "Basic " + tok.access},
		{"a refresh token", "Bearer " + tok.refresh},
		{"a client's own token", "Bearer " + cc.access},
		{"a revoked token", "Bearer " + ended.access},
		{"a forged token", "Bearer " + flip(tok.access, 8)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, st.issuer+"oauth2/userinfo", nil)
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			r := st.do(t, req)
			r.wantOAuthError(t, tt.name, http.StatusUnauthorized, "invalid_token")
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	req, _ := http.NewRequest(http.MethodPut, st.issuer+"oauth2/userinfo", nil)
	bearer(tok.access)(req)
	st.do(t, req).wantOAuthError(t, "PUT", http.StatusMethodNotAllowed, "invalid_request")
}
