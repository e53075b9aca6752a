package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// The Matrix compatibility login API (MSC3824), exercised as Element's older
// clients do: plain JSON over HTTP against /_matrix/client/{version}/….

var (
	compatAccess  = regexp.MustCompile(`^mct_[A-Za-z0-9]{30}_[A-Za-z0-9]{6}$`)
	compatRefresh = regexp.MustCompile(`^mcr_[A-Za-z0-9]{30}_[A-Za-z0-9]{6}$`)
	newDevice     = regexp.MustCompile(`^[A-Z0-9]{10}$`)
)

func TestCompatLoginAPI(t *testing.T) {
	e := newOAuthEnv(t)
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	ctx := context.Background()
	register := func(t *testing.T, username string, admin bool) *accountsv1.User {
		t.Helper()
		resp, err := accounts.Register(ctx, &accountsv1.RegisterRequest{Username: username, Password: username + "'s password", Admin: admin})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetUser()
	}
	active := func(t *testing.T, token string) map[string]any {
		t.Helper()
		got := e.introspect(t, token)
		if got["active"] != true {
			t.Fatalf("token inactive: %v", got)
		}
		return got
	}
	inactive := func(t *testing.T, what, token string) {
		t.Helper()
		if got := e.introspect(t, token); got["active"] != false || len(got) != 1 {
			t.Fatalf("%s: token still active: %v", what, got)
		}
	}

	t.Run("flows", func(t *testing.T) {
		m := newMatrixClient(e)
		for _, v := range []string{"r0", "v3", "v1"} {
			r := m.do(t, http.MethodGet, "/_matrix/client/"+v+"/login", "", "")
			if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatalf("GET %s/login: %d %v", v, r.status, r.header)
			}
			var flows struct {
				Flows []map[string]any `json:"flows"`
			}
			if err := json.Unmarshal([]byte(r.raw), &flows); err != nil {
				t.Fatal(err)
			}
			types := map[string]map[string]any{}
			for _, f := range flows.Flows {
				types[f["type"].(string)] = f
			}
			sso := types["m.login.sso"]
			if len(types) != 3 || types["m.login.password"] == nil || types["m.login.token"] == nil || sso == nil {
				t.Fatalf("flows: %s", r.raw)
			}
			if sso["oauth_aware_preferred"] != true || sso["org.matrix.msc3824.delegated_oidc_compatibility"] != true || !reflect.DeepEqual(sso["identity_providers"], []any{}) {
				t.Fatalf("m.login.sso flow: %v", sso)
			}
		}
		wantMatrixError(t, "unknown version", m.do(t, http.MethodGet, "/_matrix/client/v3x/login", "", ""), http.StatusNotFound, "M_UNRECOGNIZED")
		wantMatrixError(t, "PUT /login", m.do(t, http.MethodPut, "/_matrix/client/v3/login", "", "{}"), http.StatusMethodNotAllowed, "M_UNRECOGNIZED")
		pre := m.do(t, http.MethodOptions, "/_matrix/client/v3/login", "", "")
		h := pre.header
		if pre.status >= 300 || h.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Content-Type") {
			t.Fatalf("pre-flight: %d %v", pre.status, h)
		}
	})

	t.Run("password login introspects like an OAuth token", func(t *testing.T) {
		got := compatLogin(t, e, alicePassword(map[string]any{"initial_device_display_name": "Element Desktop"}))
		access, _ := got["access_token"].(string)
		device, _ := got["device_id"].(string)
		if got["user_id"] != "@alice:example.org" || got["home_server"] != "example.org" || !compatAccess.MatchString(access) || !newDevice.MatchString(device) {
			t.Fatalf("login answer: %v", got)
		}
		if _, ok := got["refresh_token"]; ok {
			t.Fatalf("a refresh token nobody asked for: %v", got)
		}
		if _, ok := got["expires_in_ms"]; ok {
			t.Fatalf("an expiry nobody asked for: %v", got)
		}
		in := active(t, access)
		scope := strings.Fields(in["scope"].(string))
		for _, want := range []string{"urn:matrix:client:api:*", "urn:matrix:client:device:" + device, "urn:matrix:org.matrix.msc2967.client:api:*"} {
			if !slices.Contains(scope, want) {
				t.Errorf("scope %v lacks %s", scope, want)
			}
		}
		if slices.Contains(scope, "urn:synapse:admin:*") {
			t.Errorf("alice is no administrator: %v", scope)
		}
		if in["username"] != "alice" || in["sub"] != e.user.GetId() || in["device_id"] != device || in["token_type"] != "access_token" || in["client_id"] != "legacy" {
			t.Errorf("introspection: %v", in)
		}
		if _, ok := in["exp"]; ok {
			t.Errorf("a compat token without refresh expires: %v", in)
		}
		// The gRPC introspection agrees.
		pb, err := tokenv1.NewTokenServiceClient(e.conn).Introspect(ctx, &tokenv1.IntrospectRequest{Token: access})
		if err != nil || !pb.GetActive() || pb.GetDeviceId() != device || pb.GetExp() != nil {
			t.Errorf("gRPC introspection: %v, %v", pb, err)
		}
	})

	t.Run("legacy user field and full user ids", func(t *testing.T) {
		for _, user := range []string{"alice", "@alice:example.org", "Alice"} {
			got := compatLogin(t, e, map[string]any{"type": "m.login.password", "user": user, "password": "alice's password"})
			if got["user_id"] != "@alice:example.org" {
				t.Fatalf("user %q: %v", user, got)
			}
		}
		got := compatLogin(t, e, alicePassword(map[string]any{"identifier": map[string]any{"type": "m.id.user", "user": "@alice:example.org"}}))
		active(t, got["access_token"].(string))
		r := newMatrixClient(e).post(t, "/_matrix/client/r0/login", "", map[string]any{"type": "m.login.password", "user": "@alice:elsewhere.org", "password": "alice's password"})
		wantMatrixError(t, "another server's user", r, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("administrators get no Synapse admin scope by default", func(t *testing.T) {
		register(t, "root", true)
		got := compatLogin(t, e, map[string]any{"type": "m.login.password", "user": "root", "password": "root's password"})
		if scope := active(t, got["access_token"].(string))["scope"].(string); slices.Contains(strings.Fields(scope), "urn:synapse:admin:*") {
			t.Fatalf("a compat login carries the admin scope without matrix.compat_admin_scope: %s", scope)
		}
	})

	t.Run("a reused device id replaces its session", func(t *testing.T) {
		first := compatLogin(t, e, alicePassword(map[string]any{"device_id": "OLDPHONE01"}))
		other := compatLogin(t, e, alicePassword(map[string]any{"device_id": "OTHERDEV01"}))
		second := compatLogin(t, e, alicePassword(map[string]any{"device_id": "OLDPHONE01", "initial_device_display_name": "Phone"}))
		if first["device_id"] != "OLDPHONE01" || second["device_id"] != "OLDPHONE01" {
			t.Fatalf("device ids: %v, %v", first, second)
		}
		inactive(t, "the replaced session", first["access_token"].(string))
		if in := active(t, second["access_token"].(string)); in["device_id"] != "OLDPHONE01" {
			t.Fatalf("new session: %v", in)
		}
		active(t, other["access_token"].(string))
		r := newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", alicePassword(map[string]any{"device_id": "no spaces allowed"}))
		wantMatrixError(t, "bad device id", r, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("refresh tokens rotate", func(t *testing.T) {
		got := compatLogin(t, e, alicePassword(map[string]any{"refresh_token": true}))
		access, _ := got["access_token"].(string)
		refresh, _ := got["refresh_token"].(string)
		ms, _ := got["expires_in_ms"].(float64)
		if !compatAccess.MatchString(access) || !compatRefresh.MatchString(refresh) || ms < 290_000 || ms > 300_000 {
			t.Fatalf("login with refresh: %v", got)
		}
		if in := active(t, access); in["exp"] == nil {
			t.Fatalf("a refreshable compat token does not expire: %v", in)
		}
		inactive(t, "a refresh token, to the homeserver", refresh)
		m := newMatrixClient(e)
		r := m.post(t, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refresh})
		newAccess, _ := r.body["access_token"].(string)
		newRefresh, _ := r.body["refresh_token"].(string)
		if r.status != http.StatusOK || !compatAccess.MatchString(newAccess) || !compatRefresh.MatchString(newRefresh) || newRefresh == refresh || r.body["expires_in_ms"] == nil {
			t.Fatalf("refresh: %d %s", r.status, r.raw)
		}
		inactive(t, "the rotated-out access token", access)
		inactive(t, "the rotated-out refresh token", refresh)
		active(t, newAccess)
		replay := m.post(t, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refresh})
		wantMatrixError(t, "consumed refresh token", replay, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		if replay.body["soft_logout"] != false {
			t.Fatalf("soft_logout: %s", replay.raw)
		}
		wantMatrixError(t, "an access token as refresh token", m.post(t, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": newAccess}), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		wantMatrixError(t, "garbage refresh token", m.post(t, "/_matrix/client/r0/refresh", "", map[string]any{"refresh_token": "mcr_nope"}), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		wantMatrixError(t, "no refresh token", m.post(t, "/_matrix/client/v3/refresh", "", map[string]any{}), http.StatusBadRequest, "M_MISSING_PARAM")
		wantMatrixError(t, "refresh not JSON", m.post(t, "/_matrix/client/v3/refresh", "", "refresh_token=x"), http.StatusBadRequest, "M_NOT_JSON")
		// The new pair keeps working.
		again := m.post(t, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": newRefresh})
		if again.status != http.StatusOK {
			t.Fatalf("second refresh: %d %s", again.status, again.raw)
		}
	})

	t.Run("logout ends the session", func(t *testing.T) {
		got := compatLogin(t, e, alicePassword(nil))
		access := got["access_token"].(string)
		m := newMatrixClient(e)
		wantMatrixError(t, "logout without a token", m.post(t, "/_matrix/client/v3/logout", "", map[string]any{}), http.StatusUnauthorized, "M_MISSING_TOKEN")
		if r := m.post(t, "/_matrix/client/v3/logout", access, map[string]any{}); r.status != http.StatusOK || len(r.body) != 0 {
			t.Fatalf("logout: %d %s", r.status, r.raw)
		}
		inactive(t, "a logged-out token", access)
		wantMatrixError(t, "a second logout", m.post(t, "/_matrix/client/v3/logout", access, ""), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		// An OAuth session is not the compat API's to end.
		oauthToken := oauthAccessToken(t, e)
		wantMatrixError(t, "logout with an OAuth token", m.post(t, "/_matrix/client/v3/logout", oauthToken, ""), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		active(t, oauthToken)
	})

	t.Run("logout all ends every compat session only when told that is fine", func(t *testing.T) {
		bob := register(t, "bob", false)
		login := func() string {
			return compatLogin(t, e, map[string]any{"type": "m.login.password", "user": "bob", "password": "bob's password"})["access_token"].(string)
		}
		one, two := login(), login()
		aliceToken := compatLogin(t, e, alicePassword(nil))["access_token"].(string)
		m := newMatrixClient(e)
		wantMatrixError(t, "logout/all without the flag", m.post(t, "/_matrix/client/v3/logout/all", one, ""), http.StatusNotFound, "M_UNRECOGNIZED")
		wantMatrixError(t, "logout/all with the flag off", m.post(t, "/_matrix/client/v3/logout/all", one, map[string]any{"io.element.only_compat_is_fine": false}), http.StatusNotFound, "M_UNRECOGNIZED")
		active(t, one)
		active(t, two)
		if r := m.post(t, "/_matrix/client/v3/logout/all", one, map[string]any{"io.element.only_compat_is_fine": true}); r.status != http.StatusOK {
			t.Fatalf("logout/all: %d %s", r.status, r.raw)
		}
		inactive(t, "bob's first session", one)
		inactive(t, "bob's second session", two)
		active(t, aliceToken)
		sessions, err := tokenv1.NewTokenServiceClient(e.conn).ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: bob.GetId()})
		if err != nil || len(sessions.GetSessions()) != 0 {
			t.Fatalf("bob's live sessions after logout/all: %v, %v", sessions, err)
		}
		wantMatrixError(t, "logout/all with an ended session", m.post(t, "/_matrix/client/v3/logout/all", one, map[string]any{"io.element.only_compat_is_fine": true}), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	})

	t.Run("login tokens work once", func(t *testing.T) {
		tokens := tokenv1.NewTokenServiceClient(e.conn)
		lt, err := tokens.CreateLoginToken(e.signedIn(t), &tokenv1.CreateLoginTokenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(lt.GetLoginToken()) != 32 || time.Until(lt.GetExpiresAt().AsTime()) > 31*time.Second || time.Until(lt.GetExpiresAt().AsTime()) < 20*time.Second {
			t.Fatalf("login token: %v", lt)
		}
		body := map[string]any{"type": "m.login.token", "token": lt.GetLoginToken(), "refresh_token": true}
		got := compatLogin(t, e, body)
		if got["user_id"] != "@alice:example.org" || got["refresh_token"] == nil {
			t.Fatalf("token login: %v", got)
		}
		if in := active(t, got["access_token"].(string)); in["username"] != "alice" {
			t.Fatalf("token login session: %v", in)
		}
		m := newMatrixClient(e)
		wantMatrixError(t, "a login token used twice", m.post(t, "/_matrix/client/v3/login", "", body), http.StatusForbidden, "M_FORBIDDEN")
		wantMatrixError(t, "an unknown login token", m.post(t, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": strings.Repeat("x", 32)}), http.StatusForbidden, "M_FORBIDDEN")
		wantMatrixError(t, "a malformed login token", m.post(t, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": "../../x"}), http.StatusForbidden, "M_FORBIDDEN")
		if _, err := tokens.CreateLoginToken(ctx, &tokenv1.CreateLoginTokenRequest{}); err == nil {
			t.Fatal("a login token without a signed-in person")
		}

		// Of concurrent uses of one token, exactly one logs in.
		lt, err = tokens.CreateLoginToken(e.signedIn(t), &tokenv1.CreateLoginTokenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(map[string]any{"type": "m.login.token", "token": lt.GetLoginToken()})
		const racers = 6
		statuses := make(chan int, racers)
		for range racers {
			c := newMatrixClient(e)
			go func() {
				resp, err := c.c.Post(c.base+"_matrix/client/v3/login", "application/json", strings.NewReader(string(raw)))
				if err != nil {
					statuses <- 0
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
		count := map[int]int{}
		for range racers {
			count[<-statuses]++
		}
		if count[http.StatusOK] != 1 || count[http.StatusForbidden] != racers-1 {
			t.Fatalf("concurrent uses of one login token: %v", count)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		wrong := newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", alicePassword(map[string]any{"password": "not it"}))
		unknown := newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "nobody", "password": "not it"})
		wantMatrixError(t, "wrong password", wrong, http.StatusForbidden, "M_FORBIDDEN")
		if unknown.raw != wrong.raw || unknown.status != wrong.status {
			t.Fatalf("an unknown user (%s) and a wrong password (%s) answer differently", unknown.raw, wrong.raw)
		}

		locked := register(t, "lockie", false)
		// A login token made while lockie was signed in, used after the lock.
		lockedToken, err := tokenv1.NewTokenServiceClient(e.conn).CreateLoginToken(signIn(t, e.conn, "lockie", "lockie's password"), &tokenv1.CreateLoginTokenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := accounts.LockUser(ctx, &accountsv1.LockUserRequest{UserId: locked.GetId(), Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		r := newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "lockie", "password": "lockie's password"})
		wantMatrixError(t, "locked user", r, http.StatusUnauthorized, "M_USER_LOCKED")
		gone := register(t, "gone", false)
		if _, err := accounts.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: gone.GetId()}); err != nil {
			t.Fatal(err)
		}
		r = newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password", "user": "gone", "password": "gone's password"})
		wantMatrixError(t, "deactivated user", r, http.StatusForbidden, "M_USER_DEACTIVATED")
		// A login token of a user locked since is refused too.
		r = newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": lockedToken.GetLoginToken()})
		wantMatrixError(t, "login token of a locked user", r, http.StatusUnauthorized, "M_USER_LOCKED")

		m := newMatrixClient(e)
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
			{"unknown login type", `{"type":"m.login.dummy"}`, http.StatusBadRequest, "M_UNRECOGNIZED"},
			{"email identifier", `{"type":"m.login.password","identifier":{"type":"m.id.thirdparty","medium":"email","address":"a@example.org"},"password":"x"}`, http.StatusBadRequest, "M_UNRECOGNIZED"},
			{"too large", `{"type":"m.login.password","user":"` + strings.Repeat("a", 70<<10) + `"}`, http.StatusRequestEntityTooLarge, "M_TOO_LARGE"},
		} {
			wantMatrixError(t, tt.what, m.post(t, "/_matrix/client/v3/login", "", tt.body), tt.status, tt.code)
		}
	})

	t.Run("password logins are rate limited per address", func(t *testing.T) {
		m := newMatrixClient(e)
		for i := range 3 {
			r := m.post(t, "/_matrix/client/v3/login", "", alicePassword(map[string]any{"password": fmt.Sprintf("guess %d", i)}))
			wantMatrixError(t, "a guess within the burst", r, http.StatusForbidden, "M_FORBIDDEN")
		}
		r := m.post(t, "/_matrix/client/v3/login", "", alicePassword(nil))
		wantMatrixError(t, "past the burst", r, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
		if ms, _ := r.body["retry_after_ms"].(float64); ms <= 0 || ms > 60_000 || r.header.Get("Retry-After") == "" {
			t.Fatalf("retry_after_ms: %s, Retry-After %q", r.raw, r.header.Get("Retry-After"))
		}
		// Another address is not limited.
		compatLogin(t, e, alicePassword(nil))
	})

	t.Run("auth_metadata is the discovery document", func(t *testing.T) {
		m := newMatrixClient(e)
		want := m.do(t, http.MethodGet, "/.well-known/openid-configuration", "", "")
		for _, path := range []string{"/_matrix/client/v1/auth_metadata", "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata"} {
			got := m.do(t, http.MethodGet, path, "", "")
			if got.status != http.StatusOK || !reflect.DeepEqual(got.body, want.body) || got.header.Get("Access-Control-Allow-Origin") != "*" {
				t.Fatalf("%s: %d %s\nwant %s", path, got.status, got.raw, want.raw)
			}
		}
	})
}
