package projection_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	projectionsv1 "gatehouse.dev/proto/gatehouse/projections/v1"
)

// effects records the side effects a test reactor made: the sequence of
// every event handled, in the order handled, across replicas.
type effects struct {
	mu   sync.Mutex
	seqs []uint64
	// fail, when set, decides whether an attempt at an event fails.
	fail  func(seq uint64, attempt int) bool
	tries map[uint64]int
}

func (f *effects) handle(_ context.Context, rec eventlog.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tries == nil {
		f.tries = map[uint64]int{}
	}
	f.tries[rec.Seq]++
	if f.fail != nil && f.fail(rec.Seq, f.tries[rec.Seq]) {
		return fmt.Errorf("the outside world refused event %d", rec.Seq)
	}
	f.seqs = append(f.seqs, rec.Seq)
	return nil
}

func (f *effects) handled() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seqs)
}

func (f *effects) attempts(seq uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries[seq]
}

func (e *env) reactor(f *effects) projection.Reactor {
	return projection.Reactor{Name: "mailer", Subjects: []string{"test.user.*"}, Handle: f.handle,
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}
}

// runSet runs a set of members until the returned stop function is called.
func (e *env) runSet(t *testing.T, members ...projection.Member) (*projection.Set, func()) {
	t.Helper()
	set, err := projection.NewSet(e.ctx, e.pool, e.log, slog.New(slog.DiscardHandler), members...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); set.Run(ctx) }()
	var once sync.Once
	return set, func() { once.Do(func() { cancel(); <-done }) }
}

func waitSet(t *testing.T, set *projection.Set, name string, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := set.WaitFor(ctx, name, seq); err != nil {
		t.Fatal(err)
	}
}

// seqsUpTo lists the stream sequences 1..last.
func seqsUpTo(from, last uint64) []uint64 {
	var out []uint64
	for s := from; s <= last; s++ {
		out = append(out, s)
	}
	return out
}

