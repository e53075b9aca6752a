// Package conformance is the suite every projection passes (dex's storage
// conformance idea, applied to read models). A service's tests call Run for
// each of its projections with a realistic history of events; Run checks,
// against the real NATS and PostgreSQL the test gives it, that:
//
//   - every event type on the projection's subjects is handled: a
//     projection's switch names each one (returning eventlog.Unhandled only for
//     types this binary does not know), and the history given exercises each;
//   - live: the events appended one by one, each applied as it arrives,
//     build the read model (the reference for what follows);
//   - the types it Ignores change nothing: each such event of the history,
//     applied after the whole history (which the runner stepped over
//     undecoded), leaves the read model as it was;
//   - apply is idempotent: any one event delivered again after the whole
//     history changes nothing (the runner's checkpoint already prevents a
//     second application; this guards the read model itself against one);
//   - for a projection with ApplyBatch: the whole history delivered again
//     in one batch changes nothing, and Apply on each event in turn builds
//     the same read model as the batches did;
//   - a rebuild does not change what readers see until it swaps in: while
//     it is held before its swap, caught up, the live tables are what they
//     were and the build's copies hold the same rows; after the swap, the
//     live tables still do;
//   - rebuild equals live: a rebuild from the stream gives the same rows;
//   - a new version is built beside the live one: the same projection
//     with its Version raised (as a new binary starts it) builds it from the
//     stream while readers keep the live version, unchanged, and swaps it
//     in, the rows the same and the checkpoint recording the version;
//   - reset empties: after a reset every table of the projection is empty
//     and its checkpoint is back to zero.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Case is one projection under test and the history that exercises it.
type Case struct {
	// Projection under test. Its Source is replaced by Log.
	Projection projection.Projection
	// Contract is the stream the projection consumes, as the event contract
	// names it: it lists the event types the projection must handle.
	Contract eventsv1.Stream
	// Log is that stream, opened by the test (eventlog.Open with
	// eventlog.StreamOf(Contract, 1)) on a fresh NATS server.
	Log *eventlog.Log
	// Pool connects to the service's schema, its migrations applied, in a
	// fresh database.
	Pool *pgxpool.Pool
	// Events is the history, appended in order. It should be what the
	// service really appends (ids that refer to each other, several
	// aggregates, events that undo earlier ones) and include every event
	// type on the projection's subjects.
	Events []eventlog.Event
}

// timeout bounds each wait for the projection.
const timeout = 30 * time.Second

