package projection_test

// Benchmarks of projections against a real embedded nats-server and the test
// kit's PostgreSQL. They print throughput for `make bench`; they assert
// nothing about speed, only that every event was applied.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Shape of the benchmark data: events are display-name changes spread over
// benchUsers users, appended by benchWriters concurrent writers.
const (
	benchUsers   = 1000
	benchWriters = 32
)

// BenchmarkProjectionApply measures how fast a projection catches up with a
// backlog: b.N events are appended first, then a projection set starts and
// the time until it has applied the last one is measured. ns/op is per event.
func BenchmarkProjectionApply(b *testing.B) {
	e := newBenchEnv(b)
	last := e.appendConcurrently(b, b.N)
	set := e.newSet(b)
	b.ResetTimer()
	e.run(b, set)
	e.waitFor(b, set, last)
	b.StopTimer()
	e.checkApplied(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRebuild100k rebuilds a projection of 100,000 events: the events are
// appended and applied once, then each iteration rebuilds the projection
// beside the live table and waits until the copy, having replayed the whole
// stream, is swapped in (projection.Set.Rebuild).
// Run it with -benchtime 1x; setup takes longer than one rebuild.
func BenchmarkRebuild100k(b *testing.B) {
	const events = 100_000
	e := newBenchEnv(b)
	setupStart := time.Now()
	last := e.appendConcurrently(b, events)
	appended := time.Since(setupStart)
	set := e.newSet(b)
	e.run(b, set)
	e.waitFor(b, set, last)
	b.Logf("setup: appended %d events in %v, first catch-up done after %v",
		events, appended.Round(time.Millisecond), time.Since(setupStart).Round(time.Millisecond))

	rebuilds := 0
	for b.Loop() {
		cp, err := set.Rebuild(e.ctx, benchProjection().Name)
		if err != nil {
			b.Fatalf("rebuild: %v", err)
		}
		if cp != last {
			b.Fatalf("rebuild reached seq %d, want %d", cp, last)
		}
		rebuilds++
	}
	e.checkApplied(b, events)
	perRebuild := b.Elapsed().Seconds() / float64(rebuilds)
	b.ReportMetric(events/perRebuild, "events/s")
	b.ReportMetric(perRebuild, "s/rebuild")
}

// benchProjection is the benchmarks' read model: each user's latest display
// name, and how many events were applied to the row, so a lost or repeated
// event shows in the total.
func benchProjection() projection.Projection {
	return projection.Projection{
		Name:     "bench_names",
		Subjects: []string{"bench.user.*"},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			ev, ok := rec.Event.(*eventsv1.DisplayNameSet)
			if !ok {
				return nil
			}
			_, err := tx.Exec(ctx, `
				INSERT INTO bench_names (user_id, name, applied) VALUES ($1, $2, 1)
				ON CONFLICT (user_id) DO UPDATE SET name = $2, applied = bench_names.applied + 1`,
				ev.GetUserId(), ev.GetDisplayName())
			return err
		},
		Tables: []string{"bench_names"},
	}
}

// benchEnv is an event log on a fresh nats-server and a fresh database, both
// living as long as the benchmark.
type benchEnv struct {
	ctx  context.Context
	log  *eventlog.Log
	pool *pgxpool.Pool
}

// newBenchEnv starts the event log and the database with the read model's table.
func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	ctx := context.Background()
	log, err := eventlog.Open(ctx, testkit.NATS(b), eventlog.StreamConfig{Name: "BENCH", Prefix: "bench"})
	if err != nil {
		b.Fatalf("open log: %v", err)
	}
	pool, err := pg.Connect(ctx, testkit.Postgres(b), "bench")
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_names (user_id text PRIMARY KEY, name text NOT NULL, applied int NOT NULL)`); err != nil {
		b.Fatalf("create read model: %v", err)
	}
	return &benchEnv{ctx: ctx, log: log, pool: pool}
}

// appendConcurrently appends n display-name changes from benchWriters
// goroutines and returns the stream sequence of the last one.
func (e *benchEnv) appendConcurrently(b *testing.B, n int) uint64 {
	b.Helper()
	var wg sync.WaitGroup
	errs := make([]error, benchWriters)
	for w := range benchWriters {
		wg.Go(func() {
			for i := w; i < n; i += benchWriters {
				id := fmt.Sprintf("u%d", i%benchUsers)
				_, err := e.log.Append(e.ctx, eventlog.Write{Event: eventlog.Event{
					Aggregate: eventlog.Ref{Type: "user", ID: id},
					Actor:     "bench",
					Payload:   &eventsv1.DisplayNameSet{UserId: id, DisplayName: fmt.Sprintf("name-%d", i)},
				}})
				if err != nil {
					errs[w] = fmt.Errorf("writer %d, event %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatalf("append: %v", err)
	}
	last, err := e.log.LastSeq(e.ctx)
	if err != nil {
		b.Fatalf("last seq: %v", err)
	}
	if last != uint64(n) {
		b.Fatalf("stream holds %d events, want %d", last, n)
	}
	return last
}

// newSet prepares a projection set of the benchmark projection.
func (e *benchEnv) newSet(b *testing.B) *projection.Set {
	b.Helper()
	set, err := projection.NewSet(e.ctx, e.pool, e.log, slog.New(slog.DiscardHandler), benchProjection())
	if err != nil {
		b.Fatalf("new set: %v", err)
	}
	return set
}

// run runs set until the benchmark ends; it stops before the pool closes.
func (e *benchEnv) run(b *testing.B, set *projection.Set) {
	b.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); set.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
}

// waitFor waits until the benchmark projection has applied the event at seq.
func (e *benchEnv) waitFor(b *testing.B, set *projection.Set, seq uint64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Minute)
	defer cancel()
	if err := set.WaitFor(ctx, benchProjection().Name, seq); err != nil {
		b.Fatalf("wait for seq %d: %v", seq, err)
	}
}

// checkApplied fails unless the read model counts exactly n applied events.
func (e *benchEnv) checkApplied(b *testing.B, n int) {
	b.Helper()
	var applied int64
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(sum(applied), 0) FROM bench_names`).Scan(&applied); err != nil {
		b.Fatalf("count applied events: %v", err)
	}
	if applied != int64(n) {
		b.Fatalf("read model applied %d events, want %d", applied, n)
	}
}
