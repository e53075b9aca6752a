package inprocess

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"

	"gatehouse.dev/platform/grpcx"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/ratelimit"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/telemetry"
	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/accounts"
	"gatehouse.dev/services/admin"
	"gatehouse.dev/services/authorize"
	"gatehouse.dev/services/token"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// homeserverSecret is the shared secret the homeserver introspects with.
const homeserverSecret = "the-homeserver-secret"

// stack is the token service with the real services it calls — authorize
// (clients, codes, device grants) and accounts (users, passwords) — as
// `gatehouse serve` runs them: one NATS server, one PostgreSQL database with a
// schema per service, one gRPC server on loopback that the token service
// reaches the others through, and one public HTTP server.
type stack struct {
	// issuer is the public base URL, ending in "/".
	issuer string
	// conn reaches every service's gRPC API.
	conn *grpc.ClientConn
	// grpcAddr is where the gRPC API listens.
	grpcAddr string
	// stopGRPC stops the gRPC server: the token service can no longer
	// reach the others.
	stopGRPC  func()
	tokens    tokenv1.TokenServiceClient
	authorize authorizev1.AuthorizeServiceClient
	accounts  accountsv1.AccountsServiceClient
	logs      *syncBuffer
	// admin is the admin API, on the public server (admin_api_test.go).
	admin *admin.Service
	// tel traces and measures the services as the host does; spans holds
	// every span ended (telemetry_test.go).
	tel   *telemetry.Telemetry
	spans *tracetest.InMemoryExporter
}

// newStack starts the three services; configure may change the token
// service's configuration. Everything stops when the test ends.
func newStack(t *testing.T, configure ...func(*token.Config)) *stack {
	t.Helper()
	return newStackWith(t, nil, configure...)
}

