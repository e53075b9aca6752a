package token

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/session"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// lastUseOf is a session's last use and address as readers see them.
func lastUseOf(ctx context.Context, t *testing.T, r *replica, id string) (at *time.Time, ip string) {
	t.Helper()
	if err := r.pool.QueryRow(ctx, `SELECT `+lastActiveSQL+`, `+lastAddressSQL+` FROM sessions s`+activityJoin+` WHERE s.session_id = $1`, id).Scan(&at, &ip); err != nil {
		t.Fatal(err)
	}
	return at, ip
}

// sessionOf is the session id of a token.
func sessionOf(ctx context.Context, t *testing.T, r *replica, token string) string {
	t.Helper()
	var id string
	if err := r.pool.QueryRow(ctx, `SELECT session_id FROM tokens WHERE token_hash = $1`, tokenfmt.HashString(token)).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// caughtUp waits until the sessions read model holds the whole stream and
// the audit trail an entry for each of its events.
func caughtUp(ctx context.Context, t *testing.T, r *replica) {
	t.Helper()
	if err := r.svc.projections.WaitFor(ctx, sessionsProjection, lastSeq(ctx, t, r)); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.catchUpAudit(ctx); err != nil { // readModel compares the trail too, which a reactor writes later
		t.Fatal(err)
	}
}

// rebuildSessions rebuilds the sessions read model from the stream.
func rebuildSessions(ctx context.Context, t *testing.T, r *replica) {
	t.Helper()
	if _, err := r.svc.projections.Rebuild(ctx, sessionsProjection); err != nil {
		t.Fatal(err)
	}
}

// renameUnaware appends a rename of a session as a writer that knew none
// of its activity writes it (a replica whose read model lagged): its
// snapshot carries no last use.
func renameUnaware(ctx context.Context, t *testing.T, r *replica, id, name string) {
	t.Helper()
	ref := sessionRef(id)
	if _, err := r.svc.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := session.Fold(history)
		decided, err := session.Rename(st, "", name)
		if err != nil {
			return nil, err
		}
		var writes []eventlog.Write
		for _, ev := range session.WithState(st, version, time.Now(), decided) {
			sealed, err := resealSnapshot(ctx, r.svc.personal, r.svc.log.Subject(ref), st, ev)
			if err != nil {
				return nil, err
			}
			writes = append(writes, eventlog.Write{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{Aggregate: ref, Actor: "test", Payload: sealed}})
		}
		return writes, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// compactedWithUser is a replica with compact_sessions (and what more
// configure sets) and a user with a personal key, as the accounts service
// makes one.
func compactedWithUser(ctx context.Context, t *testing.T, configure func(*Config)) (*lockEnv, *replica, string) {
	t.Helper()
	e := newLockEnv(t)
	r := e.replicaWith(t, func(c *Config) {
		c.CompactSessions = true
		if configure != nil {
			configure(c)
		}
	})
	user := e.newUser(t)
	if _, err := r.svc.personal.Create(ctx, personal.User(user)); err != nil {
		t.Fatal(err)
	}
	return e, r, user
}

// A rebuild from a compacted TOKEN stream meets a session's activity
// batches before the one event it keeps of the session (its last), written
// by a replica that knew nothing of that activity; the session's last use
// and address are still those of the live read model (issue 16; the node
// loss drill found the old projection losing them).
func TestCompactedRebuildKeepsActivityBeforeTheLastEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, r, alice := compactedWithUser(ctx, t, nil)
	access, refresh := r.session(t, alice, "oauth")
	resp, code := r.oauthRefresh(t, refresh)
	if code != "" {
		t.Fatalf("refresh: %s", code)
	}
	access = resp["access_token"].(string)
	id := sessionOf(ctx, t, r, access)
	r.svc.activity.Touch(id, alice, "192.0.2.77", time.Now()) // a refresh notes the client's address (behind the host's clientaddr)
	r.svc.flushActivity(ctx)
	if !r.introspectHTTP(t, access) { // notes a later use, without an address
		t.Fatal("the refreshed access token is inactive")
	}
	r.svc.activity.Touch(id, alice, "", time.Now().Add(time.Minute)) // a use a second later at least
	r.svc.flushActivity(ctx)
	caughtUp(ctx, t, r)
	renameUnaware(ctx, t, r, id, "Laptop")
	caughtUp(ctx, t, r)

	liveAt, liveIP := lastUseOf(ctx, t, r, id)
	if liveAt == nil || liveAt.Before(time.Now().Add(30*time.Second)) || liveIP != "192.0.2.77" {
		t.Fatalf("live: last use %v from %q, want the batches' (a minute ahead, from 192.0.2.77)", liveAt, liveIP)
	}
	live := readModel(ctx, t, r)
	rebuildSessions(ctx, t, r)
	if rebuilt := readModel(ctx, t, r); rebuilt != live {
		t.Fatalf("the rebuild from the compacted stream differs:\nlive    %s\nrebuilt %s", live, rebuilt)
	}
	if at, ip := lastUseOf(ctx, t, r, id); at == nil || !at.Equal(*liveAt) || ip != liveIP {
		t.Fatalf("rebuilt: last use %v from %q, live %v from %q", at, ip, liveAt, liveIP)
	}
}

// Activity batches expire after the retention. An idle session's last use
// is folded into its own subject at half the retention, so a rebuild after
// its batch expired still has it; a session not folded loses it (which is
// why the fold exists). A folded session is not folded again, an ended one
// never (its end carries its last use), and a user's address stays sealed.
func TestIdleSessionsActivityIsFoldedBeforeItExpires(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const retention = 4 * time.Second
	e, r, alice := compactedWithUser(ctx, t, func(c *Config) { c.ActivityRetention = retention })
	const address = "192.0.2.77"
	used := func() string {
		_, refresh := r.session(t, alice, "oauth")
		resp, code := r.oauthRefresh(t, refresh)
		if code != "" {
			t.Fatalf("refresh: %s", code)
		}
		id := sessionOf(ctx, t, r, resp["access_token"].(string))
		r.svc.activity.Touch(id, alice, address, time.Now()) // as the refresh notes the client's address
		return id
	}
	folded, ended := used(), used()
	r.svc.flushActivity(ctx)
	caughtUp(ctx, t, r)
	if err := r.svc.endSession(ctx, ended, "revoked", "test"); err != nil {
		t.Fatal(err)
	}
	caughtUp(ctx, t, r)
	st, err := e.js.Stream(ctx, eventsv1.Token.Name)
	if err != nil {
		t.Fatal(err)
	}
	endedLast := lastMsg(ctx, t, st, r.svc.log.Subject(sessionRef(ended)))

	if n, err := r.svc.foldActivity(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("fresh activity folded: %d, %v", n, err)
	}
	if n, err := r.svc.foldActivity(ctx, time.Now().Add(retention/2+time.Second)); err != nil || n != 1 {
		t.Fatalf("past half the retention: %d sessions folded, %v; want the live one", n, err)
	}
	caughtUp(ctx, t, r)
	if n, err := r.svc.foldActivity(ctx, time.Now().Add(retention/2+time.Second)); err != nil || n != 0 {
		t.Fatalf("folded again: %d, %v", n, err)
	}
	if ok, err := r.svc.foldSession(ctx, ended); err != nil || ok {
		t.Fatalf("an ended session folded: %v, %v", ok, err)
	}
	if got := lastMsg(ctx, t, st, r.svc.log.Subject(sessionRef(ended))); got != endedLast {
		t.Fatalf("an ended session got an event after its end: seq %d, then %d", endedLast, got)
	}
	// A session used after the fold, whose batch expires unfolded.
	unfolded := used()
	r.svc.flushActivity(ctx)
	caughtUp(ctx, t, r)

	raw := rawTokenEvents(t, r)
	if !strings.Contains(raw, "last_use") {
		t.Fatal("no event carries a last use")
	}
	if strings.Contains(raw, address) {
		t.Fatalf("the TOKEN stream holds the address %q in clear", address)
	}
	live := map[string]*time.Time{}
	for _, id := range []string{folded, ended, unfolded} {
		at, ip := lastUseOf(ctx, t, r, id)
		if at == nil || ip != address {
			t.Fatalf("live: session %s last used %v from %q", id, at, ip)
		}
		live[id] = at
	}
	// The batches expire.
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(eventsv1.TokenActivity.Subjects()))
		if err != nil {
			t.Fatal(err)
		}
		if len(info.State.Subjects) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("activity batches still held %s after: %v", retention, info.State.Subjects)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rebuildSessions(ctx, t, r)
	for _, id := range []string{folded, ended} {
		if at, ip := lastUseOf(ctx, t, r, id); at == nil || !at.Equal(*live[id]) || ip != address {
			t.Errorf("session %s rebuilt: last use %v from %q, live %v from %q", id, at, ip, live[id], address)
		}
	}
	if at, ip := lastUseOf(ctx, t, r, unfolded); at != nil || ip == address {
		t.Errorf("the session not folded kept its last use (%v from %q) after its batch expired: the test shows nothing", at, ip)
	}
}