// Run runs the suite as subtests of t.
func Run(t *testing.T, c Case) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.Projection.Source = c.Log
	name := c.Projection.Name
	if err := projection.Setup(ctx, c.Pool); err != nil {
		t.Fatal(err)
	}

	t.Run(name+"/handles every event type", func(t *testing.T) { c.handlesEveryType(ctx, t) })

	logger := slog.New(slog.DiscardHandler)
	set, err := projection.NewSet(ctx, c.Pool, c.Log, logger, c.Projection)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(ctx, set)
	defer func() { stop() }()

	var (
		records []eventlog.Record
		live    string
	)
	consumed := map[string]bool{}
	for _, ev := range c.Contract.EventsOn(c.Projection.Subjects...) {
		consumed[string(ev.ProtoReflect().Descriptor().FullName())] = true
	}
	ok := t.Run(name+"/live", func(t *testing.T) {
		for i, ev := range c.Events {
			appended, err := c.Log.Append(ctx, eventlog.Write{Event: ev})
			if err != nil {
				t.Fatalf("append event %d (%T): %v", i, ev.Payload, err)
			}
			if consumed[string(ev.Payload.ProtoReflect().Descriptor().FullName())] {
				wait(ctx, t, set, name, appended.Last()) // applied as it arrives
			}
		}
		records = c.history(ctx, t)
		live = c.dump(ctx, t, c.Pool)
		if live == c.empty() {
			t.Fatal("the history left every table empty: give events that build rows")
		}
	})
	if !ok {
		return
	}
	if ignored := eventlog.TypesOf(c.Projection.Ignores...); len(ignored) > 0 {
		t.Run(name+"/the types it ignores change nothing", func(t *testing.T) {
			for _, rec := range records {
				if !ignored.Has(rec.Type()) {
					continue
				}
				var after string
				err := c.inTx(ctx, func(tx pgx.Tx) error {
					if err := c.Projection.Apply(ctx, tx, rec); err != nil {
						return err
					}
					after = c.dump(ctx, t, tx)
					return errRollback
				})
				if err != nil || after != live {
					t.Errorf("Ignores lists %s, which the runner steps over, but Apply changes the read model with it (%v):\n%s", rec.Type(), err, diff(live, after))
				}
			}
		})
	}
	t.Run(name+"/apply is idempotent", func(t *testing.T) {
		for _, rec := range records {
			var after string
			err := c.inTx(ctx, func(tx pgx.Tx) error {
				if err := c.Projection.Apply(ctx, tx, rec); err != nil {
					return err
				}
				after = c.dump(ctx, t, tx)
				return errRollback
			})
			if err != nil {
				t.Errorf("%s at seq %d delivered again: %v", rec.Type(), rec.Seq, err)
				continue
			}
			if after != live {
				t.Errorf("%s at seq %d delivered again changed the read model:\n%s", rec.Type(), rec.Seq, diff(live, after))
			}
		}
	})
	if c.Projection.ApplyBatch != nil {
		t.Run(name+"/batch apply is idempotent and equals apply on each", func(t *testing.T) {
			var again, each string
			err := c.inTx(ctx, func(tx pgx.Tx) error {
				if err := c.Projection.ApplyBatch(ctx, tx, records); err != nil {
					return fmt.Errorf("the history delivered again in one batch: %w", err)
				}
				again = c.dump(ctx, t, tx)
				if _, err := tx.Exec(ctx, `TRUNCATE `+identifiers(c.Projection.Tables)); err != nil {
					return err
				}
				for _, rec := range records {
					if err := c.Projection.Apply(ctx, tx, rec); err != nil {
						return fmt.Errorf("%s at seq %d: %w", rec.Type(), rec.Seq, err)
					}
				}
				each = c.dump(ctx, t, tx)
				return errRollback
			})
			if err != nil {
				t.Fatal(err)
			}
			if again != live {
				t.Errorf("the history delivered again in one batch changed the read model:\n%s", diff(live, again))
			}
			if each != live {
				t.Errorf("Apply on each event gives another read model than ApplyBatch:\n%s", diff(live, each))
			}
		})
	}
	t.Run(name+"/a rebuild does not change what readers see until the swap", func(t *testing.T) {
		release := set.HoldSwap(name)
		defer release()
		_, target, err := set.StartRebuild(ctx, name, projection.RebuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(timeout)
		var st projection.Status
		for {
			if st, err = set.Status(ctx, name); err != nil {
				t.Fatal(err)
			}
			if st.Build == nil {
				t.Fatal("the rebuild swapped in although its swap was held")
			}
			if st.Build.Position >= target {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the build reached seq %d, not %d", st.Build.Position, target)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := c.dump(ctx, t, c.Pool); got != live {
			t.Errorf("while a rebuild is under way readers see:\n%s", diff(live, got))
		}
		if copies := c.dumpIn(ctx, t, c.Pool, st.Build.Schema); copies != live {
			t.Errorf("the build's copies differ from the live read model:\n%s", diff(live, copies))
		}
		release()
		if _, err := set.WaitRebuilt(ctx, name, target); err != nil {
			t.Fatal(err)
		}
		if got := c.dump(ctx, t, c.Pool); got != live {
			t.Errorf("after the swap readers see:\n%s", diff(live, got))
		}
		var left bool
		if err := c.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, st.Build.Schema).Scan(&left); err != nil || left {
			t.Errorf("the build schema %s is left after the swap (%v)", st.Build.Schema, err)
		}
	})
	t.Run(name+"/rebuild equals live", func(t *testing.T) {
		if _, err := set.Rebuild(ctx, name); err != nil {
			t.Fatal(err)
		}
		if rebuilt := c.dump(ctx, t, c.Pool); rebuilt != live {
			t.Errorf("the rebuild differs from the live read model:\n%s", diff(live, rebuilt))
		}
	})
	t.Run(name+"/a new version is built beside the live one", func(t *testing.T) {
		// A binary with the projection's next Version: it builds the new
		// version from the stream while readers keep the live one.
		stop()
		next := c.Projection
		next.Version = max(next.Version, 1) + 1
		upgraded, err := projection.NewSet(ctx, c.Pool, c.Log, logger, next)
		if err != nil {
			t.Fatal(err)
		}
		release := upgraded.HoldSwap(name) // before it runs: no build swaps unseen
		defer release()
		stop = run(ctx, upgraded)
		target, err := c.Log.LastSeqOf(ctx, next.Subjects...)
		if err != nil {
			t.Fatal(err)
		}
		st := waitStatus(ctx, t, upgraded, name, "the new version built up to the stream's last event", func(st projection.Status) bool {
			return st.Build != nil && st.Build.Reason == projection.ReasonUpgrade && st.Build.Version == next.Version && st.Build.Position >= target
		})
		if st.Version != next.Version-1 {
			t.Errorf("while the new version is built the live one is version %d, want %d", st.Version, next.Version-1)
		}
		if got := c.dump(ctx, t, c.Pool); got != live {
			t.Errorf("while the new version is built readers see:\n%s", diff(live, got))
		}
		if copies := c.dumpIn(ctx, t, c.Pool, st.Build.Schema); copies != live {
			t.Errorf("the new version's copies differ from the live read model:\n%s", diff(live, copies))
		}
		release()
		waitStatus(ctx, t, upgraded, name, "the new version swapped in", func(st projection.Status) bool {
			return st.Build == nil && st.Version == next.Version && st.Checkpoint >= target
		})
		if got := c.dump(ctx, t, c.Pool); got != live {
			t.Errorf("the new version differs from the live read model:\n%s", diff(live, got))
		}
	})
	t.Run(name+"/reset empties", func(t *testing.T) {
		stop() // no leader replays behind the reset
		if err := projection.Reset(ctx, c.Pool, c.Projection); err != nil {
			t.Fatal(err)
		}
		if got := c.dump(ctx, t, c.Pool); got != c.empty() {
			t.Errorf("after a reset the tables hold:\n%s", got)
		}
		if cp, err := projection.Checkpoint(ctx, c.Pool, name); err != nil || cp != 0 {
			t.Errorf("after a reset the checkpoint is %d (%v)", cp, err)
		}
	})
}

