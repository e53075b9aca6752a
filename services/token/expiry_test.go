package token

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/pg"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/session"
)

// Sessions that nothing can use any more end once their last token has
// expired: a client's own session and a person's OAuth session given no
// refresh token, never one that can go on (a refresh token, a compat
// token that never expires). Two replicas sweeping at once end each once;
// the end expires like any other, and a rebuild of the read model equals
// the live one.
func TestSessionsNothingCanUseEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, r, alice := compactedWithUser(ctx, t, nil)
	other := e.replicaWith(t, func(c *Config) { c.CompactSessions = true })
	start := func(kind, user string, refresh bool) string {
		t.Helper()
		id := ids.New()
		ev := &eventsv1.SessionStarted{SessionId: id, Kind: kind, ClientId: "the-client", UserId: user, Tokens: r.svc.mint(id, refresh).issued}
		if user != "" {
			ev.Username, ev.DeviceId = "alice", "DEV"+id[len(id)-6:]
		}
		if err := r.svc.start(ctx, ev, "client:the-client"); err != nil {
			t.Fatalf("start a %s session: %v", kind, err)
		}
		return id
	}
	own := start("client_credentials", "", false)
	once := start("oauth", alice, false)
	revoked := start("client_credentials", "", false)
	_, refresh := r.session(t, alice, "oauth")
	_, compatRefresh := r.session(t, alice, compatKind)
	refreshed := sessionOf(ctx, t, r, refresh)
	compat := sessionOf(ctx, t, r, compatRefresh)
	if err := r.svc.endSession(ctx, revoked, "revoked", "test"); err != nil {
		t.Fatal(err)
	}
	caughtUp(ctx, t, r)

	if n, err := r.svc.expireSessions(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("sessions ended while their tokens are live: %d, %v", n, err)
	}
	later := time.Now().Add(r.svc.cfg.AccessTTL + 2*expireGrace)
	before := lastSeq(ctx, t, r)
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, rep := range []*replica{r, other} {
		wg.Go(func() {
			n, err := rep.svc.expireSessions(ctx, later)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != 2 || lastSeq(ctx, t, r) != before+2 {
		t.Fatalf("two replicas ended %v sessions with %d events; want 2 with 2", counts, lastSeq(ctx, t, r)-before)
	}
	caughtUp(ctx, t, r)
	for id, want := range map[string]string{own: session.ExpiredReason, once: session.ExpiredReason, revoked: "revoked", refreshed: "", compat: ""} {
		var reason string
		if err := r.pool.QueryRow(ctx, `SELECT end_reason FROM sessions WHERE session_id = $1`, id).Scan(&reason); err != nil {
			t.Fatal(err)
		}
		if reason != want {
			t.Errorf("session %s ended with %q, want %q", id, reason, want)
		}
	}
	if n, err := r.svc.expireSessions(ctx, later.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("swept again: %d ended, %v", n, err)
	}
	st, err := e.js.Stream(ctx, eventsv1.Token.Name)
	if err != nil {
		t.Fatal(err)
	}
	// A client's own session stays only until no activity batch can name
	// it; a person's, the whole retention.
	clientKept := r.svc.cfg.ActivityRetention + time.Hour
	if clientKept >= r.svc.cfg.EndedSessionRetention {
		t.Fatalf("the test's retentions do not tell the kinds apart: %s and %s", clientKept, r.svc.cfg.EndedSessionRetention)
	}
	for id, want := range map[string]time.Duration{own: clientKept, revoked: clientKept, once: r.svc.cfg.EndedSessionRetention} {
		end, err := st.GetLastMsgForSubject(ctx, r.svc.log.Subject(sessionRef(id)))
		if err != nil {
			t.Fatal(err)
		}
		if ttl := end.Header.Get("Nats-TTL"); ttl != strconv.Itoa(int(want.Seconds())) {
			t.Errorf("the end of session %s has TTL %q s, want %s (headers %v)", id, ttl, want, end.Header)
		}
	}
	var audited int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM audit_entries WHERE session_id = ANY($1) AND summary LIKE '%ended: expired'`,
		[]string{own, once}).Scan(&audited); err != nil || audited != 2 {
		t.Fatalf("audit entries of the expiries: %d, %v", audited, err)
	}
	live := readModel(ctx, t, r)
	rebuildSessions(ctx, t, r)
	if rebuilt := readModel(ctx, t, r); rebuilt != live {
		t.Fatalf("rebuilt read model differs:\nlive    %s\nrebuilt %s", live, rebuilt)
	}

	// The read model drops each at its kind's age, as the stream does.
	for _, sweep := range []struct {
		after time.Duration
		gone  []string
		kept  []string
	}{
		{clientKept - time.Minute, nil, []string{own, revoked, once}},
		{clientKept + time.Minute, []string{own, revoked}, []string{once}},
		{r.svc.cfg.EndedSessionRetention + time.Minute, []string{once}, []string{refreshed, compat}},
	} {
		if _, err := r.svc.dropEnded(ctx, time.Now().Add(sweep.after)); err != nil {
			t.Fatal(err)
		}
		for want, ids := range map[int][]string{0: sweep.gone, 1: sweep.kept} {
			for _, id := range ids {
				var n int
				if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE session_id = $1`, id).Scan(&n); err != nil || n != want {
					t.Errorf("%s after the end: session %s has %d rows (%v), want %d", sweep.after, id, n, err, want)
				}
			}
		}
	}
}

