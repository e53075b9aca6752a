package token

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// A replica that starts while the sessions read model lags behind the stream
// (its leader is elsewhere and slow, a crash before the last batch, a
// rebuild) still knows every revocation: its index follows the TOKEN stream
// from the read model's checkpoint, not from the moment it started. Here the
// read model is held before a session's end by taking its leadership away.
func TestRevocationKnownWhileTheReadModelLags(t *testing.T) {
	e := newLockEnv(t)
	first := e.replica(t)
	alice := e.newUser(t)
	access, refresh := first.session(t, alice, "oauth")
	var sessionID string
	if err := first.pool.QueryRow(context.Background(), `SELECT session_id FROM tokens WHERE token_hash = $1`, tokenfmt.HashString(access)).Scan(&sessionID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := first.svc.endSession(ctx, sessionID, "revoked", "test"); err != nil {
		t.Fatal(err)
	}
	first.stop()

	// The read model as it was before the end, and nobody to apply it.
	conn, err := first.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended(current_schema() || '.gatehouse.projection.' || $1, 0))`, sessionsProjection); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`)
	for _, sql := range []string{
		`UPDATE sessions SET ended_at = NULL, end_reason = '' WHERE session_id = '` + sessionID + `'`,
		`UPDATE tokens SET revoked = false WHERE session_id = '` + sessionID + `'`,
		`UPDATE projection_checkpoints SET last_seq = last_seq - 1 WHERE name = 'sessions'`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}

	second := e.replica(t)
	if second.introspectHTTP(t, access) || second.introspectGRPC(t, access) {
		t.Fatal("a replica started while the read model lagged answered a revoked token as active")
	}
	if _, code := second.oauthRefresh(t, refresh); code == "" {
		t.Fatal("a revoked session was refreshed")
	}
}