// inOrder is the events handled in stream order, leaving out each one
// handled again after a later one (a pass resumed from its checkpoint).
func inOrder(handled []uint64) []uint64 {
	var out []uint64
	for _, s := range handled {
		if len(out) == 0 || s > out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}

func TestReactorHandlesEveryEventOnceInOrder(t *testing.T) {
	e := setup(t)
	f := &effects{}
	set, stop := e.runSet(t, e.reactor(f))
	defer stop()
	last := e.appendNames(t, 3, 40)
	waitSet(t, set, "mailer", last)
	if got := f.handled(); !slices.Equal(got, seqsUpTo(1, last)) {
		t.Fatalf("handled %v, want 1..%d in order", got, last)
	}
	if cp, err := set.Checkpoint(e.ctx, "mailer"); err != nil || cp != last {
		t.Fatalf("checkpoint %d, %v; want %d", cp, err, last)
	}
	if set.KindOf("mailer") != projection.KindReactor {
		t.Fatalf("kind %q", set.KindOf("mailer"))
	}
}

// While the outside world refuses an event, the reactor tries it again and
// nothing behind it moves; the checkpoint stays before it. Then everything
// goes through, in order, each event once.
func TestReactorRetriesWithoutSkipping(t *testing.T) {
	e := setup(t)
	last := e.appendNames(t, 2, 10)
	var (
		mu      sync.Mutex
		outage  = true
		blocked = uint64(4)
	)
	f := &effects{fail: func(seq uint64, _ int) bool {
		mu.Lock()
		defer mu.Unlock()
		return outage && seq == blocked
	}}
	set, stop := e.runSet(t, e.reactor(f))
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for f.attempts(blocked) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("event %d tried %d times", blocked, f.attempts(blocked))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := f.handled(); !slices.Equal(got, seqsUpTo(1, blocked-1)) {
		t.Fatalf("during the outage handled %v, want 1..%d", got, blocked-1)
	}
	if cp, _ := set.Checkpoint(e.ctx, "mailer"); cp != blocked-1 {
		t.Fatalf("checkpoint %d during the outage, want %d", cp, blocked-1)
	}
	mu.Lock()
	outage = false
	mu.Unlock()
	waitSet(t, set, "mailer", last)
	if got := f.handled(); !slices.Equal(got, seqsUpTo(1, last)) {
		t.Fatalf("handled %v, want 1..%d", got, last)
	}
}

// A reactor stopped (a process going away) resumes after its checkpoint:
// nothing is handled twice, nothing skipped.
func TestReactorResumesAfterItsCheckpoint(t *testing.T) {
	e := setup(t)
	f := &effects{}
	set, stop := e.runSet(t, e.reactor(f))
	first := e.appendNames(t, 2, 12)
	waitSet(t, set, "mailer", first)
	stop()
	last := e.appendNames(t, 2, 8) // while no replica runs it
	set, stop = e.runSet(t, e.reactor(f))
	defer stop()
	waitSet(t, set, "mailer", last)
	if got := f.handled(); !slices.Equal(got, seqsUpTo(1, last)) {
		t.Fatalf("handled %v, want 1..%d exactly once", got, last)
	}
}

// Two replicas run the same reactor: one leads, each event is handled once;
// when the leader goes, the other takes over where it stopped.
func TestReactorHasOneLeader(t *testing.T) {
	e := setup(t)
	f := &effects{}
	setA, stopA := e.runSet(t, e.reactor(f))
	setB, stopB := e.runSet(t, e.reactor(f))
	defer stopB()
	last := e.appendNames(t, 3, 30)
	waitSet(t, setA, "mailer", last)
	stopA()
	more := e.appendNames(t, 3, 6)
	waitSet(t, setB, "mailer", more)
	if got := f.handled(); !slices.Equal(got, seqsUpTo(1, more)) {
		t.Fatalf("handled %v, want 1..%d exactly once", got, more)
	}
}

// A rebuild rewinds a reactor, also an idle one: it replays the stream through
// Handle (running Reset first) and the rebuild returns once it caught up.
// Projections and reactors live side by side in one set and one listing.
func TestReactorRebuild(t *testing.T) {
	e := setup(t)
	f := &effects{}
	resets := 0
	r := e.reactor(f)
	r.Reset = func(context.Context, pgx.Tx) error { resets++; return nil }
	set, stop := e.runSet(t, names, r)
	defer stop()
	last := e.appendNames(t, 2, 6)
	waitSet(t, set, "mailer", last)
	waitSet(t, set, "names", last)

	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	before := len(f.handled())
	cp, err := set.Rebuild(ctx, "mailer")
	if err != nil || cp != last {
		t.Fatalf("rebuild: %d, %v", cp, err)
	}
	// Two passes over 1..last, Reset between them. Handlers are idempotent
	// and a lead that ends between an effect and its checkpoint (a busy
	// machine once ended one) handles that event again: a pass is the
	// events in order, an event handled again not counted twice.
	got := f.handled()
	first, again := inOrder(got[:before]), inOrder(got[before:])
	if !slices.Equal(first, seqsUpTo(1, last)) || !slices.Equal(again, seqsUpTo(1, last)) || resets != 1 {
		t.Fatalf("handled %v (resets %d), want two passes over 1..%d", got, resets, last)
	}

	list, err := projection.NewAdmin(map[string]*projection.Set{"test": set}).ListProjections(ctx, &projectionsv1.ListProjectionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, p := range list.GetProjections() {
		kinds[p.GetName()] = p.GetKind()
		if p.GetCheckpoint() != last || p.GetStream() != "TEST" {
			t.Errorf("listed %v", p)
		}
	}
	if kinds["test.names"] != projection.KindProjection || kinds["test.mailer"] != projection.KindReactor {
		t.Fatalf("kinds %v", kinds)
	}
}

// A checkpoint moved under the leader (a second leader after a split, or a
// rewind it missed) is noticed when the leader records its next event: it
// starts again from the checkpoint, so nothing is skipped.
func TestReactorNoticesAMovedCheckpoint(t *testing.T) {
	e := setup(t)
	f := &effects{}
	set, stop := e.runSet(t, e.reactor(f))
	defer stop()
	first := e.appendNames(t, 1, 3)
	waitSet(t, set, "mailer", first)
	// Someone else rewinds it without announcing: only the compare-and-set sees it.
	if _, err := e.pool.Exec(e.ctx, `UPDATE projection_checkpoints SET last_seq = 1 WHERE name = 'mailer'`); err != nil {
		t.Fatal(err)
	}
	last := e.appendNames(t, 1, 1)
	waitSet(t, set, "mailer", last)
	got := f.handled()
	if !slices.Equal(got[:3], seqsUpTo(1, 3)) || got[len(got)-1] != last || !slices.Contains(got[3:], 2) {
		t.Fatalf("handled %v: want 1..3, then a replay from 2 up to %d", got, last)
	}
}

func TestInvalidReactor(t *testing.T) {
	e := setup(t)
	f := &effects{}
	bad := []projection.Reactor{
		{Name: "Bad Name", Subjects: []string{"x"}, Handle: f.handle},
		{Name: "nosubjects", Handle: f.handle},
		{Name: "nohandle", Subjects: []string{"x"}},
	}
	for _, r := range bad {
		if _, err := projection.NewSet(e.ctx, e.pool, e.log, slog.New(slog.DiscardHandler), r); err == nil {
			t.Errorf("NewSet accepted reactor %q", r.Name)
		}
	}
	if _, err := projection.NewSet(e.ctx, e.pool, e.log, slog.New(slog.DiscardHandler), e.reactor(f), e.reactor(f)); err == nil {
		t.Error("NewSet accepted a name twice")
	}
}

// batches records the runs a batch reactor was given.
type batches struct {
	effects
	mu   sync.Mutex
	runs [][]uint64
}

func (b *batches) handleBatch(ctx context.Context, recs []eventlog.Record) error {
	var seqs []uint64
	for _, rec := range recs {
		seqs = append(seqs, rec.Seq)
	}
	b.mu.Lock()
	b.runs = append(b.runs, seqs)
	b.mu.Unlock()
	for _, rec := range recs {
		if err := b.handle(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// A reactor with HandleBatch gets the events of a bulk in runs of at most
// Batch, in order, only those Relevant accepts; a run that fails is tried
// again whole, and nothing behind it moves; every event ends up handled,
// and the checkpoint reaches the last event, irrelevant ones included.
func TestReactorHandlesRunsOfEvents(t *testing.T) {
	e := setup(t)
	last := e.appendNames(t, 3, 60)
	var (
		mu     sync.Mutex
		outage = true
	)
	b := &batches{}
	b.fail = func(seq uint64, _ int) bool {
		mu.Lock()
		defer mu.Unlock()
		return outage && seq == 31
	}
	r := projection.Reactor{Name: "bulk", Subjects: []string{"test.user.*"}, HandleBatch: b.handleBatch, Batch: 8,
		Relevant: func(rec eventlog.Record) bool { return rec.Seq%5 != 0 },
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}
	set, stop := e.runSet(t, r)
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for b.attempts(31) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("event 31 tried %d times", b.attempts(31))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cp, _ := set.Checkpoint(e.ctx, "bulk"); cp >= 31 {
		t.Fatalf("checkpoint %d while the run holding 31 fails", cp)
	}
	mu.Lock()
	outage = false
	mu.Unlock()
	waitSet(t, set, "bulk", last)
	var want []uint64
	for s := uint64(1); s <= last; s++ {
		if s%5 != 0 {
			want = append(want, s)
		}
	}
	got := slices.Compact(slices.Clone(b.handled()))
	slices.Sort(got)
	if !slices.Equal(slices.Compact(got), want) {
		t.Fatalf("handled %v, want every relevant event of 1..%d", got, last)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := uint64(0)
	for _, run := range b.runs {
		if len(run) == 0 || len(run) > 8 {
			t.Fatalf("a run of %d events, want 1..8: %v", len(run), b.runs)
		}
		if run[0] < prev && !slices.Contains(run, 31) {
			t.Fatalf("runs out of order: %v", b.runs)
		}
		prev = run[len(run)-1]
	}
	if len(b.runs) >= len(want) {
		t.Fatalf("%d runs for %d events: not batched", len(b.runs), len(want))
	}
}