// With oauth.inactive_session_expiry, a person's OAuth or compat session
// unused for that long ends (reason inactive); one used since — in the read
// model, or in a use this replica noted and has not written yet — does not,
// nor a client's own or a personal session. A rebuild equals the live read
// model.
func TestInactiveSessionsEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const expiry = 48 * time.Hour
	_, r, alice := compactedWithUser(ctx, t, func(c *Config) { c.InactiveSessionExpiry = expiry })
	start := func(kind, user string) string {
		t.Helper()
		id := ids.New()
		ev := &eventsv1.SessionStarted{SessionId: id, Kind: kind, ClientId: "the-client", UserId: user, Tokens: r.svc.mint(id, false).issued}
		if err := r.svc.start(ctx, ev, "test"); err != nil {
			t.Fatalf("start a %s session: %v", kind, err)
		}
		return id
	}
	signIn := func(kind string) string {
		t.Helper()
		_, refresh := r.session(t, alice, kind)
		return sessionOf(ctx, t, r, refresh)
	}
	now := time.Now()
	idle, idleCompat, used, noted := signIn("oauth"), signIn(compatKind), signIn("oauth"), signIn("oauth")
	own, personal := start("client_credentials", ""), start(session.PersonalKind, alice)
	r.svc.activity.Touch(used, alice, "", now.Add(30*time.Hour))
	r.svc.flushActivity(ctx)
	caughtUp(ctx, t, r)
	r.svc.activity.Touch(noted, alice, "", now.Add(30*time.Hour)) // noted, not written

	if n, err := r.svc.expireInactive(ctx, now.Add(expiry-time.Hour)); err != nil || n != 0 {
		t.Fatalf("sessions unused for less than the expiry ended: %d, %v", n, err)
	}
	if n, err := r.svc.expireInactive(ctx, now.Add(expiry+time.Hour)); err != nil || n != 2 {
		t.Fatalf("%d sessions ended, %v; want the 2 idle ones", n, err)
	}
	caughtUp(ctx, t, r)
	for id, want := range map[string]string{idle: session.InactiveReason, idleCompat: session.InactiveReason, used: "", noted: "", own: "", personal: ""} {
		var reason string
		if err := r.pool.QueryRow(ctx, `SELECT end_reason FROM sessions WHERE session_id = $1`, id).Scan(&reason); err != nil {
			t.Fatal(err)
		}
		if reason != want {
			t.Errorf("session %s ended with %q, want %q", id, reason, want)
		}
	}
	if n, err := r.svc.expireInactive(ctx, now.Add(expiry+time.Hour)); err != nil || n != 0 {
		t.Fatalf("swept again: %d ended, %v", n, err)
	}
	live := readModel(ctx, t, r)
	rebuildSessions(ctx, t, r)
	if rebuilt := readModel(ctx, t, r); rebuilt != live {
		t.Fatalf("rebuilt read model differs:\nlive    %s\nrebuilt %s", live, rebuilt)
	}
}

// A login token's events expire, when compacting, after the retention of
// ended sessions: spent or stale within seconds, each would otherwise keep a
// subject of the TOKEN stream for ever.
func TestLoginTokensExpire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const retention = 2 * time.Hour
	e, r, alice := compactedWithUser(ctx, t, func(c *Config) { c.EndedSessionRetention = retention })
	signedIn := caller.NewContext(ctx, caller.Identity{User: &caller.User{ID: alice, Username: "alice", SessionID: ids.New()}})
	lt, err := (&grpcServer{svc: r.svc}).CreateLoginToken(signedIn, &tokenv1.CreateLoginTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(ctx, eventsv1.Token.Name)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := st.GetLastMsgForSubject(ctx, r.svc.log.Subject(loginTokenRef(lt.GetLoginToken())))
	if err != nil {
		t.Fatal(err)
	}
	if got := issued.Header.Get("Nats-TTL"); got != "7200" { // whole seconds
		t.Fatalf("a login token's issue expires after %q, want %s", got, retention)
	}
}