// errRollback ends a transaction that must leave nothing behind.
var errRollback = errors.New("rolled back on purpose")

// inTx runs fn in a transaction that is always rolled back.
func (c Case) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, c.Pool, fn)
	if errors.Is(err, errRollback) {
		return nil
	}
	return err
}

// handlesEveryType applies one made-up event of each type on the
// projection's subjects, in a transaction rolled back, and checks none is
// reported unhandled; it also checks the history exercises every type.
func (c Case) handlesEveryType(ctx context.Context, t *testing.T) {
	types := c.Contract.EventsOn(c.Projection.Subjects...)
	if len(types) == 0 {
		t.Fatalf("no event of %s is on the subjects %v", c.Contract.Name, c.Projection.Subjects)
	}
	given := map[string]bool{}
	for _, ev := range c.Events {
		given[string(ev.Payload.ProtoReflect().Descriptor().FullName())] = true
	}
	for _, ev := range types {
		full := ev.ProtoReflect().Descriptor().FullName()
		_, agg, _ := eventsv1.AggregateOf(full)
		rec := madeUp(agg, proto.Clone(ev))
		err := c.inTx(ctx, func(tx pgx.Tx) error {
			if err := c.Projection.Apply(ctx, tx, rec); err != nil {
				return err
			}
			return errRollback
		})
		if errors.Is(err, eventlog.ErrUnhandled) {
			t.Errorf("%s is on the subjects %v but the projection does not handle it: add a case saying what it does with it", full.Name(), c.Projection.Subjects)
		}
		if !given[string(full)] {
			t.Errorf("the history never includes %s: add one to the conformance events", full.Name())
		}
	}
}

