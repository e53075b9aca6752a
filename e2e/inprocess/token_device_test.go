package inprocess

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
)

const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceClient registers a public device client that may refresh.
func (st *stack) deviceClient(t *testing.T) client {
	t.Helper()
	return st.register(t, map[string]any{
		"client_name": "Living Room TV", "client_uri": "https://tv.example.com/", "application_type": "native",
		"token_endpoint_auth_method": "none", "grant_types": []string{deviceGrant, "refresh_token"},
	})
}

// deviceAuthorization starts a device authorization (RFC 8628 §3.1) at the
// authorize service and returns the device and user codes.
func (st *stack) deviceAuthorization(t *testing.T, c client) (deviceCode, userCode string) {
	t.Helper()
	r := st.postForm(t, "oauth2/device", url.Values{"client_id": {c.id}, "scope": {"openid urn:matrix:client:api:*"}}, nil)
	if r.status != http.StatusOK || r.str("device_code") == "" || r.str("user_code") == "" {
		t.Fatalf("device authorization: %d %s", r.status, r.raw)
	}
	return r.str("device_code"), r.str("user_code")
}

// poll sends one device_code token request for c.
func (st *stack) poll(t *testing.T, c client, deviceCode string) reply {
	t.Helper()
	return st.tokenRequest(t, url.Values{"grant_type": {deviceGrant}, "device_code": {deviceCode}, "client_id": {c.id}}, nil)
}

// The device_code grant: pending, told to slow down when polling too fast,
// then — once the person approved — the tokens, once.
func TestDeviceCodeGrant(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.deviceClient(t)
	deviceCode, userCode := st.deviceAuthorization(t, c)

	st.poll(t, c, deviceCode).wantOAuthError(t, "first poll", http.StatusBadRequest, "authorization_pending")
	st.poll(t, c, deviceCode).wantOAuthError(t, "immediate second poll", http.StatusBadRequest, "slow_down")

	if _, err := st.authorize.ApproveDeviceGrant(st.signIn(t, alice), &authorizev1.ApproveDeviceGrantRequest{UserCode: strings.ToLower(userCode)}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	tok := st.poll(t, c, deviceCode).tokens(t, "poll after approval")
	if tok.refresh == "" || tok.idToken == "" || !strings.Contains(tok.scope, "urn:matrix:client:device:") {
		t.Fatalf("device tokens: %+v", tok)
	}
	if claims := verifyIDToken(t, st, tok.idToken); claims.Subject != alice.GetId() || !claims.Audience.Contains(c.id) {
		t.Fatalf("ID token: %+v", claims)
	}
	got := st.wantActive(t, "device access token", tok.access, true)
	if got["sub"] != alice.GetId() || got["client_id"] != c.id || got["device_id"] == nil {
		t.Fatalf("introspection: %v", got)
	}

	// The code yields tokens once; the session refreshes like any other.
	st.poll(t, c, deviceCode).wantOAuthError(t, "used device code", http.StatusBadRequest, "invalid_grant")
	st.wantActive(t, "session after a second poll", tok.access, true)
	fresh := st.refresh(t, c, tok.refresh).tokens(t, "refresh of a device session")
	st.wantActive(t, "refreshed device token", fresh.access, true)
}

// A refused device, unknown codes, other clients' codes and clients without
// the grant all get the RFC 8628 §3.5 errors, with status 400.
func TestDeviceCodeGrantBadInput(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.deviceClient(t)
	other := st.deviceClient(t)
	web := st.publicClient(t)

	denied, deniedUser := st.deviceAuthorization(t, c)
	if _, err := st.authorize.DenyDeviceGrant(st.signIn(t, alice), &authorizev1.DenyDeviceGrantRequest{UserCode: deniedUser}); err != nil {
		t.Fatalf("deny: %v", err)
	}
	st.poll(t, c, denied).wantOAuthError(t, "denied device", http.StatusBadRequest, "access_denied")

	pending, _ := st.deviceAuthorization(t, c)
	tests := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"no device code", url.Values{"client_id": {c.id}}, http.StatusBadRequest, "invalid_request"},
		{"unknown device code", url.Values{"client_id": {c.id}, "device_code": {"NotADeviceCodeThatWasEverIssuedByGatehouse"}}, http.StatusBadRequest, "invalid_grant"},
		{"another client's device code", url.Values{"client_id": {other.id}, "device_code": {pending}}, http.StatusBadRequest, "invalid_grant"},
		{"a client without the grant", url.Values{"client_id": {web.id}, "device_code": {pending}}, http.StatusBadRequest, "unauthorized_client"},
		{"no client", url.Values{"device_code": {pending}}, http.StatusUnauthorized, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("grant_type", deviceGrant)
			st.tokenRequest(t, tt.form, nil).wantOAuthError(t, tt.name, tt.status, tt.code)
		})
	}
	// The owner's grant is still pending, untouched by the others' attempts.
	st.poll(t, c, pending).wantOAuthError(t, "the owner's poll", http.StatusBadRequest, "authorization_pending")
}

