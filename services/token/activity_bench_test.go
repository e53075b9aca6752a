package token

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// BenchmarkActivityStorage measures what session activity costs in the
// TOKEN stream (issue 16): the bytes of a SessionsActive entry (a batch of
// activityBenchSessions sessions, one in ten noted with its client's
// address, sealed, as a refresh every 5 minutes among introspections every
// 30 s gives) and so the bytes one session in use 8 hours a day adds each
// day. Before, the batches were kept for ever; now they expire after
// oauth.activity_retention, so a session holds at most a retention's worth,
// and its idle periods each cost one fold (a SessionSnapshotted: with
// compact_sessions it replaces the session's message, which the last use
// makes a little larger). Run with -benchtime 1x (make bench).
func BenchmarkActivityStorage(b *testing.B) {
	const flushesPerDay = 8 * 60 * 60 / 30 // used 8 hours a day, one entry per 30 s flush
	for b.Loop() {
		entry, message, lastUse, fold := activityStorage(b)
		perDay := float64(flushesPerDay) * entry
		held := perDay * DefaultActivityRetention.Hours() / 24
		fmt.Printf("activity entry: %.1f B (a batch of %d sessions; %d B for a batch of one); %d entries per active session per day = %.1f KiB a day\n",
			entry, activityBenchSessions, message, flushesPerDay, perDay/1024)
		fmt.Printf("%-17s activity per active session: +%.1f KiB every day, kept for ever (a year: %.1f MiB)\n", "before", perDay/1024, perDay*365/1024/1024)
		fmt.Printf("%-17s activity per active session: at most %.1f KiB held (oauth.activity_retention %gh), not growing; each idle period adds one fold: compact_sessions +%d B to the session's one message (its last use), history kept a %d B event\n",
			"after", held/1024, DefaultActivityRetention.Hours(), lastUse, fold)
		b.ReportMetric(entry, "B/entry")
		b.ReportMetric(held/1024, "KiB-held/session")
	}
}

// activityBenchSessions is how many sessions one measured batch notes.
const activityBenchSessions = 1000

// activityStorage writes a batch of activityBenchSessions sessions' activity
// and a batch of one, and folds one idle session; it returns the stream
// bytes per entry of the large batch, the bytes of the small one, what the
// last use adds to a session's snapshot and the bytes of the fold's event.
func activityStorage(b *testing.B) (entry float64, message uint64, lastUse, fold int) {
	ctx := context.Background()
	e := newLockEnv(b)
	r := e.replicaWith(b, func(c *Config) { c.CompactSessions = true })
	alice := e.newUser(b)
	if _, err := r.svc.personal.Create(ctx, personal.User(alice)); err != nil {
		b.Fatal(err)
	}
	st, err := e.js.Stream(ctx, eventsv1.Token.Name)
	if err != nil {
		b.Fatal(err)
	}
	activityBytes := func() uint64 {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(eventsv1.TokenActivity.Subjects()))
		if err != nil {
			b.Fatal(err)
		}
		return info.State.Bytes
	}
	now := time.Now()
	for i := range activityBenchSessions {
		ip := ""
		if i%10 == 0 {
			ip = "2001:db8::1"
		}
		r.svc.activity.Touch(ids.New(), alice, ip, now)
	}
	before := activityBytes()
	r.svc.flushActivity(ctx)
	entry = float64(activityBytes()-before) / activityBenchSessions
	before = activityBytes()
	r.svc.activity.Touch(ids.New(), alice, "2001:db8::1", now)
	r.svc.flushActivity(ctx)
	message = activityBytes() - before

	// One idle session, folded: what its snapshot gains, and the fold's size.
	access, _ := r.session(b, alice, "oauth")
	id := ""
	if err := r.pool.QueryRow(ctx, `SELECT session_id FROM tokens WHERE token_hash = $1`, tokenfmt.HashString(access)).Scan(&id); err != nil {
		b.Fatal(err)
	}
	r.svc.activity.Touch(id, alice, "2001:db8::1", now)
	r.svc.flushActivity(ctx)
	if err := r.svc.projections.WaitFor(ctx, sessionsProjection, lastSeq(ctx, b, r)); err != nil {
		b.Fatal(err)
	}
	if ok, err := r.svc.foldSession(ctx, id); err != nil || !ok {
		b.Fatalf("fold: %v, %v", ok, err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, r.svc.log.Subject(sessionRef(id)))
	if err != nil {
		b.Fatal(err)
	}
	history, _, err := r.svc.log.Load(ctx, sessionRef(id))
	if err != nil || len(history) == 0 {
		b.Fatalf("load: %v", err)
	}
	lastUse = proto.Size(eventsv1.SnapshotOf(history[len(history)-1].Event).GetLastUse()) + 2
	fold = len(msg.Data)
	for k, vs := range msg.Header {
		for _, v := range vs {
			fold += len(k) + len(v) + 4
		}
	}
	return entry, message, lastUse, fold
}