// Introspection never trusts a read model that could be stale or partial: a
// rebuild of the sessions read model, a restart, and a rebuild right after
// the restart while a replica polls every token throughout — no ended
// session's token is ever active, no live token ever inactive. (Issue 17:
// during a rebuild, revoked tokens came back and valid ones read inactive.)
func TestIntrospectionThroughRebuildsAndRestarts(t *testing.T) {
	e := newLockEnv(t)
	first := e.replica(t)
	alice := e.newUser(t)
	type tok struct {
		access string
		live   bool
	}
	var toks []tok
	for i := range 30 {
		access, _ := first.session(t, alice, "oauth")
		toks = append(toks, tok{access: access, live: i%3 != 0})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tk := range toks {
		if tk.live {
			continue
		}
		var sessionID string
		if err := first.pool.QueryRow(ctx, `SELECT session_id FROM tokens WHERE token_hash = $1`, tokenfmt.HashString(tk.access)).Scan(&sessionID); err != nil {
			t.Fatal(err)
		}
		if err := first.svc.endSession(ctx, sessionID, "revoked", "test"); err != nil {
			t.Fatal(err)
		}
	}
	// Enough other events that a slow rebuild takes a while.
	for range 20 {
		first.session(t, alice, compatKind)
	}

	// poll introspects every token on r until stop closes and counts wrong answers.
	poll := func(r *replica, stop <-chan struct{}) (polls, wrong int) {
		for {
			time.Sleep(time.Millisecond)
			for _, tk := range toks {
				select {
				case <-stop:
					return polls, wrong
				default:
				}
				res, err := r.svc.introspect(ctx, tk.access, true)
				polls++
				if err != nil || res.Active != tk.live {
					wrong++
					t.Errorf("token (live %v) answered active %v (%v)", tk.live, res.Active, err)
				}
			}
		}
	}
	rebuild := func(r *replica) {
		t.Helper()
		_, target, err := r.svc.projections.StartRebuild(ctx, sessionsProjection, projection.RebuildOptions{MaxRate: 50})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.svc.projections.WaitRebuilt(ctx, sessionsProjection, target); err != nil {
			t.Fatal(err)
		}
	}
	during := func(r *replica, fn func()) int {
		stop := make(chan struct{})
		result := make(chan int)
		go func() { polls, _ := poll(r, stop); result <- polls }()
		fn()
		time.Sleep(200 * time.Millisecond)
		close(stop)
		return <-result
	}

	n := during(first, func() { rebuild(first) })
	t.Logf("%d introspections during a rebuild", n)
	first.stop()
	second := e.replica(t)
	n = during(second, func() { rebuild(second) })
	t.Logf("%d introspections during a rebuild right after a restart", n)
}

// A token issued a moment ago on another replica is found even when this
// replica's tail has not brought it yet: a miss catches up with the stream
// before answering that the token is inactive.
func TestAMissCatchesUpWithTheStream(t *testing.T) {
	e := newLockEnv(t)
	issuer := e.replica(t)
	alice := e.newUser(t)
	access, _ := issuer.session(t, alice, "oauth")

	// An index that has loaded nothing and whose tail is not running yet.
	x := newIndex(issuer.pool, issuer.svc.log, e.accounts, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go x.users.run(ctx)
	x.tail = x.log.Tail(eventlog.TailConfig{Name: "test", Subjects: []string{eventsv1.TokenSession.Subjects()}, From: 1, Handle: x.learn},
		slog.New(slog.DiscardHandler))
	close(x.ready)
	answered := make(chan bool)
	go func() {
		_, live, err := x.lookup(ctx, tokenfmt.HashString(access))
		if err != nil {
			t.Error(err)
		}
		answered <- live
	}()
	select {
	case live := <-answered:
		t.Fatalf("answered %v before the tail had read the stream", live)
	case <-time.After(300 * time.Millisecond):
	}
	go x.tail.Run(ctx)
	select {
	case live := <-answered:
		if !live {
			t.Fatal("a token issued before the question was answered inactive")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer once the tail ran")
	}
}

// The index holds access tokens only. A refresh token is answered from its
// session (index.lookupRefresh) on any replica, to a viewer who may see it,
// and stops being active once used; a session the index forgot when its
// access token expired comes back with its next refresh, from the state the
// event carries or, for an event that carries none, from the stream.
func TestRefreshTokensAreAnsweredFromTheirSession(t *testing.T) {
	e := newLockEnv(t)
	first := e.replica(t)
	second := e.replica(t)
	alice := e.newUser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	access, refresh := first.session(t, alice, "oauth")
	x := second.svc.index
	eventually(t, "the second replica learns the session", func() bool {
		_, st := x.find(mustKey(t, tokenfmt.HashString(access)))
		return st == tokenLive
	})
	if _, st := x.find(mustKey(t, tokenfmt.HashString(refresh))); st != tokenUnknown {
		t.Fatalf("the refresh token is held in memory (%d)", st)
	}
	for _, tc := range []struct {
		name   string
		viewer viewer
		active bool
	}{
		{"its client", viewer{clientID: "the-client"}, true},
		{"an administrator", viewer{admin: true}, true},
		{"another client", viewer{clientID: "another"}, false},
		{"the homeserver", viewer{homeserver: true}, false},
	} {
		res, err := second.svc.introspectFor(ctx, refresh, tc.viewer)
		if err != nil || res.Active != tc.active {
			t.Fatalf("%s: active %v (%v), want %v", tc.name, res.Active, err, tc.active)
		}
		if tc.active && (res.TokenType != "refresh_token" || res.Info.UserID != alice || res.Info.ClientID != "the-client" || res.Info.DeviceID == "") {
			t.Fatalf("%s: %+v", tc.name, res)
		}
	}
	owner := viewer{clientID: "the-client"}

	// The sweep forgets the session once its access token has long expired;
	// a refresh on the other replica brings it back with the new token.
	x.sweep(time.Now().Add(time.Hour))
	x.mu.RLock()
	_, kept := x.sessions[sessionOf(ctx, t, first, access)]
	x.mu.RUnlock()
	if kept {
		t.Fatal("a session without live access tokens stayed in memory")
	}
	tokens, code := first.oauthRefresh(t, refresh)
	if code != "" {
		t.Fatalf("refresh: %s", code)
	}
	access2, refresh2 := tokens["access_token"].(string), tokens["refresh_token"].(string)
	if !second.introspectGRPC(t, access2) {
		t.Fatal("the access token of a refresh of a forgotten session is not active on the other replica")
	}
	if res, _ := second.svc.introspectFor(ctx, refresh, owner); res.Active {
		t.Fatal("a used refresh token is still active")
	}
	if res, _ := second.svc.introspectFor(ctx, refresh2, owner); !res.Active {
		t.Fatal("the new refresh token is not active")
	}

	// An issue of tokens without the session's state (written before events
	// carried snapshots) for a session the index forgot: read from the stream.
	x.sweep(time.Now().Add(2 * time.Hour))
	sessionID := sessionOf(ctx, t, first, access2)
	next := first.svc.mint(sessionID, true)
	if err := x.learn(eventlog.Record{Seq: 1 << 40, Event: next.issued, Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.Now()}}); err != nil {
		t.Fatal(err)
	}
	info, live, err := x.lookup(ctx, tokenfmt.HashString(next.access))
	if err != nil || !live || info.UserID != alice || info.ClientID != "the-client" {
		t.Fatalf("an issue without state for a forgotten session: %+v, %v, %v", info, live, err)
	}
}

// Concurrent callers share catch-ups, and each waits for one that started
// after it arrived.
func TestFlightsShareRunsStartedAfterTheCall(t *testing.T) {
	var g flights
	var runs atomic.Int32
	release := make(chan struct{})
	fn := func() error { runs.Add(1); <-release; return nil }
	first := make(chan error)
	go func() { first <- g.do(context.Background(), fn) }()
	eventuallyTrue(t, func() bool { return runs.Load() == 1 })
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := g.do(context.Background(), fn); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if runs.Load() != 1 {
		t.Fatalf("%d runs while the first one ran", runs.Load())
	}
	close(release)
	<-first
	wg.Wait()
	if got := runs.Load(); got != 2 {
		t.Fatalf("%d runs, want the first and one shared by the 10 callers that came during it", got)
	}
}

func eventuallyTrue(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkIndexMemory fills the introspection index through its event
// handler with 500,000 sessions of 100,000 users on 50 clients, each issued
// an access and a refresh token as OAuth sessions are (the index holds the
// access token alone), and reports the heap it takes per token and per
// million sessions. Run with -benchtime 1x (make bench).
func BenchmarkIndexMemory(b *testing.B) {
	const sessions, users, clients = 500_000, 100_000, 50
	for b.Loop() {
		var x *index
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		x = &index{now: time.Now}
		x.reset()
		at := timestamppb.Now()
		expires := timestamppb.New(time.Now().Add(5 * time.Minute))
		for i := range sessions {
			u := i % users
			id := ids.New()
			rec := eventlog.Record{Seq: uint64(i + 1), Event: &eventsv1.SessionStarted{
				SessionId: id, Kind: "oauth", ClientId: fmt.Sprintf("client%02d", i%clients),
				UserId: fmt.Sprintf("01J%023d", u), Username: fmt.Sprintf("user%06d", u),
				Scope:    "openid urn:matrix:client:api:* urn:matrix:client:device:" + id[16:],
				DeviceId: id[16:],
				Tokens: &eventsv1.TokensIssued{SessionId: id, AccessHash: tokenfmt.HashString(fmt.Sprintf("a%d", i)),
					AccessExpiresAt: expires, RefreshHash: tokenfmt.HashString(fmt.Sprintf("r%d", i))},
			}, Envelope: &eventsv1.Envelope{OccurredAt: at}}
			if err := x.learn(rec); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		tokens := x.size()
		if tokens != sessions {
			b.Fatalf("%d tokens, want %d: the access tokens alone", tokens, sessions)
		}
		perToken := float64(after.HeapAlloc-before.HeapAlloc) / float64(tokens)
		b.ReportMetric(perToken, "B/token")
		b.ReportMetric(perToken*1e6/(1<<20), "MiB/1M-tokens")
		// A session in memory holds its access token; its refresh token
		// is not held (deploy/README.md's capacity model).
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/sessions*1e6/(1<<20), "MiB/1M-sessions")
		runtime.KeepAlive(x)
	}
}