// Issue 11: the device authorization endpoint authenticates clients with the
// token endpoint's code, so private_key_jwt and client_secret_jwt clients
// can use the device flow (regression: their assertions were refused). An
// assertion is used once across both services' endpoints.
func TestDeviceCodeGrantWithClientAssertions(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	ec, jwks := clientKey(t)
	keyClient := st.register(t, map[string]any{"client_name": "Kiosk", "client_uri": "https://kiosk.example.com/", "application_type": "native",
		"grant_types": []string{deviceGrant}, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks})
	secretClient := st.register(t, map[string]any{"client_name": "Kiosk", "client_uri": "https://kiosk.example.com/", "application_type": "native",
		"grant_types": []string{deviceGrant}, "token_endpoint_auth_method": "client_secret_jwt"})
	asserted := func(a string, form url.Values) url.Values {
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", a)
		return form
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
			sign := func(aud string) string { return assertion(t, tt.key, tt.alg, tt.c.id, aud, time.Minute) }
			atDevice := sign(st.issuer)
			r := st.postForm(t, "oauth2/device", asserted(atDevice, url.Values{"scope": {"openid urn:matrix:client:api:*"}}), nil)
			if r.status != http.StatusOK || r.str("device_code") == "" {
				t.Fatalf("device authorization: %d %s", r.status, r.raw)
			}
			deviceCode, userCode := r.str("device_code"), r.str("user_code")
			// The same assertion again, here or at the token endpoint: refused.
			st.postForm(t, "oauth2/device", asserted(atDevice, url.Values{}), nil).wantOAuthError(t, "replay at the device endpoint", http.StatusUnauthorized, "invalid_client")
			st.tokenRequest(t, asserted(atDevice, url.Values{"grant_type": {deviceGrant}, "device_code": {deviceCode}}), nil).
				wantOAuthError(t, "replay at the token endpoint", http.StatusUnauthorized, "invalid_client")

			if _, err := st.authorize.ApproveDeviceGrant(st.signIn(t, alice), &authorizev1.ApproveDeviceGrantRequest{UserCode: userCode}); err != nil {
				t.Fatalf("approve: %v", err)
			}
			atToken := sign(st.issuer + "oauth2/token")
			tok := st.tokenRequest(t, asserted(atToken, url.Values{"grant_type": {deviceGrant}, "device_code": {deviceCode}}), nil).tokens(t, "poll")
			if got := st.wantActive(t, "device token", tok.access, true); got["sub"] != alice.GetId() || got["client_id"] != tt.c.id {
				t.Fatalf("introspection: %v", got)
			}
			// Used at the token endpoint: refused at the device endpoint.
			st.postForm(t, "oauth2/device", asserted(atToken, url.Values{}), nil).wantOAuthError(t, "replay of a token endpoint assertion", http.StatusUnauthorized, "invalid_client")
		})
	}
}
