package authorize

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/ratelimit"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	"gatehouse.dev/services/authorize/internal/device"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// deviceEnv is an authorize service on real NATS and PostgreSQL with a
// clock the test moves.
type deviceEnv struct {
	svc   *Service
	srv   *grpcServer
	mux   *http.ServeMux
	clock atomic.Pointer[time.Time]
}

func newDeviceEnv(t *testing.T) *deviceEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool, err := pg.Connect(ctx, testkit.Postgres(t), Schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// The tests send every request from one address: a budget they never spend (see limits_test.go).
	limits := ratelimit.DefaultRules()
	limits.ClientRegistration.Burst, limits.DeviceAuthorization.Burst, limits.Authorization.Burst = 1e6, 1e6, 1e6
	svc, err := New(ctx, Config{Issuer: "https://auth.example.org/", AllowInsecureClients: true, Limits: limits},
		Deps{Pool: pool, JetStream: testkit.NATS(t), Logger: slog.New(slog.DiscardHandler), Keyring: sealed.NewRandomKeyring()})
	if err != nil {
		t.Fatal(err)
	}
	e := &deviceEnv{svc: svc, srv: &grpcServer{svc: svc}, mux: http.NewServeMux()}
	now := time.Now()
	e.clock.Store(&now)
	svc.now = func() time.Time { return *e.clock.Load() }
	svc.RegisterHTTP(e.mux)
	go svc.Run(ctx)
	return e
}

// signedIn is ctx as the platform's interceptor makes it for a call the web
// service makes for a signed-in person (its browser session verified).
func signedIn(ctx context.Context, userID, username string) context.Context {
	return caller.NewContext(ctx, caller.Identity{Kind: caller.Web, User: &caller.User{ID: userID, Username: username}})
}

// TestDeviceApprovalNeedsSignedInUser: a device is approved only for the
// person whose browser session came with the call, never for a user the
// caller names.
func TestDeviceApprovalNeedsSignedInUser(t *testing.T) {
	e := newDeviceEnv(t)
	clientID, _ := e.registerDeviceClient(t, map[string]any{
		"client_name": "TV", "client_uri": "https://tv.example.org/", "application_type": "native",
		"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"}, "token_endpoint_auth_method": "none",
	})
	_, da := e.authorizeDevice(t, url.Values{"client_id": {clientID}, "scope": {"urn:matrix:client:api:*"}})
	ctx := caller.NewContext(context.Background(), caller.Identity{Kind: caller.Web})
	if _, err := e.srv.ApproveDeviceGrant(ctx, &authorizev1.ApproveDeviceGrantRequest{UserCode: da["user_code"].(string)}); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Fatalf("approval without a signed-in user: %v", err)
	}
}

func (e *deviceEnv) advance(d time.Duration) {
	next := e.clock.Load().Add(d)
	e.clock.Store(&next)
}

// registerDeviceClient registers a client through the registration endpoint
// and returns its id and secret.
func (e *deviceEnv) registerDeviceClient(t *testing.T, meta map[string]any) (string, string) {
	t.Helper()
	body, _ := json.Marshal(meta)
	req := httptest.NewRequest(http.MethodPost, "/oauth2/registration", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	if rec.Code != http.StatusCreated {
		t.Fatalf("registration: %d %v", rec.Code, out)
	}
	secret, _ := out["client_secret"].(string)
	return out["client_id"].(string), secret
}

// authorizeDevice posts to the device authorization endpoint.
func (e *deviceEnv) authorizeDevice(t *testing.T, form url.Values, basic ...string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/oauth2/device", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("device authorization: %d %q", rec.Code, rec.Body.String())
	}
	return rec.Code, out
}

func (e *deviceEnv) poll(t *testing.T, deviceCode, clientID string) (*authorizev1.PollDeviceCodeResponse, error) {
	t.Helper()
	return e.srv.PollDeviceCode(context.Background(), &authorizev1.PollDeviceCodeRequest{DeviceCode: deviceCode, ClientId: clientID, SessionId: ids.New()})
}

