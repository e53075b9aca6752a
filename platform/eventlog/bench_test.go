package eventlog_test

// Benchmarks of the event log against a real embedded nats-server with file
// storage. They print throughput for `make bench`; they assert nothing about
// speed, only that each operation did what it should.

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// BenchmarkAppend appends single events one after another to one aggregate,
// each expecting the version the previous append returned, as a command does.
func BenchmarkAppend(b *testing.B) {
	ctx := b.Context()
	l := benchLog(b)
	ref := eventlog.Ref{Type: "user", ID: ulid.Make().String()}
	var version uint64
	events := 0
	for b.Loop() {
		w := benchRename(ref, events)
		w.Expect = eventlog.ExpectVersion(version)
		got, err := l.Append(ctx, w)
		if err != nil {
			b.Fatalf("append %d: %v", events, err)
		}
		version = got.Last()
		events++
	}
	reportEventsPerSecond(b, events)
}

// BenchmarkAppendParallel appends from many goroutines at once, each writing
// to aggregates of its own with version expectations, so appends never
// conflict and the stream sees concurrent publishes as under load.
func BenchmarkAppendParallel(b *testing.B) {
	const aggregatesPerWriter = 16
	ctx := b.Context()
	l := benchLog(b)
	var events atomic.Int64
	b.SetParallelism(16) // 16 writers per GOMAXPROCS: appends wait on I/O, not CPU.
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		refs := make([]eventlog.Ref, aggregatesPerWriter)
		versions := make([]uint64, aggregatesPerWriter)
		for i := range refs {
			refs[i] = eventlog.Ref{Type: "user", ID: ulid.Make().String()}
		}
		for i := 0; pb.Next(); i++ {
			k := i % aggregatesPerWriter
			w := benchRename(refs[k], i)
			w.Expect = eventlog.ExpectVersion(versions[k])
			got, err := l.Append(ctx, w)
			if err != nil {
				b.Errorf("append to %s: %v", refs[k].ID, err)
				return
			}
			versions[k] = got.Last()
			events.Add(1)
		}
	})
	reportEventsPerSecond(b, int(events.Load()))
}

// BenchmarkAppendBatch appends two-event atomic batches (a user registered and
// its username reserved, both expected new), as registration does.
func BenchmarkAppendBatch(b *testing.B) {
	ctx := b.Context()
	l := benchLog(b)
	batches := 0
	for b.Loop() {
		userID := ulid.Make().String()
		username := fmt.Sprintf("bench-%d-%s", batches, userID)
		got, err := l.Append(ctx,
			eventlog.Write{
				Event: eventlog.Event{
					Aggregate: eventlog.Ref{Type: "user", ID: userID},
					Actor:     "bench",
					Payload:   &eventsv1.UserRegistered{UserId: userID, Username: username},
				},
				Expect: eventlog.ExpectNew(),
			},
			eventlog.Write{
				Event: eventlog.Event{
					Aggregate: eventlog.Ref{Type: "username", ID: username},
					Actor:     "bench",
					Payload:   &eventsv1.UsernameReserved{Username: username, UserId: userID},
				},
				Expect: eventlog.ExpectNew(),
			},
		)
		if err != nil {
			b.Fatalf("append batch %d: %v", batches, err)
		}
		if len(got.Seqs) != 2 {
			b.Fatalf("batch %d stored %d events, want 2", batches, len(got.Seqs))
		}
		batches++
	}
	reportEventsPerSecond(b, 2*batches)
}

// BenchmarkAppendBulk appends runs of 1,000 new aggregates' first events
// (claims, as an import writes them), pipelined (AppendEach, the import's
// way) and as atomic batches (Append), and reports the process's CPU per
// event, client and embedded server together: what one event costs when
// nothing waits, the floor of anything that writes events in bulk.
func BenchmarkAppendBulk(b *testing.B) {
	const run = 1000
	for _, bc := range []struct {
		name   string
		append func(context.Context, *eventlog.Log, []eventlog.Write) error
	}{
		{"pipelined", func(ctx context.Context, l *eventlog.Log, ws []eventlog.Write) error {
			out, err := l.AppendEach(ctx, ws)
			if err != nil {
				return err
			}
			for _, p := range out {
				if p.Err != nil || p.Duplicate {
					return fmt.Errorf("a write of the run: %+v", p)
				}
			}
			return nil
		}},
		{"atomic-batch", func(ctx context.Context, l *eventlog.Log, ws []eventlog.Write) error {
			got, err := l.Append(ctx, ws...)
			if err == nil && len(got.Seqs) != len(ws) {
				err = fmt.Errorf("%d of %d events stored", len(got.Seqs), len(ws))
			}
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := b.Context()
			l := benchLog(b)
			events := 0
			cpu0 := processCPU(b)
			for b.Loop() {
				if err := bc.append(ctx, l, newClaims(run)); err != nil {
					b.Fatal(err)
				}
				events += run
			}
			reportEventsPerSecond(b, events)
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(events), "cpu-µs/event")
		})
	}
}

// newClaims are n writes of a username claim each, every one expecting its
// aggregate new.
func newClaims(n int) []eventlog.Write {
	ws := make([]eventlog.Write, n)
	for i := range ws {
		id := ulid.Make().String()
		ws[i] = eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
			Aggregate: eventlog.Ref{Type: "username", ID: "u" + id}, Actor: "bench",
			Payload: &eventsv1.UsernameReserved{Username: "u" + id, UserId: id},
		}}
	}
	return ws
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLoad loads aggregates of 20 events each from a stream in which the
// events of 50 aggregates are interleaved, so every load filters by subject.
// Its B/op shows the read's own allocation (512 KiB more per load on a
// connection without ConnOptions).
func BenchmarkLoad(b *testing.B) {
	const (
		aggregates = 50
		history    = 20
	)
	ctx := b.Context()
	l := benchLog(b)
	refs := make([]eventlog.Ref, aggregates)
	for i := range refs {
		refs[i] = eventlog.Ref{Type: "user", ID: ulid.Make().String()}
	}
	for n := range history {
		for _, ref := range refs {
			if _, err := l.Append(ctx, benchRename(ref, n)); err != nil {
				b.Fatalf("set up history: %v", err)
			}
		}
	}
	loads := 0
	b.ReportAllocs()
	for b.Loop() {
		records, version, err := l.Load(ctx, refs[loads%aggregates])
		if err != nil {
			b.Fatalf("load: %v", err)
		}
		if len(records) != history || version == 0 {
			b.Fatalf("loaded %d events at version %d, want %d", len(records), version, history)
		}
		loads++
	}
	reportEventsPerSecond(b, history*loads)
}

// benchLog opens a stream on a fresh embedded server that lives as long as b.
func benchLog(b *testing.B) *eventlog.Log {
	b.Helper()
	js := testkit.NATS(b)
	l, err := eventlog.Open(context.Background(), js, eventlog.StreamConfig{Name: "BENCH", Prefix: "bench"})
	if err != nil {
		b.Fatalf("open log: %v", err)
	}
	return l
}

// benchRename is an unconditional write of a display name change to ref.
func benchRename(ref eventlog.Ref, n int) eventlog.Write {
	return eventlog.Write{Event: eventlog.Event{
		Aggregate: ref,
		Actor:     "bench",
		Payload:   &eventsv1.DisplayNameSet{UserId: ref.ID, DisplayName: fmt.Sprintf("name-%d", n)},
	}}
}

// reportEventsPerSecond adds an events/s metric for the events the
// benchmark stored or read in its measured time.
func reportEventsPerSecond(b *testing.B, events int) {
	b.Helper()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(events)/s, "events/s")
	}
}