// newStackWith is newStack with the authorize service's configuration
// changed by authz first (static clients, for one).
func newStackWith(t *testing.T, authz func(*authorize.Config), configure ...func(*token.Config)) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := &stack{logs: &syncBuffer{}}
	js := testkit.NATS(t)
	dbURL := testkit.Postgres(t)
	logger := slog.New(telemetry.TraceHandler(slog.NewTextHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	st.spans = tracetest.NewInMemoryExporter()
	var err error
	st.tel, err = telemetry.Setup(ctx, telemetry.Options{ServiceName: "gatehouse", SampleRatio: 1,
		SpanProcessors: []sdktrace.SpanProcessor{sdktrace.NewSimpleSpanProcessor(st.spans)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.tel.Shutdown(context.Background()) })
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			t.Logf("services' log:\n%s", st.logs)
		}
	})
	pool := func(schema string) *pgxpool.Pool {
		p, err := pg.Connect(ctx, dbURL, schema)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}

	// The public HTTP server first: its address is the issuer.
	mux := http.NewServeMux()
	public := httptest.NewServer(httpx.Instrument(httpx.SecurityHeaders(httpx.LimitBody(httpx.Routes(mux), 1<<20)), st.tel, "public"))
	t.Cleanup(public.Close)
	st.issuer = public.URL + "/"

	// The gRPC listener next: the token service dials the others there, as
	// "token" with a credential derived from the internal secret, and the
	// tests call as whoever each method lets (testkit.DialAutoTo).
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	dial := func(as string) *grpc.ClientConn {
		cred, err := grpcx.ServiceCredential(secret, as)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpcx.Dial(lis.Addr().String(), grpcx.DialOptions{DefaultTimeout: 20 * time.Second, Credential: cred, Telemetry: st.tel})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	st.conn = testkit.DialAutoTo(t, lis.Addr().String(), secret)
	st.tokens = tokenv1.NewTokenServiceClient(st.conn)
	st.authorize = authorizev1.NewAuthorizeServiceClient(st.conn)
	st.accounts = accountsv1.NewAccountsServiceClient(st.conn)
	fromToken := dial("token")

	// One rate limiter for the composed services, counting refusals, as the host has.
	limiter := ratelimit.New(ratelimit.Options{Logger: logger, Meter: st.tel.MeterProvider().Meter("gatehouse.dev/platform/ratelimit"),
		Rules: ratelimit.DefaultRules().All()})
	// One key-encryption key for the composed services, as one process has.
	keyring := sealed.NewRandomKeyring()
	accCfg := accounts.Config{ServerName: "example.org", PublicURL: st.issuer, Upstream: upstreamProviders}
	// Cheap hashing: these tests are not about its cost.
	accCfg.Passwords.MemoryKiB, accCfg.Passwords.Iterations, accCfg.Passwords.Parallelism = 64, 1, 1
	acc, err := accounts.New(ctx, accCfg,
		accounts.Deps{Pool: pool(accounts.Schema), JetStream: js, Logger: logger.With("service", "accounts"), Keyring: keyring, Telemetry: st.tel})
	if err != nil {
		t.Fatal(err)
	}
	authzCfg := authorize.Config{Issuer: st.issuer}
	if authz != nil {
		authz(&authzCfg)
	}
	authzSvc, err := authorize.New(ctx, authzCfg,
		authorize.Deps{Pool: pool(authorize.Schema), JetStream: js, Logger: logger.With("service", "authorize"), Keyring: keyring, Telemetry: st.tel, Limiter: limiter})
	if err != nil {
		t.Fatal(err)
	}
	cfg := token.Config{Issuer: st.issuer, MatrixSecret: homeserverSecret, ServerName: "example.org", RefreshReuseGrace: 10 * time.Second}
	for _, f := range configure {
		f(&cfg)
	}
	tok, err := token.New(ctx, cfg, token.Deps{
		Pool: pool(token.Schema), JetStream: js, Logger: logger.With("service", "token"),
		Authorize: authorizev1.NewAuthorizeServiceClient(fromToken), Accounts: accountsv1.NewAccountsServiceClient(fromToken),
		Keyring: keyring, Telemetry: st.tel, Limiter: limiter,
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := projection.RegisterMetrics(st.tel.MeterProvider().Meter("gatehouse.dev/platform/projection"), map[string]*projection.Set{
		"accounts": acc.Projections(), "authorize": authzSvc.Projections(), "token": tok.Projections(),
	}); err != nil {
		t.Fatal(err)
	}
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: logger, Telemetry: st.tel, Auth: &grpcx.Auth{
		InternalSecret: secret, HomeserverSecret: homeserverSecret,
		Sessions: grpcx.AccountsSessions(dial("accounts")), // browser sessions checked by accounts, as the host does
		Tokens:   tok.VerifyAdminToken,                     // administrators' bearer tokens, as the host does
	}})
	acc.RegisterGRPC(srv)
	authzSvc.RegisterGRPC(srv)
	tok.RegisterGRPC(srv)
	authzSvc.RegisterHTTP(mux)
	tok.RegisterHTTP(mux)
	st.admin = newAdminAPI(t, st.issuer, lis.Addr().String(), logger)
	st.admin.RegisterHTTP(mux)
	grpcCtx, stopGRPC := context.WithCancel(ctx)
	st.grpcAddr, st.stopGRPC = lis.Addr().String(), stopGRPC
	wg.Go(func() { grpcx.ServeListener(grpcCtx, srv, lis) })
	for _, run := range []func(context.Context) error{acc.Run, authzSvc.Run, tok.Run} {
		wg.Go(func() { run(ctx) })
	}
	return st
}

// user registers a user whose password is "<username>'s password".
func (st *stack) user(t *testing.T, username string, opts ...func(*accountsv1.RegisterRequest)) *accountsv1.User {
	t.Helper()
	req := &accountsv1.RegisterRequest{Username: username, Password: username + "'s password"}
	for _, f := range opts {
		f(req)
	}
	resp, err := st.accounts.Register(context.Background(), req)
	if err != nil {
		t.Fatalf("register %s: %v", username, err)
	}
	return resp.GetUser()
}

