package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// homeserverSecret is what the tests' homeserver shares with Gatehouse.
const homeserverSecret = "a-shared-secret-for-tests"

// oauthEnv is a running gatehouse serve with a registered public client and a user.
type oauthEnv struct {
	s        *server
	issuer   string
	provider *oidc.Provider
	client   oauth2.Config
	conn     *grpc.ClientConn
	user     *accountsv1.User
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

var plainHTTP = &http.Client{CheckRedirect: noRedirects, Timeout: 30 * time.Second}

func newOAuthEnv(t testing.TB, env ...string) *oauthEnv {
	t.Helper()
	s := startServe(t, dataDir(t), append([]string{"GATEHOUSE_MATRIX_SECRET=" + homeserverSecret, "GATEHOUSE_MATRIX_SERVER_NAME=example.org"}, env...)...)
	e := &oauthEnv{s: s, issuer: "http://" + s.http + "/"}
	ctx := context.Background()
	var err error
	e.provider, err = oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	reg := e.register(t, map[string]any{
		"client_name":                "Test Client",
		"client_uri":                 "https://client.example.com/",
		"redirect_uris":              []string{"http://127.0.0.1/callback"},
		"application_type":           "native",
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
	}, http.StatusCreated)
	e.client = oauth2.Config{
		ClientID:    reg["client_id"].(string),
		Endpoint:    e.provider.Endpoint(),
		RedirectURL: "http://127.0.0.1:41234/callback",
		Scopes:      []string{oidc.ScopeOpenID, "urn:matrix:client:api:*"},
	}
	e.conn, err = grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.conn.Close() })
	resp, err := accountsv1.NewAccountsServiceClient(e.conn).Register(ctx, &accountsv1.RegisterRequest{Username: "alice", Password: "alice's password"})
	if err != nil {
		t.Fatal(err)
	}
	e.user = resp.GetUser()
	return e
}

// register posts client metadata to the registration endpoint.
func (e *oauthEnv) register(t testing.TB, meta map[string]any, wantStatus int) map[string]any {
	t.Helper()
	body, _ := json.Marshal(meta)
	resp, err := http.Post(e.issuer+"oauth2/registration", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != wantStatus {
		t.Fatalf("registration: status %d, want %d: %v", resp.StatusCode, wantStatus, out)
	}
	return out
}

// authorize starts an authorization in the "browser" and approves it as the
// user through the authorize gRPC API (the consent page's call), returning the
// redirect back to the client.
func (e *oauthEnv) authorize(t testing.TB, cfg oauth2.Config, opts ...oauth2.AuthCodeOption) *url.URL {
	t.Helper()
	resp, err := plainHTTP.Get(cfg.AuthCodeURL("state-123", opts...))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || loc.Query().Get("grant") == "" {
		t.Fatalf("authorize: status %d, location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	approved, err := authorizev1.NewAuthorizeServiceClient(e.conn).ApproveGrant(context.Background(), &authorizev1.ApproveGrantRequest{
		GrantId: loc.Query().Get("grant"), UserId: e.user.GetId(), Username: e.user.GetUsername(),
	})
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	back, err := url.Parse(approved.GetRedirectUri())
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// introspect asks as the homeserver does.
func (e *oauthEnv) introspect(t testing.TB, token string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+homeserverSecret)
	req.Header.Set("X-MAS-Supports-Device-Id", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect: status %d, %v", resp.StatusCode, err)
	}
	return out
}

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

// A refresh token used twice ends the whole session (MSC2964). With no grace
// period, even an immediate second use is a replay.
func TestRefreshTokenReplayEndsSession(t *testing.T) {
	e := newOAuthEnv(t, "GATEHOUSE_REFRESH_REUSE_GRACE=0s")
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, e.client, oauth2.S256ChallengeOption(verifier))
	tok, err := e.client.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	fresh, err := e.client.TokenSource(ctx, &expired).Token()
	if err != nil {
		t.Fatal(err)
	}
	// Replay the consumed refresh token.
	_, err = e.client.TokenSource(ctx, &expired).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("replayed refresh: %v", err)
	}
	if got := e.introspect(t, fresh.AccessToken); got["active"] != false {
		t.Fatalf("the session survived a refresh token replay: %v", got)
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

func readAll(r io.Reader) string { b, _ := io.ReadAll(r); return string(b) }
