package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
)

// userCodeFormat is what a person reads off the device: 8 unambiguous letters.
var userCodeFormat = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

func wantDevicePollError(t *testing.T, what string, status int, body map[string]any, code string) {
	t.Helper()
	if status != http.StatusBadRequest || body["error"] != code {
		t.Fatalf("%s: %d %v, want 400 %s", what, status, body, code)
	}
}

func TestDeviceFlowWithRealClient(t *testing.T) {
	e := newOAuthEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	authz := authorizev1.NewAuthorizeServiceClient(e.conn)

	// Discovery tells clients where to start and that the grant exists.
	var meta struct {
		DeviceEndpoint string   `json:"device_authorization_endpoint"`
		Grants         []string `json:"grant_types_supported"`
	}
	if err := e.provider.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if meta.DeviceEndpoint != e.issuer+"oauth2/device" || e.provider.Endpoint().DeviceAuthURL != meta.DeviceEndpoint ||
		!slices.Contains(meta.Grants, deviceGrantType) {
		t.Fatalf("discovery: %+v", meta)
	}

	cfg := e.deviceClient(t)
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if !userCodeFormat.MatchString(da.UserCode) || da.VerificationURI != e.issuer+"link" ||
		da.VerificationURIComplete != e.issuer+"link?code="+da.UserCode || da.Interval != 5 ||
		time.Until(da.Expiry) < 19*time.Minute || time.Until(da.Expiry) > 20*time.Minute || len(da.DeviceCode) < 32 {
		t.Fatalf("device authorization response: %+v", da)
	}

	// The device polls too fast: the second poll is told to slow down.
	status, body := devicePoll(t, cfg, da.DeviceCode)
	wantDevicePollError(t, "first poll", status, body, "authorization_pending")
	status, body = devicePoll(t, cfg, da.DeviceCode)
	wantDevicePollError(t, "immediate second poll", status, body, "slow_down")

	// The /link page: the person opens verification_uri_complete, sees the
	// client and the scope, and approves while signed in.
	complete, _ := url.Parse(da.VerificationURIComplete)
	got, err := authz.GetDeviceGrant(ctx, &authorizev1.GetDeviceGrantRequest{UserCode: complete.Query().Get("code")})
	if err != nil {
		t.Fatal(err)
	}
	if g := got.GetDeviceGrant(); g.GetStatus() != authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_PENDING ||
		g.GetClient().GetClientName() != "Living Room TV" || g.GetScope() != "openid urn:matrix:client:api:*" {
		t.Fatalf("GetDeviceGrant: %v", g)
	}
	if _, err := authz.ApproveDeviceGrant(e.signedIn(t), &authorizev1.ApproveDeviceGrantRequest{UserCode: strings.ToLower(da.UserCode)}); err != nil {
		t.Fatalf("approve: %v", err)
	}

	// The real client, having been told to slow down, polls 5 s less often
	// from now on (RFC 8628 §3.5), and gets its tokens.
	slowed := *da
	slowed.Interval += 5
	tok, err := cfg.DeviceAccessToken(ctx, &slowed)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	if tok.RefreshToken == "" || tok.Type() != "Bearer" {
		t.Fatalf("token: %+v", tok)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := e.provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("id token: %v", err)
	}
	if idt.Subject != e.user.GetId() || idt.VerifyAccessToken(tok.AccessToken) != nil {
		t.Fatalf("id token: sub %q", idt.Subject)
	}

	// The homeserver sees alice on a Matrix device of her own.
	info := e.introspect(t, tok.AccessToken)
	scope, _ := info["scope"].(string)
	device, _ := info["device_id"].(string)
	if info["active"] != true || info["username"] != "alice" || info["sub"] != e.user.GetId() || info["client_id"] != cfg.ClientID ||
		len(device) < 10 || !strings.Contains(scope, "urn:matrix:client:device:"+device) || !strings.Contains(scope, "urn:matrix:client:api:*") {
		t.Fatalf("introspection: %v", info)
	}

	// The code yields tokens once.
	status, body = devicePoll(t, cfg, da.DeviceCode)
	wantDevicePollError(t, "used device code", status, body, "invalid_grant")
	got, err = authz.GetDeviceGrant(ctx, &authorizev1.GetDeviceGrantRequest{UserCode: da.UserCode})
	if err != nil || got.GetDeviceGrant().GetStatus() != authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_USED {
		t.Fatalf("after use: %v, %v", got, err)
	}

	// The session refreshes like any other.
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	fresh, err := cfg.TokenSource(ctx, &expired).Token()
	if err != nil || fresh.AccessToken == tok.AccessToken {
		t.Fatalf("refresh: %v", err)
	}
	if got := e.introspect(t, fresh.AccessToken); got["active"] != true || got["device_id"] != device {
		t.Fatalf("refreshed token: %v", got)
	}
}

func TestDeviceFlowDeniedAndInvalidCodes(t *testing.T) {
	e := newOAuthEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	authz := authorizev1.NewAuthorizeServiceClient(e.conn)
	cfg := e.deviceClient(t)

	// The person refuses on the /link page: the real client stops with access_denied.
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authz.DenyDeviceGrant(e.signedIn(t), &authorizev1.DenyDeviceGrantRequest{UserCode: da.UserCode}); err != nil {
		t.Fatalf("deny: %v", err)
	}
	_, err = cfg.DeviceAccessToken(ctx, da)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "access_denied" || re.Response.StatusCode != http.StatusBadRequest {
		t.Fatalf("denied device: %v", err)
	}
	if _, err := authz.ApproveDeviceGrant(e.signedIn(t), &authorizev1.ApproveDeviceGrantRequest{UserCode: da.UserCode}); err == nil {
		t.Fatal("a refused device was approved afterwards")
	}

	// An unknown device code is an invalid grant.
	status, body := devicePoll(t, cfg, "NotADeviceCodeThatWasEverIssuedByGatehouse")
	wantDevicePollError(t, "unknown device code", status, body, "invalid_grant")

	// Another client's device code is an invalid grant too, saying nothing of its state.
	da2, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := e.deviceClient(t)
	status, body = devicePoll(t, other, da2.DeviceCode)
	wantDevicePollError(t, "another client's device code", status, body, "invalid_grant")
	status, body = devicePoll(t, cfg, da2.DeviceCode)
	wantDevicePollError(t, "the owner's poll", status, body, "authorization_pending")

	// A client registered without the grant can use neither endpoint.
	webClient := e.client
	webClient.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	if _, err := webClient.DeviceAuth(ctx); !errors.As(err, &re) || re.ErrorCode != "unauthorized_client" {
		t.Fatalf("device authorization of a client without the grant: %v", err)
	}
	status, body = devicePoll(t, webClient, da2.DeviceCode)
	wantDevicePollError(t, "token request of a client without the grant", status, body, "unauthorized_client")

	// An unknown user code finds nothing on the /link page.
	if _, err := authz.GetDeviceGrant(ctx, &authorizev1.GetDeviceGrantRequest{UserCode: "BBBB-BBBB"}); err == nil {
		t.Fatal("an unknown user code was found")
	}
}
