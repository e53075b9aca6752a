package inprocess

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
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
	// A refresh token is nothing the homeserver may use.
	st.wantActive(t, "refresh token", tok.refresh, false)

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

// homeserverConn calls the gRPC API as the homeserver does: with its shared
// secret as a bearer credential, and nothing else.
func (st *stack) homeserverConn(t *testing.T) tokenv1.TokenServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(st.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return tokenv1.NewTokenServiceClient(conn)
}

// asHomeserver is a context carrying the homeserver's gRPC credential.
func asHomeserver() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+homeserverSecret)
}

// Issue 9, introspection answers only what the caller may use: to the
// homeserver (HTTP secret or gRPC credential) a refresh token is never
// active, whatever the token_type_hint (regression: it was, with no expiry:
// a refresh token passed for an access token that never expires). A client
// learns of its own refresh tokens (token_type refresh_token), not of
// another's; an administrator of everything.
func TestIntrospectionAnswersOnlyWhatTheCallerMayUse(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	web := st.confidentialClient(t, "client_secret_basic", "authorization_code", "refresh_token")
	p := newPKCE()
	tok := st.tokenRequest(t, url.Values{"grant_type": {"authorization_code"}, "code": {st.code(t, web, alice, p, nil)},
		"redirect_uri": {web.redirect}, "code_verifier": {p.verifier}}, basicAuth(web.id, web.secret)).tokens(t, "code exchange")
	other := st.confidentialClient(t, "client_secret_post", "client_credentials")
	compat := st.compatLogin(t, alice, true)

	refreshes := map[string]string{"an OAuth refresh token": tok.refresh, "a compat refresh token": compat["refresh_token"].(string)}
	for what, refresh := range refreshes {
		for _, hint := range []string{"", "access_token", "refresh_token"} {
			form := url.Values{"token": {refresh}}
			if hint != "" {
				form.Set("token_type_hint", hint)
			}
			r := st.postForm(t, "oauth2/introspect", form, func(req *http.Request) {
				req.Header.Set("Authorization", "Bearer "+homeserverSecret)
				req.Header.Set("X-MAS-Supports-Device-Id", "1")
			})
			if r.status != http.StatusOK || r.body["active"] != false || len(r.body) != 1 {
				t.Fatalf("%s, hint %q, to the homeserver over HTTP: %d %s", what, hint, r.status, r.raw)
			}
		}
		g, err := st.homeserverConn(t).Introspect(asHomeserver(), &tokenv1.IntrospectRequest{Token: refresh})
		if err != nil || !proto.Equal(g, &tokenv1.IntrospectResponse{}) {
			t.Fatalf("%s to the homeserver over gRPC: %v, %v", what, g, err)
		}
		// The administrator sees it for what it is.
		g, err = st.tokens.Introspect(context.Background(), &tokenv1.IntrospectRequest{Token: refresh})
		if err != nil || !g.GetActive() || g.GetTokenType() != "refresh_token" || g.GetSub() != alice.GetId() {
			t.Fatalf("%s to an administrator: %v, %v", what, g, err)
		}
	}
	// The access tokens stay active to the homeserver, over HTTP and gRPC.
	st.wantActive(t, "the OAuth access token", tok.access, true)
	st.wantActive(t, "the compat access token", compat["access_token"].(string), true)
	if g, err := st.homeserverConn(t).Introspect(asHomeserver(), &tokenv1.IntrospectRequest{Token: tok.access}); err != nil || !g.GetActive() || g.GetTokenType() != "access_token" {
		t.Fatalf("access token to the homeserver over gRPC: %v, %v", g, err)
	}

	// The client its refresh token was issued to learns what it is; another
	// client does not, though it sees the access token.
	r := st.postForm(t, "oauth2/introspect", url.Values{"token": {tok.refresh}, "token_type_hint": {"access_token"}}, basicAuth(web.id, web.secret))
	if r.status != http.StatusOK || r.body["active"] != true || r.body["token_type"] != "refresh_token" || r.body["client_id"] != web.id || r.body["exp"] != nil {
		t.Fatalf("the owner's refresh token: %d %s", r.status, r.raw)
	}
	for _, token := range []string{tok.refresh, compat["refresh_token"].(string)} {
		r = st.postForm(t, "oauth2/introspect", url.Values{"token": {token}, "client_id": {other.id}, "client_secret": {other.secret}}, nil)
		if r.status != http.StatusOK || r.body["active"] != false || len(r.body) != 1 {
			t.Fatalf("another client's refresh token: %d %s", r.status, r.raw)
		}
	}
	r = st.postForm(t, "oauth2/introspect", url.Values{"token": {tok.access}, "client_id": {other.id}, "client_secret": {other.secret}}, nil)
	if r.status != http.StatusOK || r.body["active"] != true || r.body["token_type"] != "access_token" {
		t.Fatalf("another client's access token: %d %s", r.status, r.raw)
	}
}

// Compat tokens always carry their device (MAS's contract); OAuth tokens only
// for a homeserver that says it reads the field.
func TestIntrospectionDeviceID(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	oauth := st.session(t, st.publicClient(t), alice)
	compat := st.compatLogin(t, alice, false)
	for _, tt := range []struct {
		what, token string
		header      bool
		device      bool
	}{
		{"OAuth, with the header", oauth.access, true, true},
		{"OAuth, without", oauth.access, false, false},
		{"compat, with the header", compat["access_token"].(string), true, true},
		{"compat, without", compat["access_token"].(string), false, true},
	} {
		r := st.postForm(t, "oauth2/introspect", url.Values{"token": {tt.token}}, func(req *http.Request) {
			req.Header.Set("Authorization", "Bearer "+homeserverSecret)
			if tt.header {
				req.Header.Set("X-MAS-Supports-Device-Id", "1")
			}
		})
		if r.status != http.StatusOK || r.body["active"] != true || (r.body["device_id"] != nil) != tt.device {
			t.Fatalf("%s: %d %s", tt.what, r.status, r.raw)
		}
	}
}
