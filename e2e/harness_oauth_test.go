package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
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

	mu      sync.Mutex
	session context.Context // alice's browser session, once signed in (signedIn)
}

// noRedirects makes an HTTP client hand back redirects instead of following them.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// plainHTTP is an HTTP client that does not follow redirects.
var plainHTTP = &http.Client{CheckRedirect: noRedirects, Timeout: 30 * time.Second}

// newOAuthEnv starts `gatehouse serve` (with env added to its environment),
// discovers it, registers a public native client and the user alice.
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
	e.conn = s.dial(t)
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
// user, signed in, through the authorize gRPC API (the consent page's call),
// returning the redirect back to the client.
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
	approved, err := authorizev1.NewAuthorizeServiceClient(e.conn).ApproveGrant(e.signedIn(t), &authorizev1.ApproveGrantRequest{GrantId: loc.Query().Get("grant")})
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	back, err := url.Parse(approved.GetRedirectUri())
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// signedIn is a context carrying a browser session of the env's user (alice),
// for calls the web service makes for her. She signs in once, as a browser
// keeps its cookie.
func (e *oauthEnv) signedIn(t testing.TB) context.Context {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.session == nil {
		e.session = signIn(t, e.conn, e.user.GetUsername(), e.user.GetUsername()+"'s password")
	}
	return e.session
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

// readAll is the rest of r as a string (empty on error).
func readAll(r io.Reader) string { b, _ := io.ReadAll(r); return string(b) }

// clientFor registers a public client and returns its configuration with the
// token endpoint at tokenBase.
func clientFor(t *testing.T, e *oauthEnv, tokenBase string) oauth2.Config {
	t.Helper()
	reg := e.register(t, map[string]any{
		"client_uri": "https://client.example.com/", "redirect_uris": []string{"http://127.0.0.1/callback"},
		"application_type": "native", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	}, http.StatusCreated)
	return oauth2.Config{
		ClientID:    reg["client_id"].(string),
		Endpoint:    oauth2.Endpoint{AuthURL: e.issuer + "authorize", TokenURL: tokenBase + "oauth2/token"},
		RedirectURL: "http://127.0.0.1:41234/callback",
		Scopes:      []string{"urn:matrix:client:api:*"},
	}
}

// envOn builds an oauthEnv around a running process.
func envOn(t *testing.T, s *server) *oauthEnv {
	t.Helper()
	e := &oauthEnv{s: s, issuer: "http://" + s.http + "/", conn: s.dial(t)}
	resp, err := accountsv1.NewAccountsServiceClient(e.conn).Register(context.Background(), &accountsv1.RegisterRequest{Username: "alice", Password: "alice's password"})
	if err != nil {
		t.Fatal(err)
	}
	e.user = resp.GetUser()
	return e
}

// introspectAt introspects token as the homeserver does at the issuer base.
func introspectAt(t *testing.T, base, token string) map[string]any {
	t.Helper()
	e := &oauthEnv{issuer: base}
	return e.introspect(t, token)
}

const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// deviceClient registers a public, device-only client (no redirect URIs)
// that may refresh its tokens, and returns its configuration for
// golang.org/x/oauth2.
func (e *oauthEnv) deviceClient(t *testing.T) oauth2.Config {
	t.Helper()
	reg := e.register(t, map[string]any{
		"client_name":                "Living Room TV",
		"client_uri":                 "https://tv.example.com/",
		"application_type":           "native",
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{deviceGrantType, "refresh_token"},
	}, http.StatusCreated)
	endpoint := e.provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInParams
	return oauth2.Config{
		ClientID: reg["client_id"].(string),
		Endpoint: endpoint,
		Scopes:   []string{oidc.ScopeOpenID, "urn:matrix:client:api:*"},
	}
}

// devicePoll sends one device token request by hand and returns the status
// and the JSON body.
func devicePoll(t *testing.T, cfg oauth2.Config, deviceCode string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {deviceGrantType}, "device_code": {deviceCode}, "client_id": {cfg.ClientID}}
	resp, err := http.PostForm(cfg.Endpoint.TokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("device poll: status %d: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func basicAuth(id, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}
