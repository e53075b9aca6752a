package token

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/audittrail"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection/conformance"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// The audit reactor appends each audited event's entry to AUDIT once: a
// replay of the TOKEN stream (its checkpoint rewound, as after a crash
// between an append and its checkpoint) appends nothing more, and the read
// model lists each entry once.
func TestAuditReactorAppendsOnce(t *testing.T) {
	ctx := context.Background()
	e := newLockEnv(t)
	r := e.replica(t)
	alice := e.newUser(t)
	r.session(t, alice, "oauth")
	r.session(t, alice, compatKind)
	if err := r.svc.catchUpAudit(ctx); err != nil {
		t.Fatal(err)
	}
	entries := func() (stream uint64, rows int) {
		t.Helper()
		st, err := r.svc.auditLog.JetStream().Stream(ctx, eventsv1.Audit.Name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM audit_entries WHERE user_id = $1`, alice).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs > 0 {
			t.Logf("AUDIT: %d bytes per entry (deploy/README capacity model)", info.State.Bytes/info.State.Msgs)
		}
		return info.State.Msgs, rows
	}
	if n, rows := entries(); n != 2 || rows != 2 {
		t.Fatalf("two sessions started: %d entries in AUDIT, %d rows; want 2 and 2", n, rows)
	}

	// Redelivered: the reactor replays every event from the start.
	if _, err := r.svc.projections.Rebuild(ctx, auditReactorName); err != nil {
		t.Fatal(err)
	}
	head, err := r.svc.projections.Head(ctx, auditReactorName)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := r.svc.projections.WaitFor(wctx, auditReactorName, head); err != nil {
		t.Fatal(err)
	}
	// And one event handled twice by hand, as a crash would.
	readAll(t, r.svc.log, func(rec eventlog.Record) {
		if !strings.HasPrefix(rec.Subject, "token.session.") {
			return
		}
		if err := r.svc.recordAudit(ctx, []eventlog.Record{rec}); err != nil {
			t.Fatalf("record %s again: %v", rec.Type(), err)
		}
	})
	if err := r.svc.catchUpAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, rows := entries(); n != 2 || rows != 2 {
		t.Fatalf("after redelivery: %d entries in AUDIT, %d rows; want 2 and 2", n, rows)
	}
}

// With a retention, entries older than it leave the AUDIT stream (its
// MaxAge) and the read model (the sweep), a rebuild finds none, and a
// replay of events older than it appends none.
func TestAuditRetention(t *testing.T) {
	ctx := context.Background()
	const retention = 2 * time.Second
	e := newLockEnv(t)
	r := e.replicaWith(t, func(c *Config) { c.AuditRetention = retention })
	alice := e.newUser(t)
	r.session(t, alice, "oauth")
	if err := r.svc.catchUpAudit(ctx); err != nil {
		t.Fatal(err)
	}
	rows := func() (n int) {
		t.Helper()
		if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM audit_entries`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows(); n != 1 {
		t.Fatalf("a session started: %d rows, want 1", n)
	}
	msgs := func() uint64 {
		t.Helper()
		st, err := r.svc.auditLog.JetStream().Stream(ctx, eventsv1.Audit.Name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.MaxAge != retention {
			t.Fatalf("AUDIT MaxAge %s, want %s", info.Config.MaxAge, retention)
		}
		return info.State.Msgs
	}
	waitUntil(t, "the entry leaving the stream", func() bool { return msgs() == 0 })
	// Listed no more, even before the sweep.
	list, err := (&grpcServer{svc: r.svc}).ListAuditEntries(ctx, nil)
	if err != nil || len(list.GetEntries()) != 0 {
		t.Fatalf("entries past the retention listed: %v, %v", list.GetEntries(), err)
	}
	if n, err := audittrail.Drop(ctx, r.svc.pool, "audit_entries", r.svc.auditRetention()); err != nil || n != 1 {
		t.Fatalf("the sweep dropped %d rows, %v; want 1", n, err)
	}
	if _, err := r.svc.projections.Rebuild(ctx, auditProjection); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.projections.Rebuild(ctx, auditReactorName); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.catchUpAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, m := rows(), msgs(); n != 0 || m != 0 {
		t.Fatalf("after a rebuild and a replay: %d rows, %d entries in AUDIT; want none", n, m)
	}
}

// reactedAudit is what the audit reactor appends to AUDIT for a history of
// TOKEN events: the history is appended to a TOKEN stream of its own
// (another NATS server), the reactor run over it, and the AUDIT events it
// appended returned as they were stored (sealed).
func (s *Service) reactedAudit(t *testing.T, pool *pgxpool.Pool, history []eventlog.Event) []eventlog.Event {
	t.Helper()
	ctx := context.Background()
	js := testkit.NATS(t)
	tokens, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Token, 1))
	if err != nil {
		t.Fatal(err)
	}
	audit, err := audittrail.Open(ctx, js, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	reactor := &Service{personal: s.personal, log: tokens, auditLog: audit, now: time.Now}
	out := conformance.Reacted(t, pool, tokens, audit, reactor.auditReactor(), history)
	var summaries []string
	for _, ev := range out {
		summaries = append(summaries, ev.Payload.(*eventsv1.TokenAuditRecorded).GetEntry().GetErasedSummary())
	}
	all := strings.Join(summaries, "\n")
	for _, want := range []string{"started", "renamed", "ended", "regenerated", "imported", "login token issued", "login token exchanged"} {
		if !strings.Contains(all, want) {
			t.Errorf("the reactor made no entry with %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "sa2") || strings.Contains(all, "r2") && strings.Contains(all, "rotat") {
		t.Errorf("a rotation made an entry:\n%s", all)
	}
	return out
}