// signIn signs u in as the sign-in page does (the password checked by
// accounts, then a browser session started with its proof) and returns a
// context carrying the session, for calls the web service makes for a
// signed-in person.
func (st *stack) signIn(t *testing.T, u *accountsv1.User) context.Context {
	t.Helper()
	ctx := context.Background()
	v, err := st.accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: u.GetUsername(), Password: u.GetUsername() + "'s password"})
	if err != nil {
		t.Fatalf("sign in %s: %v", u.GetUsername(), err)
	}
	bs, err := st.accounts.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: u.GetId(), AuthProof: v.GetAuthProof()})
	if err != nil {
		t.Fatalf("browser session of %s: %v", u.GetUsername(), err)
	}
	return grpcx.WithBrowserSession(ctx, bs.GetSecret())
}

// client is a registered OAuth client.
type client struct {
	id, secret string
	// redirect is its first redirect URI.
	redirect string
}

// register posts client metadata to the registration endpoint and fails the
// test unless it is accepted.
func (st *stack) register(t *testing.T, meta map[string]any) client {
	t.Helper()
	r := st.post(t, "oauth2/registration", "application/json", mustJSON(t, meta), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("registration: %d %s", r.status, r.raw)
	}
	c := client{id: r.str("client_id"), secret: r.str("client_secret")}
	if uris, _ := meta["redirect_uris"].([]string); len(uris) > 0 {
		c.redirect = uris[0]
	}
	return c
}

// publicClient registers a native public client for the authorization code
// and refresh token grants.
func (st *stack) publicClient(t *testing.T) client {
	t.Helper()
	return st.register(t, map[string]any{
		"client_name": "Native App", "client_uri": "https://app.example.com/", "application_type": "native",
		"redirect_uris": []string{"http://127.0.0.1/callback"}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	})
}

// confidentialClient registers a web client authenticating with method
// (client_secret_basic or client_secret_post) for grants.
func (st *stack) confidentialClient(t *testing.T, method string, grants ...string) client {
	t.Helper()
	meta := map[string]any{
		"client_name": "Web App", "client_uri": "https://web.example.com/", "application_type": "web",
		"token_endpoint_auth_method": method, "grant_types": grants,
	}
	for _, g := range grants {
		if g == "authorization_code" {
			meta["redirect_uris"] = []string{"https://web.example.com/cb"}
			meta["response_types"] = []string{"code"}
		}
	}
	return st.register(t, meta)
}

// pkce is a code verifier and its S256 challenge.
type pkce struct{ verifier, challenge string }

