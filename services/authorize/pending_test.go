package authorize

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/ratelimit"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// newPendingEnv is an authorize service with the given pending ages and
// size, on the real clock (JetStream expires events by its own).
func newPendingEnv(t *testing.T, cfg Config) *deviceEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool, err := pg.Connect(ctx, testkit.Postgres(t), Schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	limits := ratelimit.DefaultRules()
	limits.ClientRegistration.Burst, limits.DeviceAuthorization.Burst, limits.Authorization.Burst = 1e6, 1e6, 1e6
	cfg.Issuer, cfg.AllowInsecureClients, cfg.Limits = "https://auth.example.org/", true, limits
	svc, err := New(ctx, cfg, Deps{Pool: pool, JetStream: testkit.NATS(t), Logger: slog.New(slog.DiscardHandler), Keyring: sealed.NewRandomKeyring()})
	if err != nil {
		t.Fatal(err)
	}
	e := &deviceEnv{svc: svc, srv: &grpcServer{svc: svc}, mux: http.NewServeMux()}
	svc.RegisterHTTP(e.mux)
	go svc.Run(ctx)
	return e
}

// webClient is a public client of the authorization code and device grants.
func webClient() map[string]any {
	return map[string]any{
		"client_name": "App", "client_uri": "https://app.example.com/", "redirect_uris": []string{"https://app.example.com/cb"},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
		"response_types": []string{"code"},
	}
}

// requestGrant sends an authorization request and returns the grant's id.
func (e *deviceEnv) requestGrant(t *testing.T, clientID string) (string, *httptest.ResponseRecorder) {
	t.Helper()
	q := url.Values{"client_id": {clientID}, "redirect_uri": {"https://app.example.com/cb"}, "response_type": {"code"},
		"scope": {"openid"}, "code_challenge": {challenge("verifier-verifier-verifier-verifier-verifier-1")}, "code_challenge_method": {"S256"}}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/authorize?"+q.Encode(), nil))
	loc, _ := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusSeeOther || loc == nil || loc.Query().Get("grant") == "" {
		return "", rec
	}
	return loc.Query().Get("grant"), rec
}

