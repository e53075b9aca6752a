package eventlog_test

import (
	"context"
	"testing"

	"github.com/oklog/ulid/v2"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// AppendEach stores every write with its expectation, reports a run again
// with the same event ids as duplicates, and a write whose aggregate holds
// another event as a conflict.
func TestAppendEach(t *testing.T) {
	ctx := context.Background()
	l, _ := openLog(t)
	const n = 1500 // more than the window in flight
	writes := make([]eventlog.Write, n)
	for i := range writes {
		w := renamed(userRef(), "name")
		w.Event.ID = ulid.Make().String()
		w.Expect = eventlog.ExpectNew()
		writes[i] = w
	}
	first, err := l.AppendEach(ctx, writes)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i, p := range first {
		if p.Err != nil || p.Duplicate || p.Seq == 0 || seen[p.Seq] {
			t.Fatalf("write %d: %+v", i, p)
		}
		seen[p.Seq] = true
	}

	// The same events again (a run after an interruption): each is found.
	again, err := l.AppendEach(ctx, writes)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range again {
		if p.Err != nil || !p.Duplicate || p.Seq != first[i].Seq {
			t.Fatalf("write %d again: %+v, first %+v", i, p, first[i])
		}
	}
	if last, err := l.LastSeq(ctx); err != nil || last != first[n-1].Seq {
		t.Fatalf("the stream ends at %d (%v), want %d: something was stored twice", last, err, first[n-1].Seq)
	}

	// Another event expecting the aggregate new: a conflict, and FirstID
	// tells whose event started the aggregate.
	other := renamed(writes[7].Event.Aggregate, "other")
	other.Expect = eventlog.ExpectNew()
	got, err := l.AppendEach(ctx, []eventlog.Write{other})
	if err != nil {
		t.Fatal(err)
	}
	if !eventlog.IsConflict(got[0].Err) {
		t.Fatalf("outcome %+v, want a conflict", got[0])
	}
	id, err := l.FirstID(ctx, writes[7].Event.Aggregate)
	if err != nil || id != writes[7].Event.ID {
		t.Fatalf("FirstID = %q, %v; want %q", id, err, writes[7].Event.ID)
	}
	if id, err := l.FirstID(ctx, userRef()); err != nil || id != "" {
		t.Fatalf("FirstID of nothing = %q, %v", id, err)
	}
}

// AppendEach refuses what the contract does not list before publishing anything.
func TestAppendEachChecksTheContract(t *testing.T) {
	ctx := context.Background()
	l, err := eventlog.Open(ctx, testkit.NATS(t), eventlog.StreamOf(eventsv1.Accounts, 1))
	if err != nil {
		t.Fatal(err)
	}
	ok := eventlog.Write{Event: eventlog.Event{Aggregate: eventlog.Ref{Type: "user", ID: ulid.Make().String()},
		Payload: &eventsv1.UserLocked{}}}
	bad := eventlog.Write{Event: eventlog.Event{Aggregate: eventlog.Ref{Type: "user", ID: ulid.Make().String()},
		Payload: &eventsv1.SessionEnded{}}}
	if _, err := l.AppendEach(ctx, []eventlog.Write{ok, bad}); err == nil {
		t.Fatal("an event the contract does not list was accepted")
	}
	if last, err := l.LastSeq(ctx); err != nil || last != 0 {
		t.Fatalf("the stream holds %d events (%v)", last, err)
	}
}