// The sweep of long-ended sessions deletes them a chunk at a time: more
// than a chunk of them go, each with its tokens and activity, and the live
// and recently ended ones stay.
func TestDropEndedInChunks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, r, _ := compactedWithUser(ctx, t, nil)
	ended := time.Now().Add(-r.svc.cfg.EndedSessionRetention - time.Hour)
	const many = pg.DropChunk*2 + 7
	for _, sql := range []string{
		`INSERT INTO sessions (session_id, kind, client_id, created_at, ended_at, end_reason)
			SELECT 'old' || g, 'oauth', 'the-client', $1, $1, 'revoked' FROM generate_series(1, $2) g`,
		`INSERT INTO tokens (token_hash, session_id, kind, issued_at) SELECT 'hash-old' || g, 'old' || g, 'access_token', $1 FROM generate_series(1, $2) g`,
		`INSERT INTO session_activity (session_id, last_active_at) SELECT 'old' || g, $1 FROM generate_series(1, $2) g`,
		`INSERT INTO sessions (session_id, kind, client_id, created_at, ended_at) VALUES ('live', 'oauth', 'the-client', $1, NULL), ('recent', 'oauth', 'the-client', $1, now())`,
	} {
		args := []any{ended, many}
		if strings.Count(sql, "$2") == 0 {
			args = args[:1]
		}
		if _, err := r.pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	n, err := r.svc.dropEnded(ctx, time.Now())
	if err != nil || n != many {
		t.Fatalf("dropped %d sessions, %v; want %d", n, err, many)
	}
	var sessions, tokens, activity int
	if err := r.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM sessions WHERE session_id LIKE 'old%'), (SELECT count(*) FROM tokens WHERE session_id LIKE 'old%'),
		(SELECT count(*) FROM session_activity WHERE session_id LIKE 'old%')`).Scan(&sessions, &tokens, &activity); err != nil {
		t.Fatal(err)
	}
	if sessions+tokens+activity != 0 {
		t.Fatalf("left %d sessions, %d tokens, %d activity rows of the long-ended", sessions, tokens, activity)
	}
	var kept int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE session_id IN ('live', 'recent')`).Scan(&kept); err != nil || kept != 2 {
		t.Fatalf("the live and the recently ended session: %d kept, %v", kept, err)
	}
}

// The expiry sweep's backlog, which the gauge gatehouse_token_sessions_unexpired
// shows, counts the live sessions whose last token expired before the cut,
// not those ended or still usable, and at most expiryBacklogCap of them.
func TestExpiryBacklog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, r, _ := compactedWithUser(ctx, t, nil)
	cut := time.Now().Add(-expireEvery)
	long := cut.Add(-time.Hour)
	for _, sql := range []string{
		`INSERT INTO sessions (session_id, kind, client_id, created_at, usable_until) SELECT 'behind' || g, 'client_credentials', 'c', $1, $1 FROM generate_series(1, 3) g`,
		`INSERT INTO sessions (session_id, kind, client_id, created_at, usable_until, ended_at) VALUES ('ended', 'client_credentials', 'c', $1, $1, $1)`,
		`INSERT INTO sessions (session_id, kind, client_id, created_at, usable_until) VALUES ('usable', 'client_credentials', 'c', $1, now())`,
		`INSERT INTO sessions (session_id, kind, client_id, created_at) VALUES ('goes-on', 'oauth', 'c', $1)`,
	} {
		if _, err := r.pool.Exec(ctx, sql, long); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := expiryBacklog(ctx, r.pool, cut); err != nil || n != 3 {
		t.Fatalf("backlog %d, %v; want the 3 live sessions past the cut", n, err)
	}
	if _, err := r.pool.Exec(ctx, `INSERT INTO sessions (session_id, kind, client_id, created_at, usable_until)
		SELECT 'many' || g, 'client_credentials', 'c', $1, $1 FROM generate_series(1, $2) g`, long, expiryBacklogCap); err != nil {
		t.Fatal(err)
	}
	if n, err := expiryBacklog(ctx, r.pool, cut); err != nil || n != expiryBacklogCap {
		t.Fatalf("backlog %d, %v; want it capped at %d", n, err, expiryBacklogCap)
	}
}