func (e *deviceEnv) rows(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := e.svc.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// What anonymous requests leave in AUTHORIZE_PENDING disappears when the
// flows can no longer complete: the stream holds nothing, the read models
// forget them (and a rebuild agrees), while a client a person approved is
// kept in AUTHORIZE.
func TestPendingFlowsExpire(t *testing.T) {
	e := newPendingEnv(t, Config{GrantTTL: 2 * time.Second, CodeTTL: time.Second, DeviceTTL: 2 * time.Second, ClientTTL: 3 * time.Second, Keep: -1})
	ctx := context.Background()
	approved, _ := e.registerDeviceClient(t, webClient())
	unused, _ := e.registerDeviceClient(t, webClient())

	kept, rec := e.requestGrant(t, approved)
	if kept == "" {
		t.Fatalf("authorization request: %d %s", rec.Code, rec.Body)
	}
	forgotten, _ := e.requestGrant(t, unused)
	if _, da := e.authorizeDevice(t, url.Values{"client_id": {unused}}); da["device_code"] == nil {
		t.Fatalf("device authorization: %v", da)
	}
	if _, err := e.srv.ApproveGrant(signedIn(ctx, ids.New(), "alice"), &authorizev1.ApproveGrantRequest{GrantId: kept}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	for _, table := range []string{"pending_grants", "pending_devices", "pending_clients"} {
		if e.rows(t, table) == 0 {
			t.Fatalf("%s is empty while the flows are under way", table)
		}
	}
	if _, err := e.srv.GetGrant(ctx, &authorizev1.GetGrantRequest{GrantId: forgotten}); err != nil {
		t.Fatalf("a live grant: %v", err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := e.svc.pending.JetStream().Stream(ctx, eventsv1.AuthorizePending.Name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := info.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		left := e.rows(t, "pending_grants") + e.rows(t, "pending_devices") + e.rows(t, "pending_clients")
		if st.State.Msgs == 0 && left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after every flow ended the stream holds %d messages and the read models %d rows", st.State.Msgs, left)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if _, err := e.srv.GetGrant(ctx, &authorizev1.GetGrantRequest{GrantId: forgotten}); errs.KindOf(err) != errs.KindNotFound {
		t.Errorf("an expired grant: %v", err)
	}
	if _, err := e.srv.GetClient(ctx, &authorizev1.GetClientRequest{ClientId: unused}); errs.KindOf(err) != errs.KindNotFound {
		t.Errorf("a client nobody approved, after its registration expired: %v", err)
	}
	if c, err := e.srv.GetClient(ctx, &authorizev1.GetClientRequest{ClientId: approved}); err != nil || c.GetClientId() != approved {
		t.Errorf("the client a person approved: %v %v", c, err)
	}
	for _, name := range []string{grantsProjection, devicesProjection, pendingClientsProjection} {
		if _, err := e.svc.projections.Rebuild(ctx, name); err != nil {
			t.Fatalf("rebuild %s: %v", name, err)
		}
	}
	if left := e.rows(t, "pending_grants") + e.rows(t, "pending_devices") + e.rows(t, "pending_clients"); left != 0 {
		t.Errorf("a rebuild after expiry brought back %d rows", left)
	}
	if id, _ := e.requestGrant(t, approved); id == "" {
		t.Error("the kept client cannot start a new flow")
	}
}

// A nearly full AUTHORIZE_PENDING refuses new anonymous requests with 503
// and Retry-After, never holds more than its bound, and still takes the
// approval of a flow under way.
func TestPendingStreamBound(t *testing.T) {
	const bound = 128 << 10
	e := newPendingEnv(t, Config{PendingMaxBytes: bound})
	ctx := context.Background()
	clientID, _ := e.registerDeviceClient(t, webClient())
	grantID, _ := e.requestGrant(t, clientID)
	if grantID == "" {
		t.Fatal("no grant")
	}
	big := webClient()
	big["client_name"] = strings.Repeat("n", 2000)
	big["tos_uri"] = "https://app.example.com/" + strings.Repeat("t", 1900)
	big["policy_uri"] = "https://app.example.com/" + strings.Repeat("p", 1900)
	var refused *httptest.ResponseRecorder
	for i := 0; i < 500 && refused == nil; i++ {
		body := strings.NewReader(mustJSON(t, big))
		req := httptest.NewRequest(http.MethodPost, "/oauth2/registration", body)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated:
		case http.StatusServiceUnavailable:
			refused = rec
		default:
			t.Fatalf("registration %d: %d %s", i, rec.Code, rec.Body)
		}
		if i%20 == 19 {
			time.Sleep(1100 * time.Millisecond) // the size is read once a second
		}
	}
	if refused == nil {
		t.Fatal("500 registrations of 6 KiB fit into 128 KiB")
	}
	if secs, err := strconv.Atoi(refused.Header().Get("Retry-After")); err != nil || secs < 1 {
		t.Errorf("Retry-After %q", refused.Header().Get("Retry-After"))
	}
	if !strings.Contains(refused.Body.String(), "temporarily_unavailable") {
		t.Errorf("refusal body %s", refused.Body)
	}
	if _, rec := e.requestGrant(t, clientID); rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "error=temporarily_unavailable") {
		t.Errorf("an authorization request while full: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	if _, err := e.srv.ApproveGrant(signedIn(ctx, ids.New(), "alice"), &authorizev1.ApproveGrantRequest{GrantId: grantID}); err != nil {
		t.Errorf("approving a flow under way while full: %v", err)
	}
	used, limit, err := e.svc.pending.Usage(ctx)
	if err != nil || used > bound || limit != bound {
		t.Errorf("the pending stream holds %d bytes of %d (%v), bound %d", used, limit, err, bound)
	}
}

// challenge is the S256 PKCE challenge of a verifier.
func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
