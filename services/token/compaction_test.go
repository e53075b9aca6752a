package token

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/session"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// Turning compact_sessions on for a TOKEN stream that kept every event
// (issue 16) loses nothing: sessions whose last event an earlier version
// wrote without their state get a snapshot first, then the stream keeps one
// message per session. Afterwards every live token still works, a replayed
// recent refresh token still ends its session, an ended session stays
// ended, refreshes no longer grow the stream or the read model, and a
// rebuild of the read model and a restart give what the live one had.
func TestCompactionKeepsEveryGuarantee(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newLockEnv(t)
	before := e.replica(t)
	alice := e.newUser(t)

	// An earlier version's history: a session rotated three times and one
	// ended, their last events without a state.
	legacy := func(access, refresh string) (id string, pairs []pair) {
		if err := before.pool.QueryRow(ctx, `SELECT session_id FROM tokens WHERE token_hash = $1`, tokenfmt.HashString(access)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id, []pair{{access: access, refresh: refresh}}
	}
	rotated, rotatedPairs := legacy(before.session(t, alice, "oauth"))
	for i := 0; i < 3; i++ {
		prev, next := rotatedPairs[len(rotatedPairs)-1], before.svc.mint(rotated, true)
		next.issued.ReplacesRefreshHash, next.issued.RevokesAccessHash = tokenfmt.HashString(prev.refresh), tokenfmt.HashString(prev.access)
		appendLegacy(ctx, t, before, rotated, next.issued)
		rotatedPairs = append(rotatedPairs, next)
	}
	ended, endedPairs := legacy(before.session(t, alice, "oauth"))
	appendLegacy(ctx, t, before, ended, &eventsv1.SessionEnded{SessionId: ended, Reason: "logout"})
	// And this version's: a session refreshed with its state.
	access, refresh := before.session(t, alice, "oauth")
	for i := 0; i < 3; i++ {
		resp, code := before.oauthRefresh(t, refresh)
		if code != "" {
			t.Fatalf("refresh: %s", code)
		}
		access, refresh = resp["access_token"].(string), resp["refresh_token"].(string)
	}
	if err := before.svc.projections.WaitFor(ctx, sessionsProjection, lastSeq(ctx, t, before)); err != nil {
		t.Fatal(err)
	}
	before.stop()

	compact := func(c *Config) { c.CompactSessions = true }
	r := e.replicaWith(t, compact)
	st, err := e.js.Stream(ctx, eventsv1.Token.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(eventsv1.TokenSession.Subjects()))
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxMsgsPerSubject != 1 || len(info.State.Subjects) != 3 {
		t.Fatalf("after compaction: max per subject %d, session subjects %v", info.Config.MaxMsgsPerSubject, info.State.Subjects)
	}
	for subj, n := range info.State.Subjects {
		if n != 1 {
			t.Fatalf("%s holds %d messages", subj, n)
		}
	}
	last, err := st.GetLastMsgForSubject(ctx, r.svc.log.Subject(sessionRef(ended)))
	if err != nil || last.Header.Get(jetstream.MsgTTLHeader) == "" {
		t.Fatalf("the ended session's snapshot expires: header %v, %v", last.Header, err)
	}
	if err := r.svc.projections.WaitFor(ctx, sessionsProjection, lastSeq(ctx, t, r)); err != nil {
		t.Fatal(err)
	}

	// Every live token works, every dead one does not.
	current := rotatedPairs[len(rotatedPairs)-1]
	for _, tc := range []struct {
		what, token string
		active      bool
	}{
		{"the rotated session's current access token", current.access, true},
		{"its rotated-out access token", rotatedPairs[1].access, false},
		{"the ended session's access token", endedPairs[0].access, false},
		{"the refreshed session's access token", access, true},
	} {
		if got := r.introspectHTTP(t, tc.token); got != tc.active {
			t.Errorf("%s: active %v, want %v", tc.what, got, tc.active)
		}
	}
	if _, code := r.oauthRefresh(t, endedPairs[0].refresh); code == "" {
		t.Error("the ended session was refreshed")
	}

	// Refreshes no longer grow the stream nor the read model.
	rows := func(id string) (n int) {
		if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM tokens WHERE session_id = (SELECT session_id FROM tokens WHERE token_hash = $1)`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	bytesBefore := streamBytes(ctx, t, st)
	for i := 0; i < 3*session.ReuseMemory; i++ {
		resp, code := r.oauthRefresh(t, refresh)
		if code != "" {
			t.Fatalf("refresh %d after compaction: %s", i, code)
		}
		access, refresh = resp["access_token"].(string), resp["refresh_token"].(string)
	}
	if n := rows(tokenfmt.HashString(access)); n != session.ReuseMemory+2 {
		t.Errorf("a session refreshed %d times has %d token rows, want its pair and %d rotated out", 3*session.ReuseMemory+3, n, session.ReuseMemory)
	}
	if grown := streamBytes(ctx, t, st) - bytesBefore; grown > 2048 {
		t.Errorf("%d refreshes grew the stream by %d bytes", 3*session.ReuseMemory, grown)
	}

	// The legacy session refreshes from its snapshot; replaying the token it
	// just rotated out ends it.
	resp, code := r.oauthRefresh(t, current.refresh)
	if code != "" {
		t.Fatalf("refresh of the compacted legacy session: %s", code)
	}
	// (No reuse grace here: at once it is a replay, not a concurrent request.)
	if _, code := r.oauthRefresh(t, current.refresh); code != "invalid_grant" {
		t.Fatalf("replayed refresh token: %q", code)
	}
	if r.introspectHTTP(t, resp["access_token"].(string)) {
		t.Fatal("the session whose refresh token was replayed still works")
	}

	// A rebuild gives the same read model, and a restart knows every token.
	if err := r.svc.projections.WaitFor(ctx, sessionsProjection, lastSeq(ctx, t, r)); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.catchUpAudit(ctx); err != nil {
		t.Fatal(err)
	}
	live := readModel(ctx, t, r)
	for _, p := range []string{sessionsProjection, auditProjection} {
		if _, err := r.svc.projections.Rebuild(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.svc.catchUpAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if rebuilt := readModel(ctx, t, r); rebuilt != live {
		t.Fatalf("rebuild of the compacted stream differs:\nlive    %s\nrebuilt %s", live, rebuilt)
	}
	if !strings.Contains(live, "session "+rotated+" started") || !strings.Contains(live, "session "+ended+" ended: logout") {
		t.Fatalf("the audit trail lacks the legacy sessions' start or end:\n%s", live)
	}
	r.stop()
	again := e.replicaWith(t, compact)
	if !again.introspectHTTP(t, access) || again.introspectHTTP(t, resp["access_token"].(string)) || again.introspectHTTP(t, endedPairs[0].access) {
		t.Fatal("after a restart, a live token is inactive or a dead one active")
	}

	// Ended sessions leave the read model at the retention's age (their
	// audit entries stay for the audit retention, audit_stream.go).
	if _, err := again.svc.dropEnded(ctx, time.Now().Add(again.svc.cfg.EndedSessionRetention+time.Minute)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := again.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM sessions WHERE session_id = $1) + (SELECT count(*) FROM tokens WHERE session_id = $1)`, ended).Scan(&n); err != nil || n != 0 {
		t.Fatalf("an ended session past its retention: %d rows, %v", n, err)
	}
}

// appendLegacy appends an event as versions before snapshots wrote it.
func appendLegacy(ctx context.Context, t *testing.T, r *replica, sessionID string, ev proto.Message) {
	t.Helper()
	ref := sessionRef(sessionID)
	if _, err := r.svc.log.Execute(ctx, ref, func(_ []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		return eventlog.Writes(ref, "test", version, ev), nil
	}); err != nil {
		t.Fatal(err)
	}
}

// lastSeq is the TOKEN stream's last sequence.
func lastSeq(ctx context.Context, t testing.TB, r *replica) uint64 {
	t.Helper()
	seq, err := r.svc.log.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// streamBytes is how many bytes the stream holds.
func streamBytes(ctx context.Context, t *testing.T, st jetstream.Stream) int64 {
	t.Helper()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int64(info.State.Bytes)
}

// readModel is the sessions read model (with each session's last use and
// address as readers see them) and the audit trail as text, without the
// audit rows' stream sequences (a compacted legacy session's earlier
// entries are found in its snapshot).
func readModel(ctx context.Context, t *testing.T, r *replica) string {
	t.Helper()
	var sessions, tokens string
	if err := r.pool.QueryRow(ctx, `SELECT coalesce(json_agg(x ORDER BY session_id)::text, '') FROM (
		SELECT s.session_id, kind, client_id, user_id, username, scope, device_id, created_at, ended_at, end_reason, device_display_name,
		       user_agent, version, browser_session_id, owner_user_id, usable_until, `+lastActiveSQL+` AS last_active, `+lastAddressSQL+` AS address
		FROM sessions s`+activityJoin+`) x`).Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	if err := r.pool.QueryRow(ctx, `SELECT coalesce(json_agg(x ORDER BY token_hash)::text, '') FROM (SELECT * FROM tokens) x`).Scan(&tokens); err != nil {
		t.Fatal(err)
	}
	var audit string
	if err := r.pool.QueryRow(ctx, `SELECT coalesce(json_agg(x ORDER BY event_id)::text, '') FROM (
		SELECT event_id, event_type, user_id, session_id, actor, ip_address, occurred_at, summary FROM audit_entries) x`).Scan(&audit); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sessions %s\ntokens %s\naudit %s", sessions, tokens, audit)
}