// newPKCE makes a fresh verifier (RFC 7636 §4.1: 43 characters from 32
// random bytes) and its S256 challenge.
func newPKCE() pkce {
	b := make([]byte, 32)
	rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(v))
	return pkce{verifier: v, challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// code runs an authorization request for c as the browser would, approves
// it as u, signed in, through the authorize gRPC API (the consent page's call) and
// returns the code from the redirect back. extra adds or overrides request
// parameters.
func (st *stack) code(t *testing.T, c client, u *accountsv1.User, p pkce, extra url.Values) string {
	t.Helper()
	q := url.Values{
		"response_type": {"code"}, "client_id": {c.id}, "redirect_uri": {c.redirect}, "state": {"state-1"},
		"scope": {"openid urn:matrix:client:api:*"}, "code_challenge": {p.challenge}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		q[k] = v
	}
	resp, err := noRedirects.Get(st.issuer + "authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || loc.Query().Get("grant") == "" {
		t.Fatalf("authorize: %d, location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	approved, err := st.authorize.ApproveGrant(st.signIn(t, u), &authorizev1.ApproveGrantRequest{GrantId: loc.Query().Get("grant")})
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	back, err := url.Parse(approved.GetRedirectUri())
	if err != nil || back.Query().Get("code") == "" || back.Query().Get("state") != "state-1" {
		t.Fatalf("redirect back: %q", approved.GetRedirectUri())
	}
	return back.Query().Get("code")
}

// tokens is a successful token response.
type tokens struct {
	access, refresh, idToken, scope string
	expiresIn                       float64
}

// exchange trades a code of the public client c for tokens.
func (st *stack) exchange(t *testing.T, c client, code string, p pkce) tokens {
	t.Helper()
	r := st.tokenRequest(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect},
		"client_id": {c.id}, "code_verifier": {p.verifier}}, nil)
	return r.tokens(t, "code exchange")
}

// session signs u in to the public client c through the authorization code
// grant and returns the tokens.
func (st *stack) session(t *testing.T, c client, u *accountsv1.User) tokens {
	t.Helper()
	p := newPKCE()
	return st.exchange(t, c, st.code(t, c, u, p, nil), p)
}

// reply is an HTTP answer with its JSON body decoded.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// str is the body's string member key ("" when absent or not a string).
func (r reply) str(key string) string { s, _ := r.body[key].(string); return s }

// tokens reads a successful token response.
func (r reply) tokens(t *testing.T, what string) tokens {
	t.Helper()
	if r.status != http.StatusOK || r.str("access_token") == "" || r.str("token_type") != "Bearer" {
		t.Fatalf("%s: %d %s", what, r.status, r.raw)
	}
	exp, _ := r.body["expires_in"].(float64)
	return tokens{access: r.str("access_token"), refresh: r.str("refresh_token"), idToken: r.str("id_token"), scope: r.str("scope"), expiresIn: exp}
}

// wantOAuthError checks an OAuth error answer (RFC 6749 §5.2).
func (r reply) wantOAuthError(t *testing.T, what string, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.raw, status, code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q", what, ct)
	}
}

// noRedirects is an HTTP client handing redirects back instead of following them.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       30 * time.Second,
}

// do sends a request to the public server.
func (st *stack) do(t *testing.T, req *http.Request) reply {
	t.Helper()
	return send(t, noRedirects, req)
}

// send sends a request with the HTTP client c.
func send(t *testing.T, c *http.Client, req *http.Request) reply {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// post sends body to path with the content type; edit may change the request.
func (st *stack) post(t *testing.T, path, contentType, body string, edit func(*http.Request)) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, st.issuer+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if edit != nil {
		edit(req)
	}
	return st.do(t, req)
}

// postForm sends a form to path.
func (st *stack) postForm(t *testing.T, path string, form url.Values, edit func(*http.Request)) reply {
	t.Helper()
	return st.post(t, path, "application/x-www-form-urlencoded", form.Encode(), edit)
}

// tokenRequest posts to the token endpoint.
func (st *stack) tokenRequest(t *testing.T, form url.Values, edit func(*http.Request)) reply {
	t.Helper()
	return st.postForm(t, "oauth2/token", form, edit)
}

// introspect asks about token as the homeserver does (its shared secret,
// device ids supported).
func (st *stack) introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	r := st.postForm(t, "oauth2/introspect", url.Values{"token": {token}}, func(req *http.Request) {
		req.Header.Set("Authorization", "Bearer "+homeserverSecret)
		req.Header.Set("X-MAS-Supports-Device-Id", "1")
	})
	if r.status != http.StatusOK {
		t.Fatalf("introspect: %d %s", r.status, r.raw)
	}
	return r.body
}

// wantActive checks whether token introspects as active.
func (st *stack) wantActive(t *testing.T, what, token string, active bool) map[string]any {
	t.Helper()
	got := st.introspect(t, token)
	if active && got["active"] != true {
		t.Fatalf("%s: introspection %v, want active", what, got)
	}
	if !active && (got["active"] != false || len(got) != 1) {
		t.Fatalf("%s: introspection %v, want exactly {\"active\": false}", what, got)
	}
	return got
}

// basicAuth authenticates a request with client_secret_basic.
func basicAuth(id, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

// bearer sets an Authorization: Bearer header.
func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// mustJSON encodes v as JSON.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
