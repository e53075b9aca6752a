package inprocess

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// Revocation (RFC 7009) of either token of a session ends the whole session
// (MSC4254); over gRPC too.
func TestRevocation(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	for _, which := range []string{"access", "refresh"} {
		t.Run(which, func(t *testing.T) {
			tok := st.session(t, c, alice)
			revoked := tok.access
			if which == "refresh" {
				revoked = tok.refresh
			}
			r := st.postForm(t, "oauth2/revoke", url.Values{"token": {revoked}, "client_id": {c.id}}, nil)
			if r.status != http.StatusOK || r.raw != "{}\n" && r.raw != "{}" {
				t.Fatalf("revoke: %d %q", r.status, r.raw)
			}
			st.wantActive(t, "access token", tok.access, false)
			st.wantActive(t, "refresh token", tok.refresh, false)
			st.refresh(t, c, tok.refresh).wantOAuthError(t, "refresh of a revoked session", http.StatusBadRequest, "invalid_grant")
			// Revoking again is still a success.
			if r := st.postForm(t, "oauth2/revoke", url.Values{"token": {revoked}, "client_id": {c.id}}, nil); r.status != http.StatusOK {
				t.Fatalf("second revocation: %d %s", r.status, r.raw)
			}
		})
	}
	t.Run("gRPC", func(t *testing.T) {
		tok := st.session(t, c, alice)
		if _, err := st.tokens.Revoke(context.Background(), &tokenv1.RevokeRequest{Token: tok.refresh}); err != nil {
			t.Fatal(err)
		}
		st.wantActive(t, "access token revoked over gRPC", tok.access, false)
		if _, err := st.tokens.Revoke(context.Background(), &tokenv1.RevokeRequest{Token: "not a token"}); err != nil {
			t.Fatalf("gRPC revocation of an unknown token: %v", err)
		}
		if _, err := st.tokens.Revoke(context.Background(), &tokenv1.RevokeRequest{}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("gRPC revocation without a token: %v", err)
		}
	})
}

// A client revokes only its own tokens and must authenticate; an unknown
// token is a success that changes nothing.
func TestRevocationBadInput(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	other := st.publicClient(t)
	confidential := st.confidentialClient(t, "client_secret_basic", "client_credentials")
	tok := st.session(t, c, alice)

	tests := []struct {
		name   string
		form   url.Values
		edit   func(*http.Request)
		status int
		code   string
	}{
		{"another public client", url.Values{"token": {tok.access}, "client_id": {other.id}}, nil, http.StatusBadRequest, "unauthorized_client"},
		{"another confidential client", url.Values{"token": {tok.refresh}}, basicAuth(confidential.id, confidential.secret), http.StatusBadRequest, "unauthorized_client"},
		{"a wrong client secret", url.Values{"token": {tok.access}}, basicAuth(confidential.id, "guess"), http.StatusUnauthorized, "invalid_client"},
		{"no client", url.Values{"token": {tok.access}}, nil, http.StatusUnauthorized, "invalid_client"},
		{"no token", url.Values{"client_id": {c.id}}, nil, http.StatusBadRequest, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st.postForm(t, "oauth2/revoke", tt.form, tt.edit).wantOAuthError(t, tt.name, tt.status, tt.code)
		})
	}
	for _, unknown := range []string{"not a token", flip(tok.access, len(tok.access)-1)} {
		if r := st.postForm(t, "oauth2/revoke", url.Values{"token": {unknown}, "client_id": {c.id}}, nil); r.status != http.StatusOK {
			t.Fatalf("revocation of %q: %d %s", unknown, r.status, r.raw)
		}
	}
	st.post(t, "oauth2/revoke", "text/plain", "token="+tok.access, nil).wantOAuthError(t, "not a form", http.StatusBadRequest, "invalid_request")
	st.wantActive(t, "the session after the refused revocations", tok.access, true)
}