func publicDeviceClient() map[string]any {
	return map[string]any{
		"client_name": "TV", "client_uri": "https://tv.example.com/", "application_type": "native",
		"token_endpoint_auth_method": "none", "grant_types": []string{device.GrantType, "refresh_token"},
	}
}

func TestDeviceGrantLifecycle(t *testing.T) {
	e := newDeviceEnv(t)
	ctx := context.Background()
	clientID, _ := e.registerDeviceClient(t, publicDeviceClient())

	status, da := e.authorizeDevice(t, url.Values{"client_id": {clientID}, "scope": {"openid urn:matrix:client:api:*"}})
	if status != http.StatusOK {
		t.Fatalf("device authorization: %d %v", status, da)
	}
	deviceCode, _ := da["device_code"].(string)
	userCode, _ := da["user_code"].(string)
	if len(deviceCode) != device.DeviceCodeLength || len(userCode) != 9 || userCode[4] != '-' ||
		da["verification_uri"] != "https://auth.example.org/link" ||
		da["verification_uri_complete"] != "https://auth.example.org/link?code="+userCode ||
		da["expires_in"] != float64(1200) || da["interval"] != float64(5) {
		t.Fatalf("device authorization response: %v", da)
	}

	// The /link page finds the grant however the person types the code.
	got, err := e.srv.GetDeviceGrant(ctx, &authorizev1.GetDeviceGrantRequest{UserCode: strings.ToLower(strings.ReplaceAll(userCode, "-", " "))})
	if err != nil {
		t.Fatal(err)
	}
	dg := got.GetDeviceGrant()
	if dg.GetStatus() != authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_PENDING || dg.GetClient().GetClientName() != "TV" ||
		dg.GetScope() != "openid urn:matrix:client:api:*" || dg.GetUserCode() != userCode {
		t.Fatalf("GetDeviceGrant: %v", dg)
	}
	for _, bad := range []string{"BCDF-GHJK", "not a code", ""} {
		if _, err := e.srv.GetDeviceGrant(ctx, &authorizev1.GetDeviceGrantRequest{UserCode: bad}); err == nil {
			t.Fatalf("GetDeviceGrant(%q) found something", bad)
		}
	}

	// Polling: pending, then too fast, then on time at the increased interval.
	p, err := e.poll(t, deviceCode, clientID)
	if err != nil || p.GetStatus() != authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_PENDING || p.GetInterval() != 5 {
		t.Fatalf("first poll: %v, %v", p, err)
	}
	e.advance(time.Second)
	if p, err = e.poll(t, deviceCode, clientID); err != nil || p.GetStatus() != authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_SLOW_DOWN || p.GetInterval() != 10 {
		t.Fatalf("fast poll: %v, %v", p, err)
	}
	e.advance(6 * time.Second)
	if p, err = e.poll(t, deviceCode, clientID); err != nil || p.GetStatus() != authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_SLOW_DOWN || p.GetInterval() != 15 {
		t.Fatalf("poll 6 s after a slow_down: %v, %v", p, err)
	}
	e.advance(15 * time.Second)
	if p, err = e.poll(t, deviceCode, clientID); err != nil || p.GetStatus() != authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_PENDING {
		t.Fatalf("poll on time: %v, %v", p, err)
	}

	// Another client cannot use the code, and learns nothing about it.
	otherID, _ := e.registerDeviceClient(t, publicDeviceClient())
	if _, err := e.poll(t, deviceCode, otherID); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Fatalf("another client's poll: %v", err)
	}
	if _, err := e.poll(t, "unknown-device-code", clientID); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Fatalf("unknown device code: %v", err)
	}

	// Admin scopes need an administrator.
	user := ids.New()
	_, adminDA := e.authorizeDevice(t, url.Values{"client_id": {clientID}, "scope": {"urn:matrix:client:api:* urn:synapse:admin:*"}})
	_, err = e.srv.ApproveDeviceGrant(signedIn(ctx, user, "alice"), &authorizev1.ApproveDeviceGrantRequest{UserCode: adminDA["user_code"].(string)})
	if errs.KindOf(err) != errs.KindPermissionDenied {
		t.Fatalf("admin scope approved for a non-admin: %v", err)
	}

	// Approval fills in a device; concurrent polls get the tokens once.
	approved, err := e.srv.ApproveDeviceGrant(signedIn(ctx, user, "alice"), &authorizev1.ApproveDeviceGrantRequest{UserCode: userCode})
	if err != nil || approved.GetDeviceGrant().GetStatus() != authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_APPROVED {
		t.Fatalf("approve: %v, %v", approved, err)
	}
	if _, err := e.srv.ApproveDeviceGrant(signedIn(ctx, user, "alice"), &authorizev1.ApproveDeviceGrantRequest{UserCode: userCode}); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Fatalf("second approval: %v", err)
	}
	if _, err := e.srv.DenyDeviceGrant(ctx, &authorizev1.DenyDeviceGrantRequest{UserCode: userCode}); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Fatalf("denial after approval: %v", err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[authorizev1.DevicePollStatus]int{}
		winner   *authorizev1.PollDeviceCodeResponse
	)
	for range 6 {
		wg.Go(func() {
			p, err := e.poll(t, deviceCode, clientID)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			statuses[p.GetStatus()]++
			if p.GetStatus() == authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_APPROVED {
				winner = p
			}
		})
	}
	wg.Wait()
	if statuses[authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_APPROVED] != 1 || statuses[authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_USED] != 5 {
		t.Fatalf("concurrent polls of an approved code: %v", statuses)
	}
	if winner.GetUserId() != user || winner.GetUsername() != "alice" || !strings.Contains(winner.GetScope(), "urn:matrix:client:device:") ||
		winner.GetDeviceGrantId() != dg.GetDeviceGrantId() || winner.GetAuthTime() == nil {
		t.Fatalf("approved poll: %v", winner)
	}
	got, err = e.srv.GetDeviceGrant(ctx, &authorizev1.GetDeviceGrantRequest{UserCode: userCode})
	if err != nil || got.GetDeviceGrant().GetStatus() != authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_USED {
		t.Fatalf("after use: %v, %v", got, err)
	}
}

