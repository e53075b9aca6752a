package inprocess

import (
	"context"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token"
)

var (
	compatAccess  = regexp.MustCompile(`^mct_[A-Za-z0-9]{30}_[A-Za-z0-9]{6}$`)
	compatRefresh = regexp.MustCompile(`^mcr_[A-Za-z0-9]{30}_[A-Za-z0-9]{6}$`)
	newDevice     = regexp.MustCompile(`^[A-Z0-9]{10}$`)
)

// peers numbers the loopback addresses Matrix clients speak from: password
// logins are limited to 3 a minute per address.
var peers atomic.Int32

// matrix is a Matrix client of the compatibility API, speaking from a
// loopback address of its own.
type matrix struct {
	st *stack
	c  *http.Client
}

// matrixClient is a Matrix client from a fresh loopback address.
func (st *stack) matrixClient() *matrix {
	n := peers.Add(1)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+n/250), byte(1+n%250))}, Timeout: 10 * time.Second}
	return &matrix{st: st, c: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}}
}

// call sends a request with an optional JSON body and access token.
func (m *matrix) call(t *testing.T, method, path, token, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, m.st.issuer+strings.TrimPrefix(path, "/"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return send(t, m.c, req)
}

// login posts a login body and fails unless it succeeds.
func (m *matrix) login(t *testing.T, body map[string]any) reply {
	t.Helper()
	r := m.call(t, http.MethodPost, "_matrix/client/v3/login", "", mustJSON(t, body))
	if r.status != http.StatusOK {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	return r
}

// wantMatrixError checks a Matrix error answer.
func (r reply) wantMatrixError(t *testing.T, what string, status int, errcode string) {
	t.Helper()
	if r.status != status || r.str("errcode") != errcode || r.str("error") == "" {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.raw, status, errcode)
	}
}

// password is a password login body for user (whose password is
// "<user>'s password"), with extra members.
func password(user string, extra map[string]any) map[string]any {
	body := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": user}, "password": user + "'s password"}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

// The compatibility login API (MSC3824): password and login-token logins
// start compat sessions whose tokens introspect like OAuth ones, refresh,
// and end by logout.
func TestCompatLogin(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	m := st.matrixClient()

	flows := m.call(t, http.MethodGet, "_matrix/client/r0/login", "", "")
	if flows.status != http.StatusOK || !strings.Contains(flows.raw, `"m.login.password"`) || !strings.Contains(flows.raw, `"m.login.token"`) ||
		!strings.Contains(flows.raw, `"oauth_aware_preferred":true`) || flows.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("flows: %d %s", flows.status, flows.raw)
	}

	r := m.login(t, password("alice", map[string]any{"initial_device_display_name": "Old Phone"}))
	access, device := r.str("access_token"), r.str("device_id")
	if r.str("user_id") != "@alice:example.org" || !compatAccess.MatchString(access) || !newDevice.MatchString(device) ||
		r.str("home_server") != "example.org" || r.body["refresh_token"] != nil {
		t.Fatalf("password login: %s", r.raw)
	}
	got := st.wantActive(t, "compat access token", access, true)
	if got["sub"] != alice.GetId() || got["username"] != "alice" || got["client_id"] != "legacy" || got["device_id"] != device || got["exp"] != nil ||
		!strings.Contains(got["scope"].(string), "urn:matrix:client:device:"+device) {
		t.Fatalf("compat introspection: %v", got)
	}

	// With refresh tokens: an expiring access token, rotated by /refresh.
	r = m.login(t, password("alice", map[string]any{"refresh_token": true, "device_id": "MYDEVICE"}))
	refresh, short := r.str("refresh_token"), r.str("access_token")
	if ms, _ := r.body["expires_in_ms"].(float64); !compatRefresh.MatchString(refresh) || r.str("device_id") != "MYDEVICE" || ms <= 0 || ms > 300_000 {
		t.Fatalf("login with refresh: %s", r.raw)
	}
	rr := m.call(t, http.MethodPost, "_matrix/client/v3/refresh", "", mustJSON(t, map[string]any{"refresh_token": refresh}))
	if rr.status != http.StatusOK || !compatAccess.MatchString(rr.str("access_token")) || !compatRefresh.MatchString(rr.str("refresh_token")) ||
		rr.str("refresh_token") == refresh {
		t.Fatalf("refresh: %d %s", rr.status, rr.raw)
	}
	st.wantActive(t, "rotated-out compat access token", short, false)
	st.wantActive(t, "refreshed compat access token", rr.str("access_token"), true)

	// A reused device id replaces that device's session.
	again := m.login(t, password("alice", map[string]any{"device_id": "MYDEVICE"}))
	st.wantActive(t, "the replaced device's token", rr.str("access_token"), false)

	// A login token (the SSO page's) works once.
	lt, err := st.tokens.CreateLoginToken(st.signIn(t, alice), &tokenv1.CreateLoginTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	byToken := m.login(t, map[string]any{"type": "m.login.token", "token": lt.GetLoginToken()})
	if byToken.str("user_id") != "@alice:example.org" || !compatAccess.MatchString(byToken.str("access_token")) {
		t.Fatalf("token login: %s", byToken.raw)
	}
	m.call(t, http.MethodPost, "_matrix/client/v3/login", "", mustJSON(t, map[string]any{"type": "m.login.token", "token": lt.GetLoginToken()})).
		wantMatrixError(t, "a login token used twice", http.StatusForbidden, "M_FORBIDDEN")

	// /logout ends the caller's session; /logout/all every compat session,
	// only when the client says OAuth sessions may stay.
	if r := m.call(t, http.MethodPost, "_matrix/client/v3/logout", access, "{}"); r.status != http.StatusOK {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	st.wantActive(t, "token after logout", access, false)
	oauth := st.session(t, st.publicClient(t), alice)
	m.call(t, http.MethodPost, "_matrix/client/v3/logout/all", again.str("access_token"), "{}").
		wantMatrixError(t, "logout/all without the flag", http.StatusNotFound, "M_UNRECOGNIZED")
	st.wantActive(t, "compat token after a refused logout/all", again.str("access_token"), true)
	if r := m.call(t, http.MethodPost, "_matrix/client/v3/logout/all", again.str("access_token"), `{"io.element.only_compat_is_fine": true}`); r.status != http.StatusOK {
		t.Fatalf("logout/all: %d %s", r.status, r.raw)
	}
	st.wantActive(t, "compat token after logout/all", again.str("access_token"), false)
	st.wantActive(t, "token login's session after logout/all", byToken.str("access_token"), false)
	st.wantActive(t, "OAuth session after logout/all", oauth.access, true)
}

// Refusals of the compatibility API are Matrix errors: the same answer for
// an unknown user and a wrong password, locked and deactivated accounts
// revealed only after a correct password, malformed bodies, unknown tokens,
// and a per-address limit on password guesses.
func TestCompatLoginBadInput(t *testing.T) {
	st := newStack(t)
	ctx := context.Background()
	st.user(t, "alice")
	locked := st.user(t, "lockie")
	gone := st.user(t, "gone")
	if _, err := st.accounts.LockUser(ctx, &accountsv1.LockUserRequest{UserId: locked.GetId(), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.accounts.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: gone.GetId()}); err != nil {
		t.Fatal(err)
	}
	post := func(body string) reply {
		return st.matrixClient().call(t, http.MethodPost, "_matrix/client/v3/login", "", body)
	}

	wrong := post(mustJSON(t, map[string]any{"type": "m.login.password", "user": "alice", "password": "not it"}))
	wrong.wantMatrixError(t, "wrong password", http.StatusForbidden, "M_FORBIDDEN")
	unknown := post(mustJSON(t, map[string]any{"type": "m.login.password", "user": "nobody", "password": "not it"}))
	if unknown.status != wrong.status || unknown.raw != wrong.raw {
		t.Fatalf("an unknown user (%s) and a wrong password (%s) answer differently", unknown.raw, wrong.raw)
	}
	post(mustJSON(t, map[string]any{"type": "m.login.password", "user": "lockie", "password": "not it"})).
		wantMatrixError(t, "locked user, wrong password", http.StatusForbidden, "M_FORBIDDEN")
	post(mustJSON(t, password("lockie", nil))).wantMatrixError(t, "locked user", http.StatusUnauthorized, "M_USER_LOCKED")
	post(mustJSON(t, password("gone", nil))).wantMatrixError(t, "deactivated user", http.StatusForbidden, "M_USER_DEACTIVATED")
	post(mustJSON(t, password("@alice:elsewhere.example", nil))).wantMatrixError(t, "a user of another server", http.StatusForbidden, "M_FORBIDDEN")

	for _, tt := range []struct {
		what, body string
		status     int
		code       string
	}{
		{"not JSON", `{"type": "m.login.password",`, http.StatusBadRequest, "M_NOT_JSON"},
		{"a form", `type=m.login.password&user=alice`, http.StatusBadRequest, "M_NOT_JSON"},
		{"not an object", `["m.login.password"]`, http.StatusBadRequest, "M_BAD_JSON"},
		{"a number as password", `{"type":"m.login.password","user":"alice","password":12345}`, http.StatusBadRequest, "M_BAD_JSON"},
		{"no password", `{"type":"m.login.password","user":"alice"}`, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"no type", `{"user":"alice","password":"x"}`, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"no login token", `{"type":"m.login.token"}`, http.StatusBadRequest, "M_MISSING_PARAM"},
		{"an unknown login token", `{"type":"m.login.token","token":"abcdefabcdefabcdefabcdefabcdefab"}`, http.StatusForbidden, "M_FORBIDDEN"},
		{"an unknown login type", `{"type":"m.login.dummy"}`, http.StatusBadRequest, "M_UNRECOGNIZED"},
		{"a bad device id", `{"type":"m.login.password","user":"alice","password":"x","device_id":"has space"}`, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"too large", `{"type":"m.login.password","user":"` + strings.Repeat("a", 70<<10) + `"}`, http.StatusRequestEntityTooLarge, "M_TOO_LARGE"},
	} {
		t.Run(tt.what, func(t *testing.T) { post(tt.body).wantMatrixError(t, tt.what, tt.status, tt.code) })
	}

	m := st.matrixClient()
	m.call(t, http.MethodGet, "_matrix/client/v3.1/login", "", "").wantMatrixError(t, "an unknown API version", http.StatusNotFound, "M_UNRECOGNIZED")
	r := m.call(t, http.MethodPut, "_matrix/client/v3/login", "", "{}")
	r.wantMatrixError(t, "PUT /login", http.StatusMethodNotAllowed, "M_UNRECOGNIZED")
	if r.header.Get("Allow") == "" {
		t.Fatal("405 without Allow")
	}
	m.call(t, http.MethodPost, "_matrix/client/v3/logout", "", "{}").wantMatrixError(t, "logout without a token", http.StatusUnauthorized, "M_MISSING_TOKEN")
	m.call(t, http.MethodPost, "_matrix/client/v3/logout", "mct_garbage", "{}").wantMatrixError(t, "logout with garbage", http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	oauth := st.session(t, st.publicClient(t), st.user(t, "olive"))
	m.call(t, http.MethodPost, "_matrix/client/v3/logout", oauth.access, "{}").wantMatrixError(t, "logout with an OAuth token", http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	st.wantActive(t, "the OAuth session after a compat logout attempt", oauth.access, true)
	m.call(t, http.MethodPost, "_matrix/client/v3/refresh", "", `{"refresh_token":"mcr_garbage"}`).wantMatrixError(t, "refresh with garbage", http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	m.call(t, http.MethodPost, "_matrix/client/v3/refresh", "", `{"refresh_token":"`+oauth.refresh+`"}`).wantMatrixError(t, "refresh with an OAuth token", http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	m.call(t, http.MethodPost, "_matrix/client/v3/refresh", "", `{}`).wantMatrixError(t, "refresh without a token", http.StatusBadRequest, "M_MISSING_PARAM")

	// Password guesses from one address: 3 a minute, then 429 with
	// Retry-After. Logins with the right password do not count.
	guesser := st.matrixClient()
	for range 10 {
		guesser.login(t, password("alice", nil))
	}
	for i := range 3 {
		guesser.call(t, http.MethodPost, "_matrix/client/v3/login", "", mustJSON(t, map[string]any{"type": "m.login.password", "user": "alice", "password": "guess " + string(rune('a'+i))})).
			wantMatrixError(t, "a guess within the burst", http.StatusForbidden, "M_FORBIDDEN")
	}
	r = guesser.call(t, http.MethodPost, "_matrix/client/v3/login", "", mustJSON(t, password("alice", nil)))
	r.wantMatrixError(t, "past the burst", http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	if ms, _ := r.body["retry_after_ms"].(float64); ms <= 0 || ms > 60_000 || r.header.Get("Retry-After") == "" {
		t.Fatalf("retry_after_ms: %s, Retry-After %q", r.raw, r.header.Get("Retry-After"))
	}
	st.matrixClient().login(t, password("alice", nil)) // another address is not limited
}

// compatLogin logs u in through the compatibility API with its password,
// with a refresh token when refresh, and returns the answer's body.
func (st *stack) compatLogin(t *testing.T, u *accountsv1.User, refresh bool) map[string]any {
	t.Helper()
	return st.matrixClient().login(t, password(u.GetUsername(), map[string]any{"refresh_token": refresh})).body
}

// Issue 9: a compat login of an administrator carries no Synapse admin scope
// unless the configuration allows it (regression: it always did; MAS never
// does) — by password and by login token alike.
func TestCompatLoginAdminScope(t *testing.T) {
	for _, allowed := range []bool{false, true} {
		t.Run(map[bool]string{false: "by default", true: "with matrix.compat_admin_scope"}[allowed], func(t *testing.T) {
			st := newStack(t, func(c *token.Config) { c.CompatAdminScope = allowed })
			root := st.user(t, "root", func(r *accountsv1.RegisterRequest) { r.Admin = true })
			alice := st.user(t, "alice")
			lt, err := st.tokens.CreateLoginToken(st.signIn(t, root), &tokenv1.CreateLoginTokenRequest{})
			if err != nil {
				t.Fatal(err)
			}
			byToken := st.matrixClient().login(t, map[string]any{"type": "m.login.token", "token": lt.GetLoginToken()}).body
			for what, tt := range map[string]struct {
				access string
				admin  bool
			}{
				"an administrator's password login": {st.compatLogin(t, root, false)["access_token"].(string), allowed},
				"an administrator's token login":    {byToken["access_token"].(string), allowed},
				"a user's password login":           {st.compatLogin(t, alice, false)["access_token"].(string), false},
			} {
				scope := strings.Fields(st.wantActive(t, what, tt.access, true)["scope"].(string))
				if slices.Contains(scope, "urn:synapse:admin:*") != tt.admin {
					t.Errorf("%s: scope %v, admin scope wanted: %v", what, scope, tt.admin)
				}
			}
		})
	}
}
