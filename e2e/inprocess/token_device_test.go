package inprocess

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

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