func TestDeviceGrantDenialAndExpiry(t *testing.T) {
	e := newDeviceEnv(t)
	ctx := context.Background()
	clientID, _ := e.registerDeviceClient(t, publicDeviceClient())
	start := func() (string, string) {
		status, da := e.authorizeDevice(t, url.Values{"client_id": {clientID}, "scope": {"urn:matrix:client:api:*"}})
		if status != http.StatusOK {
			t.Fatalf("device authorization: %d %v", status, da)
		}
		return da["device_code"].(string), da["user_code"].(string)
	}

	deviceCode, userCode := start()
	for range 2 { // denying twice is fine
		if _, err := e.srv.DenyDeviceGrant(ctx, &authorizev1.DenyDeviceGrantRequest{UserCode: userCode}); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := e.poll(t, deviceCode, clientID); err != nil || p.GetStatus() != authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_DENIED {
		t.Fatalf("poll after denial: %v, %v", p, err)
	}
	if _, err := e.srv.ApproveDeviceGrant(signedIn(ctx, ids.New(), "bob"), &authorizev1.ApproveDeviceGrantRequest{UserCode: userCode}); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Fatalf("approval after denial: %v", err)
	}

	deviceCode, userCode = start()
	e.advance(device.Lifetime)
	if p, err := e.poll(t, deviceCode, clientID); err != nil || p.GetStatus() != authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_EXPIRED {
		t.Fatalf("poll after expiry: %v, %v", p, err)
	}
	got, err := e.srv.GetDeviceGrant(ctx, &authorizev1.GetDeviceGrantRequest{UserCode: userCode})
	if err != nil || got.GetDeviceGrant().GetStatus() != authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_EXPIRED {
		t.Fatalf("expired grant: %v, %v", got, err)
	}
	if _, err := e.srv.ApproveDeviceGrant(signedIn(ctx, ids.New(), "bob"), &authorizev1.ApproveDeviceGrantRequest{UserCode: userCode}); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Fatalf("approval after expiry: %v", err)
	}
}

