package projection_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// appendMixed appends, for each of n users, an AdminSet then a
// DisplayNameSet, and returns the sequences of each kind.
func (e *env) appendMixed(t *testing.T, n int) (admins, renames []uint64) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("u%d", i)
		got, err := e.log.Append(e.ctx,
			eventlog.Write{Event: eventlog.Event{Aggregate: eventlog.Ref{Type: "user", ID: id}, Payload: &eventsv1.AdminSet{UserId: id, Admin: true}}},
			eventlog.Write{Event: eventlog.Event{Aggregate: eventlog.Ref{Type: "user", ID: id}, Payload: &eventsv1.DisplayNameSet{UserId: id, DisplayName: fmt.Sprintf("name-%d", i)}}})
		if err != nil {
			t.Fatal(err)
		}
		admins, renames = append(admins, got.Seqs[0]), append(renames, got.Seqs[1])
	}
	return admins, renames
}

// seen records the events a consumer was given.
type seen struct {
	mu   sync.Mutex
	seqs []uint64
	bad  []string
}

func (s *seen) note(rec eventlog.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs = append(s.seqs, rec.Seq)
	if rec.Skipped || rec.Event == nil {
		s.bad = append(s.bad, fmt.Sprintf("seq %d given undecoded", rec.Seq))
	}
	if _, ok := rec.Event.(*eventsv1.AdminSet); ok {
		s.bad = append(s.bad, fmt.Sprintf("seq %d: an ignored AdminSet given", rec.Seq))
	}
}

func (s *seen) got() ([]uint64, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seqs), slices.Clone(s.bad)
}

// A projection's runner and its rebuild step over the types it ignores: Apply
// never sees them, and the checkpoint moves past them.
func TestProjectionStepsOverIgnoredTypes(t *testing.T) {
	e := setup(t)
	var given seen
	p := names
	p.Name = "names_ignoring"
	p.Ignores = []proto.Message{&eventsv1.AdminSet{}}
	inner := p.Apply
	p.Apply = func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
		given.note(rec)
		return inner(ctx, tx, rec)
	}
	_, renames := e.appendMixed(t, 50)
	// The last event is ignored: the checkpoint must still reach it.
	got, err := e.log.Append(e.ctx, eventlog.Write{Event: eventlog.Event{Aggregate: eventlog.Ref{Type: "user", ID: "u0"}, Payload: &eventsv1.AdminSet{UserId: "u0"}}})
	if err != nil {
		t.Fatal(err)
	}
	last := got.Last()
	set, stop := e.runSet(t, p)
	defer stop()
	waitSet(t, set, p.Name, last)
	seqs, bad := given.got()
	if len(bad) > 0 {
		t.Fatalf("the runner gave Apply what it ignores: %v", bad)
	}
	if !slices.Equal(seqs, renames) {
		t.Fatalf("Apply was given %v, want the renames %v", seqs, renames)
	}
	if cp, err := set.Checkpoint(e.ctx, p.Name); err != nil || cp != last {
		t.Fatalf("checkpoint %d, %v; want %d", cp, err, last)
	}
	given = seen{}
	if _, err := set.Rebuild(e.ctx, p.Name); err != nil {
		t.Fatal(err)
	}
	if seqs, bad := given.got(); len(bad) > 0 || !slices.Equal(seqs, renames) {
		t.Fatalf("the rebuild gave Apply %v (%v), want the renames %v", seqs, bad, renames)
	}
}

// A reactor steps over the types it ignores without handling them, and its
// checkpoint moves past them.
func TestReactorStepsOverIgnoredTypes(t *testing.T) {
	e := setup(t)
	var given seen
	r := projection.Reactor{Name: "ignoring", Subjects: []string{"test.user.*"}, Ignores: []proto.Message{&eventsv1.AdminSet{}},
		Handle: func(_ context.Context, rec eventlog.Record) error { given.note(rec); return nil }}
	set, stop := e.runSet(t, r)
	defer stop()
	_, renames := e.appendMixed(t, 30)
	got, err := e.log.Append(e.ctx, eventlog.Write{Event: eventlog.Event{Aggregate: eventlog.Ref{Type: "user", ID: "u0"}, Payload: &eventsv1.AdminSet{UserId: "u0"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitSet(t, set, r.Name, got.Last())
	seqs, bad := given.got()
	if len(bad) > 0 || !slices.Equal(seqs, renames) {
		t.Fatalf("Handle was given %v (%v), want the renames %v", seqs, bad, renames)
	}
}
