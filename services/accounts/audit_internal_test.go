package accounts

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/audittrail"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// reactedAudit is what the audit reactor appends to AUDIT for a history of
// ACCOUNTS events: the history is appended to an ACCOUNTS stream of its own
// (another NATS server), the reactor run over it, and the AUDIT events it
// appended returned as they were stored (sealed).
func (s *Service) reactedAudit(t *testing.T, pool *pgxpool.Pool, history []eventlog.Event) []eventlog.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js := testkit.NATS(t)
	log, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Accounts, 1))
	if err != nil {
		t.Fatal(err)
	}
	audit, err := audittrail.Open(ctx, js, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range history {
		if _, err := log.Append(ctx, eventlog.Write{Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	reactor := &Service{personal: s.personal, log: log, auditLog: audit, clock: time.Now}
	if err := projection.Setup(ctx, pool); err != nil {
		t.Fatal(err)
	}
	set, err := projection.NewSet(ctx, pool, log, slog.New(slog.DiscardHandler), reactor.auditReactor())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); set.Run(runCtx) }()
	defer func() { stop(); <-done }()
	head, err := set.Head(ctx, auditReactorName)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.WaitFor(ctx, auditReactorName, head); err != nil {
		t.Fatal(err)
	}
	last, err := audit.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventlog.Event
	var erasures int
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	err = audit.Read(rctx, 1, nil, func(rec eventlog.Record) error {
		e := rec.Event.(*eventsv1.AccountsAuditRecorded).GetEntry()
		if e.GetErasure() {
			erasures++
		}
		if e.GetEventType() == "gatehouse.events.v1.RegistrationStarted" {
			t.Errorf("a registration's start made an entry: %v", e)
		}
		out = append(out, eventlog.Event{Aggregate: rec.Aggregate(), Actor: rec.Envelope.GetActor(), Payload: rec.Event})
		if rec.Seq >= last {
			rcancel()
		}
		return nil
	})
	if err != nil && rctx.Err() == nil {
		t.Fatal(err)
	}
	if want := len(history) - strings.Count(historyTypes(history), "RegistrationStarted"); len(out) != want {
		t.Errorf("the reactor appended %d entries for %d events (but registration starts), want one each", len(out), want)
	}
	if erasures == 0 {
		t.Error("no entry records an erasure")
	}
	return out
}

// historyTypes names the event types of a history, one a line.
func historyTypes(history []eventlog.Event) string {
	var b strings.Builder
	for _, e := range history {
		b.WriteString(string(e.Payload.ProtoReflect().Descriptor().Name()) + "\n")
	}
	return b.String()
}