// madeUp is a record of an empty event of a type, as if stored late in the stream.
func madeUp(a eventsv1.Aggregate, ev proto.Message) eventlog.Record {
	id := ulid.Make().String()
	payload, err := anypb.New(ev)
	if err != nil {
		panic(err)
	}
	return eventlog.Record{
		Seq: 1 << 40, Subject: a.Subject(id), Event: ev,
		Envelope: &eventsv1.Envelope{Id: ulid.Make().String(), AggregateType: a.Type, AggregateId: id,
			OccurredAt: timestamppb.Now(), Actor: "conformance", Payload: payload},
	}
}

// history reads back the projection's events from the stream, in order.
func (c Case) history(ctx context.Context, t *testing.T) []eventlog.Record {
	t.Helper()
	var records []eventlog.Record
	last, err := c.Log.LastSeqOf(ctx, c.Projection.Subjects...)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = c.Log.Read(rctx, 1, c.Projection.Subjects, func(rec eventlog.Record) error {
		records = append(records, rec)
		if rec.Seq >= last {
			cancel()
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	return records
}

// dump is the content of the projection's tables: one line per row, as
// "table: {json}", in a fixed order.
func (c Case) dump(ctx context.Context, t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) string {
	t.Helper()
	return c.dumpIn(ctx, t, q, "")
}

// dumpIn is dump of the tables in schema (the search_path when empty).
func (c Case) dumpIn(ctx context.Context, t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, schema string) string {
	t.Helper()
	var b strings.Builder
	for _, table := range c.Projection.Tables {
		id := pgx.Identifier{table}
		if schema != "" {
			id = pgx.Identifier{schema, table}
		}
		rows, err := q.Query(ctx, `SELECT r::text FROM (SELECT to_jsonb(t) AS r FROM `+id.Sanitize()+` t) rows ORDER BY r::text`)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		for _, l := range lines {
			fmt.Fprintf(&b, "%s: %s\n", table, l)
		}
	}
	return b.String()
}

// identifiers is a comma-separated list of quoted table names.
func identifiers(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(quoted, ", ")
}

// empty is the dump of empty tables.
func (c Case) empty() string { return "" }

// run runs set until stop, which waits for it to end (and does nothing
// more when called again).
func run(ctx context.Context, set *projection.Set) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); set.Run(ctx) }()
	return func() { cancel(); <-done }
}

// waitStatus waits until the status of projection name satisfies ok, and returns it.
func waitStatus(ctx context.Context, t *testing.T, set *projection.Set, name, what string, ok func(projection.Status) bool) projection.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := set.Status(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reached in %v: %s (status %+v, build %+v)", timeout, what, st, st.Build)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func wait(ctx context.Context, t *testing.T, set *projection.Set, name string, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := set.WaitFor(ctx, name, seq); err != nil {
		t.Fatalf("projection %s did not reach seq %d: %v", name, seq, err)
	}
}

// diff shows the rows only one of two dumps has.
func diff(want, got string) string {
	w, g := strings.Split(strings.TrimSpace(want), "\n"), strings.Split(strings.TrimSpace(got), "\n")
	var out []string
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "  - "+l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "  + "+l)
		}
	}
	return strings.Join(out, "\n")
}
