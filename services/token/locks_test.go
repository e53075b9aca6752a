package token

// Regression tests for "locks do not bite" (issue 9): after a user is locked,
// deactivated or recovers their password, their OAuth and compat tokens kept
// working everywhere. The token service runs for real here — real NATS,
// real PostgreSQL, its projections, reactors and tails — and the accounts
// service's part is played by appending its events to the ACCOUNTS stream,
// as the event contract defines them (a service's tests may not import
// another service).

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/oautherr"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/telemetry"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

const lockTestSecret = "the homeserver's shared secret"

// lockEnv is a NATS server and a database shared by token replicas, and the
// ACCOUNTS stream as the accounts service writes it.
type lockEnv struct {
	js       jetstream.JetStream
	dbURL    string
	accounts *eventlog.Log
	keyring  *sealed.Keyring      // every replica's, as a deployment's processes share one
	tel      *telemetry.Telemetry // every replica's; nil: none
}

func newLockEnv(t testing.TB) *lockEnv {
	t.Helper()
	js := testkit.NATS(t)
	accounts, err := eventlog.Open(context.Background(), js, eventlog.StreamOf(eventsv1.Accounts, 1))
	if err != nil {
		t.Fatal(err)
	}
	return &lockEnv{js: js, dbURL: testkit.Postgres(t), accounts: accounts, keyring: sealed.NewRandomKeyring()}
}

// account appends what the accounts service appends for a user command.
func (e *lockEnv) account(t testing.TB, userID string, ev proto.Message) {
	t.Helper()
	if _, err := e.accounts.Append(context.Background(), eventlog.Write{Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: eventsv1.AccountsUser.Type, ID: userID}, Actor: "admin", Payload: ev,
	}}); err != nil {
		t.Fatal(err)
	}
}

// newUser registers a user in the ACCOUNTS stream.
func (e *lockEnv) newUser(t testing.TB) string {
	t.Helper()
	id := ids.New()
	e.account(t, id, &eventsv1.UserRegistered{UserId: id, Username: "user" + strings.ToLower(id[len(id)-6:])})
	return id
}

// replica is one token service process.
type replica struct {
	svc  *Service
	pool *pgxpool.Pool
	http *httptest.Server
	stop func()
}

func (e *lockEnv) replica(t testing.TB) *replica {
	t.Helper()
	return e.replicaWith(t, func(*Config) {})
}

// replicaWith is a replica whose configuration tune changes.
func (e *lockEnv) replicaWith(t testing.TB, tune func(*Config)) *replica {
	t.Helper()
	ctx := context.Background()
	pool, err := pg.Connect(ctx, e.dbURL, Schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	cfg := Config{Issuer: "https://auth.example.org/", MatrixSecret: lockTestSecret, ServerName: "example.org"}
	tune(&cfg)
	svc, err := New(ctx, cfg,
		Deps{Pool: pool, JetStream: e.js, Logger: slog.New(slog.DiscardHandler), Keyring: e.keyring, Telemetry: e.tel})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(runCtx) }()
	mux := http.NewServeMux()
	svc.RegisterHTTP(mux)
	srv := httptest.NewServer(mux)
	var once sync.Once
	r := &replica{svc: svc, pool: pool, http: srv, stop: func() {
		once.Do(func() { srv.Close(); cancel(); <-done })
	}}
	t.Cleanup(r.stop)
	return r
}

// session starts an OAuth or compat session of a user on this replica and
// returns its access and refresh tokens.
func (r *replica) session(t testing.TB, userID, kind string) (access, refresh string) {
	t.Helper()
	id := ids.New()
	start := &eventsv1.SessionStarted{SessionId: id, UserId: userID, Username: "alice", DeviceId: "DEV" + id[len(id)-6:]}
	var p pair
	if kind == compatKind {
		p = r.svc.mintCompat(id, true)
		start.Kind, start.ClientId, start.Scope = compatKind, compatClientID, "urn:matrix:client:api:*"
	} else {
		p = r.svc.mint(id, true)
		start.Kind, start.ClientId, start.Scope = "oauth", "the-client", "openid urn:matrix:client:api:*"
	}
	start.Tokens = p.issued
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.svc.start(ctx, start, "user:"+userID); err != nil {
		t.Fatalf("start a %s session: %v", kind, err)
	}
	return p.access, p.refresh
}

