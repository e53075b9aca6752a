package eventlog_test

import (
	"context"
	"fmt"
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

// A stream that keeps the last message of each subject: an existing
// stream's history is dropped when it is set, an aggregate's version is its
// last event's sequence and optimistic concurrency still works on it, and
// LastOfEach visits each aggregate's last event once.
func TestLastPerSubject(t *testing.T) {
	ctx := context.Background()
	l, js := openLog(t)
	refs := []eventlog.Ref{userRef(), userRef(), userRef()}
	for i := range 3 {
		for _, ref := range refs {
			if _, err := l.Append(ctx, renamed(ref, fmt.Sprintf("name %d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	visited := func(l *eventlog.Log) map[string]string {
		got := map[string]string{}
		if err := l.LastOfEach(ctx, l.Subjects("user"), func(rec eventlog.Record) error {
			got[rec.Aggregate().ID] += rec.Event.(*eventsv1.DisplayNameSet).GetDisplayName()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := visited(l); len(got) != 3 || got[refs[1].ID] != "name 2" {
		t.Fatalf("last of each before the limit: %v", got)
	}

	l, err := eventlog.Open(ctx, js, eventlog.StreamConfig{Name: "TEST", Prefix: "test", LastPerSubject: true})
	if err != nil {
		t.Fatal(err)
	}
	history, version, err := l.Load(ctx, refs[0])
	if err != nil || len(history) != 1 || history[0].Seq != version || history[0].Event.(*eventsv1.DisplayNameSet).GetDisplayName() != "name 2" {
		t.Fatalf("after the limit: %d events, version %d, %v", len(history), version, err)
	}
	stale := renamed(refs[0], "stale")
	stale.Expect = eventlog.ExpectVersion(version - 1)
	if _, err := l.Append(ctx, stale); !eventlog.IsConflict(err) {
		t.Fatalf("a write on an older version: %v", err)
	}
	next := renamed(refs[0], "next")
	next.Expect = eventlog.ExpectVersion(version)
	if _, err := l.Append(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := visited(l); len(got) != 3 || got[refs[0].ID] != "next" || got[refs[2].ID] != "name 2" {
		t.Fatalf("last of each after the limit: %v", got)
	}
}
