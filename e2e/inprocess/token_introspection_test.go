package inprocess

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// Introspection (RFC 7662) over HTTP answers the homeserver with everything
// it needs about a live token, and the gRPC API gives the same answer.
func TestIntrospection(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	tok := st.session(t, c, alice)

	got := st.wantActive(t, "access token", tok.access, true)
	scope, _ := got["scope"].(string)
	device, _ := got["device_id"].(string)
	for _, want := range []string{"openid", "urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*",
		"urn:matrix:client:device:" + device, "urn:matrix:org.matrix.msc2967.client:device:" + device} {
		if !strings.Contains(" "+scope+" ", " "+want+" ") {
			t.Fatalf("scope %q lacks %q", scope, want)
		}
	}
	exp, _ := got["exp"].(float64)
	iat, _ := got["iat"].(float64)
	expiresIn, _ := got["expires_in"].(float64)
	if got["sub"] != alice.GetId() || got["username"] != "alice" || got["client_id"] != c.id || got["token_type"] != "access_token" ||
		len(device) < 10 || exp <= iat || expiresIn <= 0 || expiresIn > 300 {
		t.Fatalf("introspection: %v", got)
	}
	// The device id only for a homeserver that says it understands it.
	r := st.postForm(t, "oauth2/introspect", url.Values{"token": {tok.access}}, bearer(homeserverSecret))
	if r.status != http.StatusOK || r.body["active"] != true || r.body["device_id"] != nil {
		t.Fatalf("without X-MAS-Supports-Device-Id: %d %s", r.status, r.raw)
	}
	// A refresh token is reported as what it is.
	if got := st.wantActive(t, "refresh token", tok.refresh, true); got["token_type"] != "refresh_token" {
		t.Fatalf("refresh token introspection: %v", got)
	}

	// gRPC: the same answer.
	g, err := st.tokens.Introspect(context.Background(), &tokenv1.IntrospectRequest{Token: tok.access})
	if err != nil {
		t.Fatal(err)
	}
	if !g.GetActive() || g.GetSub() != alice.GetId() || g.GetUsername() != "alice" || g.GetClientId() != c.id || g.GetDeviceId() != device ||
		g.GetScope() != scope || g.GetTokenType() != "access_token" || g.GetExp().AsTime().Unix() != int64(exp) ||
		g.GetIat().AsTime().Unix() != int64(iat) || g.GetSessionId() == "" {
		t.Fatalf("gRPC introspection: %v", g)
	}

	// A confidential client may introspect too.
	rs := st.confidentialClient(t, "client_secret_basic", "client_credentials")
	r = st.postForm(t, "oauth2/introspect", url.Values{"token": {tok.access}}, basicAuth(rs.id, rs.secret))
	if r.status != http.StatusOK || r.body["active"] != true || r.body["sub"] != alice.GetId() {
		t.Fatalf("introspection by a confidential client: %d %s", r.status, r.raw)
	}
}

// Introspection needs a caller it can trust, and says nothing about a token
// it does not know beyond {"active": false} — over HTTP and gRPC alike.
func TestIntrospectionBadInput(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	tok := st.session(t, c, alice)
	rs := st.confidentialClient(t, "client_secret_basic", "client_credentials")
	form := url.Values{"token": {tok.access}}

	for _, tt := range []struct {
		name string
		form url.Values
		edit func(*http.Request)
	}{
		{"no authentication", form, nil},
		{"a wrong homeserver secret", form, bearer(homeserverSecret + "x")},
		{"an access token as the secret", form, bearer(tok.access)},
		{"a public client naming itself", url.Values{"token": {tok.access}, "client_id": {c.id}}, nil},
		{"a confidential client's wrong secret", form, basicAuth(rs.id, "guess")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st.postForm(t, "oauth2/introspect", tt.form, tt.edit).wantOAuthError(t, tt.name, http.StatusUnauthorized, "invalid_client")
		})
	}
	asHomeserver := bearer(homeserverSecret)
	st.postForm(t, "oauth2/introspect", url.Values{}, asHomeserver).wantOAuthError(t, "no token", http.StatusBadRequest, "invalid_request")
	st.post(t, "oauth2/introspect", "application/json", `{"token":"x"}`, asHomeserver).wantOAuthError(t, "a JSON body", http.StatusBadRequest, "invalid_request")
	get, _ := http.NewRequest(http.MethodGet, st.issuer+"oauth2/introspect?token="+tok.access, nil)
	asHomeserver(get)
	st.do(t, get).wantOAuthError(t, "GET", http.StatusMethodNotAllowed, "invalid_request")

	// Tokens that are not live: exactly {"active": false}, over HTTP and gRPC.
	for _, tt := range []struct{ name, token string }{
		{"garbage", "not a token"},
		{"a forged MAC", flip(tok.access, len(tok.access)-1)},
		{"a changed body", flip(tok.access, 5)},
		{"another prefix", "mct_" + strings.TrimPrefix(tok.access, "mat_")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st.wantActive(t, tt.name, tt.token, false)
			g, err := st.tokens.Introspect(context.Background(), &tokenv1.IntrospectRequest{Token: tt.token})
			if err != nil || !proto.Equal(g, &tokenv1.IntrospectResponse{}) {
				t.Fatalf("gRPC: %v, %v", g, err)
			}
		})
	}
	if _, err := st.tokens.Introspect(context.Background(), &tokenv1.IntrospectRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC introspection without a token: %v", err)
	}
	st.wantActive(t, "the real token after all that", tok.access, true)
}