// introspectHTTP is the homeserver asking over HTTP.
func (r *replica) introspectHTTP(t testing.TB, token string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.http.URL+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+lockTestSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Active bool `json:"active"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		t.Fatalf("introspection answered %d", resp.StatusCode)
	}
	return body.Active
}

// introspectGRPC is the homeserver asking TokenService.Introspect.
func (r *replica) introspectGRPC(t *testing.T, token string) bool {
	t.Helper()
	resp, err := (&grpcServer{svc: r.svc}).Introspect(context.Background(), &tokenv1.IntrospectRequest{Token: token})
	if err != nil {
		t.Fatalf("gRPC introspection: %v", err)
	}
	return resp.GetActive()
}

// userinfo returns the status of GET /oauth2/userinfo.
func (r *replica) userinfo(t *testing.T, access string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.http.URL+"/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// compatRefresh returns the status and body of POST /_matrix/client/v3/refresh.
func (r *replica) compatRefresh(t *testing.T, refresh string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"refresh_token": refresh})
	resp, err := http.Post(r.http.URL+"/_matrix/client/v3/refresh", "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// oauthRefresh runs the refresh_token grant for the session's client (its
// authentication, which needs the authorize service, is taken as done) and
// returns the tokens, or the OAuth error code it is answered with.
func (r *replica) oauthRefresh(t testing.TB, refresh string) (map[string]any, string) {
	t.Helper()
	c := &client{ID: "the-client", Meta: clientMeta{AuthMethod: "none", GrantTypes: []string{"authorization_code", "refresh_token"}}}
	resp, err := r.svc.refreshToken(context.Background(), tokenRequest{client: c, form: url.Values{"refresh_token": {refresh}}})
	if err != nil {
		return nil, oautherr.Of(err, "")
	}
	return resp, ""
}

// eventually polls cond until it holds or a second passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a second", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// While a user is locked, every OAuth and compat token of theirs is inactive
// at introspection (HTTP and gRPC), userinfo refuses it, and neither kind of
// session can be refreshed; unlocking restores them all (as MAS does).
func TestLockedUserTokensStopWorkingUntilUnlocked(t *testing.T) {
	e := newLockEnv(t)
	r := e.replica(t)
	alice, bob := e.newUser(t), e.newUser(t)
	access, refresh := r.session(t, alice, "oauth")
	compatAccess, compatRefresh := r.session(t, alice, compatKind)
	bobAccess, _ := r.session(t, bob, "oauth")
	for _, tok := range []string{access, compatAccess, bobAccess} {
		if !r.introspectHTTP(t, tok) || !r.introspectGRPC(t, tok) {
			t.Fatal("a fresh token is not active")
		}
	}

	e.account(t, alice, &eventsv1.UserLocked{UserId: alice, Reason: "abuse"})
	eventually(t, "the OAuth token inactive over HTTP", func() bool { return !r.introspectHTTP(t, access) })
	for name, tok := range map[string]string{"OAuth": access, "compat": compatAccess} {
		if r.introspectHTTP(t, tok) || r.introspectGRPC(t, tok) {
			t.Errorf("the %s access token of a locked user is active", name)
		}
		if r.introspectHTTP(t, map[string]string{"OAuth": refresh, "compat": compatRefresh}[name]) {
			t.Errorf("the %s refresh token of a locked user is active", name)
		}
	}
	if got := r.userinfo(t, access); got != http.StatusUnauthorized {
		t.Errorf("userinfo of a locked user answered %d, want 401", got)
	}
	if _, code := r.oauthRefresh(t, refresh); code != "invalid_grant" {
		t.Errorf("OAuth refresh of a locked user: %q, want invalid_grant", code)
	}
	if status, body := r.compatRefresh(t, compatRefresh); status != http.StatusUnauthorized || body["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Errorf("compat refresh of a locked user: %d %v", status, body)
	}
	if !r.introspectHTTP(t, bobAccess) {
		t.Error("another user's token stopped working")
	}

	e.account(t, alice, &eventsv1.UserUnlocked{UserId: alice})
	eventually(t, "the OAuth token active again", func() bool { return r.introspectHTTP(t, access) })
	if !r.introspectGRPC(t, compatAccess) || r.userinfo(t, access) != http.StatusOK {
		t.Error("unlocking did not restore the sessions")
	}
	if _, code := r.oauthRefresh(t, refresh); code != "" {
		t.Errorf("OAuth refresh after unlocking: %q", code)
	}
	if status, body := r.compatRefresh(t, compatRefresh); status != http.StatusOK {
		t.Errorf("compat refresh after unlocking: %d %v", status, body)
	}
}

// A locked or deactivated user gets no new session either.
func TestLockedUserGetsNoNewSession(t *testing.T) {
	e := newLockEnv(t)
	r := e.replica(t)
	alice := e.newUser(t)
	e.account(t, alice, &eventsv1.UserLocked{UserId: alice})
	eventually(t, "the lock known", func() bool {
		blocked, err := r.svc.index.users.blocked(context.Background(), alice)
		return err == nil && blocked
	})
	id := ids.New()
	p := r.svc.mint(id, true)
	err := r.svc.start(context.Background(), &eventsv1.SessionStarted{SessionId: id, Kind: "oauth", ClientId: "c", UserId: alice, Tokens: p.issued}, "user:"+alice)
	if err == nil || oautherr.Of(err, "") != "invalid_grant" {
		t.Fatalf("a session for a locked user: %v", err)
	}
}

// Deactivation ends every OAuth and compat session for good: the token
// service's reactor appends SessionEnded for each, and reactivating the user
// brings none back (a new sign-in works).
func TestDeactivationEndsSessionsForGood(t *testing.T) {
	e := newLockEnv(t)
	r := e.replica(t)
	alice := e.newUser(t)
	access, refresh := r.session(t, alice, "oauth")
	compatAccess, _ := r.session(t, alice, compatKind)

	e.account(t, alice, &eventsv1.UserDeactivated{UserId: alice})
	eventually(t, "the OAuth token inactive", func() bool { return !r.introspectHTTP(t, access) })
	waitEnded(t, r, alice, 2, "user_deactivated")

	e.account(t, alice, &eventsv1.UserReactivated{UserId: alice})
	eventually(t, "the reactivation known", func() bool {
		blocked, err := r.svc.index.users.blocked(context.Background(), alice)
		return err == nil && !blocked
	})
	if r.introspectHTTP(t, access) || r.introspectGRPC(t, compatAccess) || r.introspectHTTP(t, refresh) {
		t.Fatal("a token of a deactivated user came back with the reactivation")
	}
	if _, code := r.oauthRefresh(t, refresh); code != "invalid_grant" {
		t.Fatalf("refresh of an ended session: %q", code)
	}
	fresh, _ := r.session(t, alice, "oauth")
	if !r.introspectHTTP(t, fresh) {
		t.Fatal("a session started after the reactivation does not work")
	}
}

// A password reset through recovery ends every session started before it;
// a password changed by the user ends none.
func TestRecoveryEndsEverySession(t *testing.T) {
	e := newLockEnv(t)
	r := e.replica(t)
	alice := e.newUser(t)
	access, _ := r.session(t, alice, "oauth")
	compatAccess, _ := r.session(t, alice, compatKind)

	e.account(t, alice, &eventsv1.PasswordChanged{UserId: alice, PasswordHash: "$argon2id$x", Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_USER})
	e.account(t, alice, &eventsv1.PasswordChanged{UserId: alice, PasswordHash: "$argon2id$y", Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RECOVERY})
	waitEnded(t, r, alice, 2, "password_recovered")
	if r.introspectHTTP(t, access) || r.introspectGRPC(t, compatAccess) {
		t.Fatal("a session from before the recovery still works")
	}
	after, _ := r.session(t, alice, "oauth") // signed in with the new password
	e.account(t, alice, &eventsv1.DisplayNameSet{UserId: alice, DisplayName: "Alice"})
	waitReactor(t, r, e)
	if !r.introspectHTTP(t, after) {
		t.Fatal("a session started after the recovery was ended")
	}
}

// Two token replicas on one NATS and one database: a lock reaches the other
// replica within a second (each follows the ACCOUNTS stream), and so does
// the unlock.
func TestLockReachesEveryReplicaWithinASecond(t *testing.T) {
	e := newLockEnv(t)
	a, b := e.replica(t), e.replica(t)
	alice := e.newUser(t)
	access, _ := a.session(t, alice, "oauth") // issued by A
	compatAccess, _ := b.session(t, alice, compatKind)
	for _, r := range []*replica{a, b} {
		if !r.introspectHTTP(t, access) || !r.introspectGRPC(t, compatAccess) {
			t.Fatal("tokens not active on both replicas")
		}
	}
	e.account(t, alice, &eventsv1.UserLocked{UserId: alice})
	eventually(t, "B refuses A's token", func() bool { return !b.introspectHTTP(t, access) && !b.introspectGRPC(t, compatAccess) })
	eventually(t, "A refuses B's token", func() bool { return !a.introspectGRPC(t, compatAccess) && !a.introspectHTTP(t, access) })
	e.account(t, alice, &eventsv1.UserUnlocked{UserId: alice})
	eventually(t, "B answers again", func() bool { return b.introspectHTTP(t, access) })
}

// Locks made before a replica started, while none ran, or known to a read
// model that is being rebuilt, hold from the replica's first answer.
func TestLocksSurviveRestartsAndRebuilds(t *testing.T) {
	e := newLockEnv(t)
	first := e.replica(t)
	alice, bob := e.newUser(t), e.newUser(t)
	access, _ := first.session(t, alice, "oauth")
	bobAccess, _ := first.session(t, bob, compatKind)
	e.account(t, alice, &eventsv1.UserLocked{UserId: alice})
	waitBlocksProjection(t, first, e)
	first.stop()

	e.account(t, bob, &eventsv1.UserLocked{UserId: bob}) // while no token replica runs
	second := e.replica(t)
	if second.introspectHTTP(t, access) || second.introspectGRPC(t, bobAccess) {
		t.Fatal("a restarted replica answered a locked user's token as active")
	}
	waitBlocksProjection(t, second, e)
	second.stop()

	// The read model is emptied for a rebuild that has not run yet.
	if err := projection.Reset(context.Background(), second.pool, userBlocksReadModel(nil)); err != nil {
		t.Fatal(err)
	}
	third := e.replica(t)
	if third.introspectHTTP(t, access) || third.introspectGRPC(t, bobAccess) {
		t.Fatal("a replica starting on an emptied read model answered a locked user's token as active")
	}
}

// waitEnded waits until n sessions of the user ended for reason.
func waitEnded(t *testing.T, r *replica, userID string, n int, reason string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ended int
		if err := r.pool.QueryRow(context.Background(), `SELECT count(*) FROM sessions WHERE user_id = $1 AND end_reason = $2`, userID, reason).Scan(&ended); err != nil {
			t.Fatal(err)
		}
		if ended == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions ended for %s, want %d", ended, reason, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReactor waits until the account_sessions reactor has handled every user event.
func waitReactor(t *testing.T, r *replica, e *lockEnv) {
	t.Helper()
	waitMember(t, r, e, accountChanges)
}

// waitBlocksProjection waits until user_blocks has applied every user event.
func waitBlocksProjection(t *testing.T, r *replica, e *lockEnv) {
	t.Helper()
	waitMember(t, r, e, userBlocksProjection)
}

func waitMember(t *testing.T, r *replica, e *lockEnv, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	last, err := e.accounts.LastSeqOf(ctx, eventsv1.AccountsUser.Subjects())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.svc.projections.WaitFor(ctx, name, last); err != nil {
		t.Fatal(err)
	}
}
