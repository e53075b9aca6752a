package conformance

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
)

// Reacted appends history to source, runs reactor (which follows source and
// appends to target) until it has handled all of it, and returns what it
// appended to target as stored: the events of a read model that follows
// target, such as the audit trail's, for Case.Events.
func Reacted(t *testing.T, pool *pgxpool.Pool, source, target *eventlog.Log, reactor projection.Reactor, history []eventlog.Event) []eventlog.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ev := range history {
		if _, err := source.Append(ctx, eventlog.Write{Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if err := projection.Setup(ctx, pool); err != nil {
		t.Fatal(err)
	}
	set, err := projection.NewSet(ctx, pool, source, slog.New(slog.DiscardHandler), reactor)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(ctx, set)
	defer stop()
	head, err := set.Head(ctx, reactor.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.WaitFor(ctx, reactor.Name, head); err != nil {
		t.Fatal(err)
	}
	last, err := target.LastSeq(ctx)
	if err != nil || last == 0 {
		t.Fatalf("the reactor appended nothing (%v)", err)
	}
	var out []eventlog.Event
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	err = target.Read(rctx, 1, nil, func(rec eventlog.Record) error {
		out = append(out, eventlog.Event{Aggregate: rec.Aggregate(), Actor: rec.Envelope.GetActor(), Payload: rec.Event})
		if rec.Seq >= last {
			rcancel()
		}
		return nil
	})
	if err != nil && rctx.Err() == nil {
		t.Fatal(err)
	}
	return out
}