// An erased user's address does not survive in what the session's events
// carry: the end the erasure writes, and any later fold, drop it.
func TestErasedUsersLastUseKeepsNoAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newLockEnv(t)
	r := e.replicaWith(t, func(c *Config) { c.CompactSessions = true })
	keys, err := personal.Open(ctx, e.js, e.keyring, personal.Config{}) // the accounts service's
	if err != nil {
		t.Fatal(err)
	}
	alice := e.newUser(t)
	if _, err := keys.Create(ctx, personal.User(alice)); err != nil {
		t.Fatal(err)
	}
	_, refresh := r.session(t, alice, "oauth")
	resp, code := r.oauthRefresh(t, refresh)
	if code != "" {
		t.Fatalf("refresh: %s", code)
	}
	id := sessionOf(ctx, t, r, resp["access_token"].(string))
	r.svc.activity.Touch(id, alice, "192.0.2.77", time.Now())
	r.svc.flushActivity(ctx)
	caughtUp(ctx, t, r)
	if _, ip := lastUseOf(ctx, t, r, id); ip != "192.0.2.77" {
		t.Fatalf("before the erasure: address %q", ip)
	}
	if err := keys.Destroy(ctx, personal.User(alice)); err != nil {
		t.Fatal(err)
	}
	e.account(t, alice, &eventsv1.UserDeactivated{UserId: alice, Erase: true})
	waitEnded(t, r, alice, 1, "user_deactivated")
	waitReactor(t, r, e)
	caughtUp(ctx, t, r)
	check := func(what string) {
		t.Helper()
		at, ip := lastUseOf(ctx, t, r, id)
		if at == nil || ip != "" {
			t.Errorf("%s: last use %v from %q, want a time without an address", what, at, ip)
		}
	}
	check("after the erasure")
	live := readModel(ctx, t, r)
	var carried int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM session_activity WHERE ip_at IS NOT NULL OR carried_ip_at IS NOT NULL OR ip_address <> ''`).Scan(&carried); err != nil || carried != 0 {
		t.Errorf("activity rows still hold an address or its time: %d, %v", carried, err)
	}
	// The session's one event (its end) opens to no address.
	history, _, err := r.svc.log.Load(ctx, sessionRef(id))
	if err != nil || len(history) != 1 {
		t.Fatalf("the ended session's events: %d, %v", len(history), err)
	}
	end := proto.Clone(history[0].Event)
	if err := keys.Unseal(ctx, end, history[0].Subject); err != nil {
		t.Fatal(err)
	}
	if lu := eventsv1.SnapshotOf(end).GetLastUse(); lu.GetAt() == nil || lu.GetIpAddress() != "" {
		t.Errorf("the end carries %v", lu)
	}
	rebuildSessions(ctx, t, r)
	check("after a rebuild")
	if rebuilt := readModel(ctx, t, r); rebuilt != live {
		t.Fatalf("the rebuild differs:\nlive    %s\nrebuilt %s", live, rebuilt)
	}
}

// lastMsg is the sequence of a subject's last message (0: none).
func lastMsg(ctx context.Context, t *testing.T, st jetstream.Stream, subject string) uint64 {
	t.Helper()
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	return m.Sequence
}

// A refresh writes into the state its event carries the session's last use
// as the replica's read model holds it: read with the token's session, in
// the one query the refresh grant makes of the read model (refreshSession).
func TestRefreshCarriesTheReadModelsLastUse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, r, alice := compactedWithUser(ctx, t, nil)
	access, refresh := r.session(t, alice, "oauth")
	id := sessionOf(ctx, t, r, access)
	usedAt := time.Now().Add(time.Hour).Truncate(time.Second) // later than anything the refresh itself notes
	r.svc.activity.Touch(id, alice, "192.0.2.88", usedAt)
	r.svc.flushActivity(ctx) // into a batch, then the read model: this replica notes nothing more
	caughtUp(ctx, t, r)
	if at, ip := lastUseOf(ctx, t, r, id); at == nil || !at.Equal(usedAt) || ip != "192.0.2.88" {
		t.Fatalf("the read model says %v from %q, want %v from 192.0.2.88", at, ip, usedAt)
	}
	if _, code := r.oauthRefresh(t, refresh); code != "" {
		t.Fatalf("refresh: %s", code)
	}
	history, _, err := r.svc.log.Load(ctx, sessionRef(id))
	if err != nil {
		t.Fatal(err)
	}
	last := history[len(history)-1]
	if _, ok := last.Event.(*eventsv1.TokensIssued); !ok {
		t.Fatalf("the session's last event is %s, want the refresh's TokensIssued", last.Type())
	}
	lu := eventsv1.SnapshotOf(last.Event).GetLastUse()
	if lu.GetAt() == nil || !lu.GetAt().AsTime().Equal(usedAt) || lu.GetIpAt() == nil {
		t.Fatalf("the refresh's state carries the last use %v (address at %v), want %v with its address", lu.GetAt().AsTime(), lu.GetIpAt(), usedAt)
	}
}
