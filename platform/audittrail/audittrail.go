// Package audittrail is the AUDIT stream as every service keeps its part of
// it: each service's audit reactor appends one entry per audited event on
// audit.<service>.<event id> (Append), its audit read model follows those
// entries into its audit_entries table, and both forget what is older than
// the retention — the stream by its MaxAge (Open), the read model by
// skipping (Retention.Past) and sweeping (Sweep) — so a rebuild equals
// live. Lists of the trail first wait for it to catch up (CatchUp).
package audittrail

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// SweepEvery is how often a read model drops the entries past the retention.
const SweepEvery = time.Hour

// CatchUpWithin bounds how long a list of the trail waits for the entries of
// the events appended before it.
const CatchUpWithin = 5 * time.Second

// Open creates or updates the AUDIT stream, whose events expire after
// retention (0: never). Every service that writes it opens it with the same
// retention.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, retention time.Duration, opts ...eventlog.Option) (*eventlog.Log, error) {
	cfg := eventlog.StreamOf(eventsv1.Audit, replicas)
	cfg.MaxAge = retention
	return eventlog.Open(ctx, js, cfg, opts...)
}

// Retention is how long entries are kept (Keep; 0: for ever), by the clock
// Now.
type Retention struct {
	Keep time.Duration
	Now  func() time.Time
}

// Past reports whether an entry of that time is past the retention: no
// reactor appends it, no read model keeps it.
func (r Retention) Past(at time.Time) bool {
	return r.Keep > 0 && at.Before(r.Now().Add(-r.Keep))
}

// Write is the append of one entry (payload: the service's
// ...AuditRecorded wrapping r, its personal data already sealed) on its own
// subject, once: the subject must be new, and the audited event's id is the
// message id.
func Write(aggregate string, r *eventsv1.AuditRecord, payload proto.Message) eventlog.Write {
	return eventlog.Write{
		Event:  eventlog.Event{ID: r.GetEventId(), Aggregate: eventlog.Ref{Type: aggregate, ID: r.GetEventId()}, Actor: r.GetActor(), Payload: payload},
		Expect: eventlog.ExpectNew(),
	}
}

// Append appends a run of entries pipelined (eventlog.Log.AppendEach): a bulk
// of events (an import) costs no round trip per entry. An entry whose
// subject exists was recorded by an earlier delivery of its event: that
// conflict is no error.
func Append(ctx context.Context, log *eventlog.Log, writes []eventlog.Write) error {
	if len(writes) == 0 {
		return nil
	}
	published, err := log.AppendEach(ctx, writes)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	for _, p := range published {
		if p.Err != nil && !eventlog.IsConflict(p.Err) {
			return fmt.Errorf("audit: %w", p.Err)
		}
	}
	return nil
}

// Sweep drops, every SweepEvery until ctx ends, the rows of table (an
// audit_entries table: occurred_at) past the retention, as the stream
// forgets them, so a rebuild would not hold them either.
func Sweep(ctx context.Context, pool *pgxpool.Pool, table string, r Retention, logger *slog.Logger) {
	if r.Keep <= 0 {
		return
	}
	pg.Every(ctx, SweepEvery, logger, "dropped audit entries past the retention", func(ctx context.Context) (int64, error) {
		return Drop(ctx, pool, table, r)
	})
}

// Drop deletes the rows of table past the retention once; how many it
// deleted.
func Drop(ctx context.Context, pool *pgxpool.Pool, table string, r Retention) (int64, error) {
	if r.Keep <= 0 {
		return 0, nil
	}
	n, err := pg.DropBefore(ctx, pool, table, "occurred_at", r.Now().Add(-r.Keep))
	if err != nil {
		return 0, fmt.Errorf("audit: drop old entries: %w", err)
	}
	return n, nil
}

// CatchUp waits, up to CatchUpWithin, until the reactor and the read model
// named (in that order) hold the entry of every event appended before now,
// so that an administrator finds the act just done; UNAVAILABLE when they do
// not in time.
func CatchUp(ctx context.Context, set *projection.Set, names ...string) error {
	ctx, cancel := context.WithTimeout(ctx, CatchUpWithin)
	defer cancel()
	for _, name := range names {
		head, err := set.Head(ctx, name)
		if err == nil && head > 0 {
			err = set.WaitFor(ctx, name, head)
		}
		if err != nil {
			return errs.Wrap(errs.KindUnavailable, "The audit trail cannot be read right now.", err)
		}
	}
	return nil
}