func TestDeviceAuthorizationEndpoint(t *testing.T) {
	e := newDeviceEnv(t)
	public, _ := e.registerDeviceClient(t, publicDeviceClient())
	confidential, secret := e.registerDeviceClient(t, map[string]any{
		"client_name": "Kiosk", "client_uri": "https://kiosk.example.com/", "grant_types": []string{device.GrantType},
	})
	postClient, postSecret := e.registerDeviceClient(t, map[string]any{
		"client_name": "Kiosk", "client_uri": "https://kiosk.example.com/", "grant_types": []string{device.GrantType},
		"token_endpoint_auth_method": "client_secret_post",
	})
	codeOnly, _ := e.registerDeviceClient(t, map[string]any{
		"client_name": "Web", "client_uri": "https://web.example.com/", "redirect_uris": []string{"https://web.example.com/cb"},
		"token_endpoint_auth_method": "none",
	})
	scope := []string{"urn:matrix:client:api:*"}
	tests := []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		code   string
	}{
		{"public", url.Values{"client_id": {public}, "scope": scope}, nil, 200, ""},
		{"public without scope", url.Values{"client_id": {public}}, nil, 200, ""},
		{"basic", url.Values{"scope": scope}, []string{confidential, secret}, 200, ""},
		{"post", url.Values{"client_id": {postClient}, "client_secret": {postSecret}, "scope": scope}, nil, 200, ""},
		{"basic, wrong secret", url.Values{"scope": scope}, []string{confidential, secret + "x"}, 401, "invalid_client"},
		{"basic client without its secret", url.Values{"client_id": {confidential}, "scope": scope}, nil, 401, "invalid_client"},
		{"basic client posting its secret", url.Values{"client_id": {confidential}, "client_secret": {secret}}, nil, 401, "invalid_client"},
		{"post, wrong secret", url.Values{"client_id": {postClient}, "client_secret": {"nope"}}, nil, 401, "invalid_client"},
		{"public client with a secret", url.Values{"client_id": {public}, "client_secret": {"x"}}, nil, 401, "invalid_client"},
		{"assertion without its type", url.Values{"client_id": {public}, "client_assertion": {"x"}}, nil, 400, "invalid_request"},
		{"unreadable assertion", url.Values{"client_id": {public}, "client_assertion": {"x"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}}, nil, 401, "invalid_client"},
		{"two methods", url.Values{"client_secret": {secret}}, []string{confidential, secret}, 400, "invalid_request"},
		{"no client", url.Values{"scope": scope}, nil, 401, "invalid_client"},
		{"unknown client", url.Values{"client_id": {"nobody"}}, nil, 401, "invalid_client"},
		{"mismatched client ids", url.Values{"client_id": {public}}, []string{confidential, secret}, 400, "invalid_request"},
		{"client without the grant", url.Values{"client_id": {codeOnly}, "scope": scope}, nil, 400, "unauthorized_client"},
		{"bad scope", url.Values{"client_id": {public}, "scope": {"urn:matrix:client:device:ABCDEFGHIJ"}}, nil, 400, "invalid_scope"},
		{"unknown scope", url.Values{"client_id": {public}, "scope": {"write:everything"}}, nil, 400, "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := e.authorizeDevice(t, tt.form, tt.basic...)
			if status != tt.status || (tt.code != "" && out["error"] != tt.code) {
				t.Fatalf("got %d %v; want %d %s", status, out, tt.status, tt.code)
			}
		})
	}

	// Only form POSTs, each parameter once.
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/oauth2/device?client_id="+public, nil),
		func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/oauth2/device", strings.NewReader(`{"client_id":"`+public+`"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}(),
		func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/oauth2/device", strings.NewReader("client_id="+public+"&client_id="+public))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}(),
	} {
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, r)
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusMethodNotAllowed || !strings.Contains(rec.Body.String(), "invalid_request") {
			t.Fatalf("%s %s: %d %s", r.Method, r.Header.Get("Content-Type"), rec.Code, rec.Body.String())
		}
	}
}
