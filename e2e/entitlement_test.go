package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// Issue 9, scopes only by entitlement and introspection by caller, on the
// real binary with its configuration file: oauth.admin_clients names the one
// client that gets admin scopes for itself, matrix.compat_admin_scope lets
// administrators' compat logins carry Synapse's admin scope, and the
// homeserver never sees a refresh token as active (regressions: a
// self-registered client got urn:synapse:admin:* from client_credentials; a
// refresh token sent with token_type_hint=access_token introspected active,
// without expiry, over HTTP and gRPC).
func TestScopesByEntitlement(t *testing.T) {
	dir := t.TempDir()
	const adminID, adminSecret = "synapse-admin", "the admin tool's secret 0123456789"
	cfgFile := filepath.Join(dir, "gatehouse.yaml")
	cfg := `matrix:
  compat_admin_scope: true
oauth:
  admin_clients: [` + adminID + `]
  clients:
    - client_id: ` + adminID + `
      client_secret: "` + adminSecret + `"
      token_endpoint_auth_method: client_secret_basic
      client_name: Admin tool
      grant_types: [client_credentials]
      scope: read:stats
`
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newOAuthEnv(t, "GATEHOUSE_CONFIG="+cfgFile)
	a := &attackEnv{e: e} // its HTTP helpers
	clientCredentials := func(id, secret, scope string) reply {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		return a.do(t, req)
	}

	t.Run("client_credentials", func(t *testing.T) {
		self := e.register(t, map[string]any{"client_name": "Self", "client_uri": "https://self.example.com/", "application_type": "web",
			"grant_types": []string{"client_credentials"}, "scope": "urn:synapse:admin:* read:stats"}, http.StatusCreated)
		selfID, selfSecret := self["client_id"].(string), self["client_secret"].(string)
		for _, scope := range []string{"urn:synapse:admin:*", "urn:mas:admin", "openid", "urn:matrix:client:api:*"} {
			wantOAuthError(t, "a self-registered client asking "+scope, clientCredentials(selfID, selfSecret, scope), http.StatusBadRequest, "invalid_scope")
		}
		if r := clientCredentials(selfID, selfSecret, "read:stats"); r.status != http.StatusOK || r.body["scope"] != "read:stats" {
			t.Fatalf("a registered scope: %d %s", r.status, r.raw)
		}
		r := clientCredentials(adminID, adminSecret, "urn:synapse:admin:* read:stats")
		if r.status != http.StatusOK || r.body["scope"] != "urn:synapse:admin:* read:stats" {
			t.Fatalf("the configured admin client: %d %s", r.status, r.raw)
		}
		if got := e.introspect(t, r.body["access_token"].(string)); got["active"] != true || got["client_id"] != adminID {
			t.Fatalf("the admin client's token: %v", got)
		}
		wantOAuthError(t, "the admin client, an unregistered scope", clientCredentials(adminID, adminSecret, "write:stats"), http.StatusBadRequest, "invalid_scope")
	})

	t.Run("compat logins of administrators, allowed by the configuration", func(t *testing.T) {
		if _, err := accountsv1.NewAccountsServiceClient(e.conn).Register(context.Background(),
			&accountsv1.RegisterRequest{Username: "root", Password: "root's password", Admin: true}); err != nil {
			t.Fatal(err)
		}
		for user, admin := range map[string]bool{"root": true, "alice": false} {
			got := compatLogin(t, e, map[string]any{"type": "m.login.password", "user": user, "password": user + "'s password"})
			scope := strings.Fields(e.introspect(t, got["access_token"].(string))["scope"].(string))
			if slices.Contains(scope, "urn:synapse:admin:*") != admin {
				t.Fatalf("%s's compat scope %v", user, scope)
			}
		}
	})

	t.Run("a refresh token is never active to the homeserver", func(t *testing.T) {
		tok := a.session(t)
		compat := compatLogin(t, e, map[string]any{"type": "m.login.password", "user": "alice", "password": "alice's password", "refresh_token": true})
		hs := tokenv1.NewTokenServiceClient(rawConn(t, e.s.grpc))
		asHomeserver := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+homeserverSecret)
		for what, refresh := range map[string]string{"OAuth": tok.RefreshToken, "compat": compat["refresh_token"].(string)} {
			for _, hint := range []string{"access_token", "refresh_token", ""} {
				form := url.Values{"token": {refresh}}
				if hint != "" {
					form.Set("token_type_hint", hint)
				}
				req, _ := http.NewRequest(http.MethodPost, e.issuer+"oauth2/introspect", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				bearer(homeserverSecret)(req)
				wantInactive(t, what+" refresh token, hint "+hint, a.do(t, req))
			}
			got, err := hs.Introspect(asHomeserver, &tokenv1.IntrospectRequest{Token: refresh})
			if err != nil || !proto.Equal(got, &tokenv1.IntrospectResponse{}) {
				t.Fatalf("%s refresh token over gRPC, as the homeserver: %v, %v", what, got, err)
			}
		}
		if got, err := hs.Introspect(asHomeserver, &tokenv1.IntrospectRequest{Token: tok.AccessToken}); err != nil || !got.GetActive() {
			t.Fatalf("the access token over gRPC, as the homeserver: %v, %v", got, err)
		}
	})
}
