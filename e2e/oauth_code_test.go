package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

func TestAuthorizationCodeFlowWithRealClients(t *testing.T) {
	e := newOAuthEnv(t)
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, e.client, oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-456"))
	if back.Host != "127.0.0.1:41234" || back.Path != "/callback" || back.Query().Get("state") != "state-123" || back.Query().Get("iss") != e.issuer {
		t.Fatalf("redirect back: %s", back)
	}
	code := back.Query().Get("code")
	tok, err := e.client.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}

	// The ID token verifies against the published keys and carries our claims.
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := e.provider.Verifier(&oidc.Config{ClientID: e.client.ClientID}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("id token: %v", err)
	}
	if idt.Subject != e.user.GetId() || idt.Nonce != "nonce-456" {
		t.Fatalf("id token sub %q nonce %q", idt.Subject, idt.Nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}

	// The homeserver's view.
	got := e.introspect(t, tok.AccessToken)
	scope, _ := got["scope"].(string)
	device, _ := got["device_id"].(string)
	if got["active"] != true || got["username"] != "alice" || got["sub"] != e.user.GetId() || got["client_id"] != e.client.ClientID ||
		len(device) < 10 || !strings.Contains(scope, "urn:matrix:client:device:"+device) ||
		!strings.Contains(scope, "urn:matrix:org.matrix.msc2967.client:api:*") || got["token_type"] != "access_token" {
		t.Fatalf("introspection: %v", got)
	}
	grpcGot, err := tokenv1.NewTokenServiceClient(e.conn).Introspect(ctx, &tokenv1.IntrospectRequest{Token: tok.AccessToken})
	if err != nil || !grpcGot.GetActive() || grpcGot.GetUsername() != "alice" || grpcGot.GetDeviceId() != device {
		t.Fatalf("gRPC introspection: %v, %v", grpcGot, err)
	}

	// userinfo
	info, err := e.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || info.Subject != e.user.GetId() {
		t.Fatalf("userinfo: %v, %v", info, err)
	}

	// Refresh: a new pair; the old access token and refresh token stop working.
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	fresh, err := e.client.TokenSource(ctx, &expired).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || fresh.RefreshToken == "" {
		t.Fatal("refresh did not rotate the tokens")
	}
	if got := e.introspect(t, tok.AccessToken); got["active"] != false || len(got) != 1 {
		t.Fatalf("old access token after refresh: %v", got)
	}
	if got := e.introspect(t, fresh.AccessToken); got["active"] != true {
		t.Fatalf("new access token: %v", got)
	}

	// Revocation ends the session: the new tokens stop working at once.
	form := url.Values{"token": {fresh.RefreshToken}, "client_id": {e.client.ClientID}}
	resp, err := http.PostForm(e.issuer+"oauth2/revoke", form)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v, %v", resp, err)
	}
	resp.Body.Close()
	if got := e.introspect(t, fresh.AccessToken); got["active"] != false {
		t.Fatalf("access token after revocation: %v", got)
	}
}

// An authorization code used twice is refused, and the tokens of its first use are revoked.
func TestCodeReplayRevokesTokens(t *testing.T) {
	e := newOAuthEnv(t)
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, e.client, oauth2.S256ChallengeOption(verifier))
	code := back.Query().Get("code")
	tok, err := e.client.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("replayed code: %v", err)
	}
	if got := e.introspect(t, tok.AccessToken); got["active"] != false {
		t.Fatalf("tokens of a replayed code still active: %v", got)
	}
}
