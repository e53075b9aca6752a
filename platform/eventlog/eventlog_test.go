package eventlog_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

func openLog(t *testing.T) (*eventlog.Log, jetstream.JetStream) {
	t.Helper()
	js := testkit.NATS(t)
	l, err := eventlog.Open(context.Background(), js, eventlog.StreamConfig{Name: "TEST", Prefix: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return l, js
}

func userRef() eventlog.Ref { return eventlog.Ref{Type: "user", ID: ulid.Make().String()} }

func renamed(ref eventlog.Ref, name string) eventlog.Write {
	return eventlog.Write{Event: eventlog.Event{Aggregate: ref, Actor: "test", Payload: &eventsv1.DisplayNameSet{UserId: ref.ID, DisplayName: name}}}
}

func TestAppendAndLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	l, _ := openLog(t)
	ref := userRef()
	w := renamed(ref, "Alice")
	w.Expect = eventlog.ExpectNew()
	got, err := l.Append(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	history, version, err := l.Load(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != 1 || version != got.Last() {
		t.Fatalf("history %d events, version %d, appended at %d", len(history), version, got.Last())
	}
	rec := history[0]
	ev, ok := rec.Event.(*eventsv1.DisplayNameSet)
	if !ok || ev.GetDisplayName() != "Alice" {
		t.Fatalf("event = %#v", rec.Event)
	}
	if rec.Aggregate() != ref || rec.Envelope.GetActor() != "test" || rec.Type() != "gatehouse.events.v1.DisplayNameSet" || rec.ID() == "" {
		t.Fatalf("envelope = %v, type %s", rec.Envelope, rec.Type())
	}
	if v, err := l.Version(ctx, ref); err != nil || v != version {
		t.Fatalf("Version = %d, %v; want %d", v, err, version)
	}
	if v, err := l.Version(ctx, userRef()); err != nil || v != 0 {
		t.Fatalf("Version of unknown aggregate = %d, %v", v, err)
	}
}

// Two writers decide on the same version: exactly one append wins, the other
// gets the typed conflict, and a retry through Execute succeeds.
func TestConcurrentWritersOneWins(t *testing.T) {
	ctx := context.Background()
	l, _ := openLog(t)
	ref := userRef()
	if _, err := l.Append(ctx, renamed(ref, "start")); err != nil {
		t.Fatal(err)
	}
	_, version, err := l.Load(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var wg sync.WaitGroup
	results := make([]error, writers)
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			w := renamed(ref, "writer")
			w.Expect = eventlog.ExpectVersion(version)
			_, results[i] = l.Append(ctx, w)
		})
	}
	close(start)
	wg.Wait()
	wins, conflicts := 0, 0
	for _, err := range results {
		switch {
		case err == nil:
			wins++
		case eventlog.IsConflict(err):
			conflicts++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if wins != 1 || conflicts != writers-1 {
		t.Fatalf("wins=%d conflicts=%d, want 1 and %d", wins, conflicts, writers-1)
	}

	// The losers succeed when they re-decide on the new version.
	var calls int
	_, err = l.Execute(ctx, ref, func(history []eventlog.Record, v uint64) ([]eventlog.Write, error) {
		calls++
		w := renamed(ref, "retried")
		w.Expect = eventlog.ExpectVersion(v)
		return []eventlog.Write{w}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	history, _, _ := l.Load(ctx, ref)
	if len(history) != 3 || calls != 1 {
		t.Fatalf("history has %d events after %d decisions, want 3 and 1", len(history), calls)
	}
}

// Execute under contention: every command lands exactly once, in some order.
func TestExecuteRetriesConflicts(t *testing.T) {
	ctx := context.Background()
	l, _ := openLog(t)
	ref := userRef()
	const commands = 10
	var wg sync.WaitGroup
	for range commands {
		wg.Go(func() {
			_, err := l.Execute(ctx, ref, func(_ []eventlog.Record, v uint64) ([]eventlog.Write, error) {
				return eventlog.Writes(ref, "test", v, &eventsv1.DisplayNameSet{UserId: ref.ID, DisplayName: "x"}), nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	history, _, err := l.Load(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != commands {
		t.Fatalf("stored %d events, want %d", len(history), commands)
	}
}

func TestRetriedAppendWithSameIDStoresOneEvent(t *testing.T) {
	ctx := context.Background()
	l, _ := openLog(t)
	tests := []struct {
		name   string
		expect eventlog.Expect
	}{
		{"no expectation", eventlog.ExpectAny()},
		{"expected version", eventlog.ExpectNew()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := userRef()
			w := renamed(ref, "once")
			w.Event.ID = ulid.Make().String()
			w.Expect = tt.expect
			first, err := l.Append(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			again, err := l.Append(ctx, w)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if !again.Duplicate || again.Last() != first.Last() {
				t.Fatalf("retry = %+v, first = %+v", again, first)
			}
			history, _, _ := l.Load(ctx, ref)
			if len(history) != 1 {
				t.Fatalf("stored %d events, want 1", len(history))
			}
		})
	}
}

// Several writes are one atomic batch: when one expectation fails, nothing is stored.
func TestBatchIsAtomic(t *testing.T) {
	ctx := context.Background()
	l, _ := openLog(t)
	taken := eventlog.Ref{Type: "username", ID: "616c696365"}
	claim := eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{Aggregate: taken, Payload: &eventsv1.UsernameReserved{Username: "alice", UserId: "1"}}}
	if _, err := l.Append(ctx, claim); err != nil {
		t.Fatal(err)
	}

	user := userRef()
	register := eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{Aggregate: user, Payload: &eventsv1.UserRegistered{UserId: user.ID, Username: "alice"}}}
	claimAgain := claim
	claimAgain.Event.ID = ""
	_, err := l.Append(ctx, claimAgain, register)
	if !eventlog.IsConflict(err) {
		t.Fatalf("batch with a taken reservation: err = %v, want conflict", err)
	}
	if v, _ := l.Version(ctx, user); v != 0 {
		t.Fatalf("user aggregate has version %d after a failed batch, want 0", v)
	}

	// A batch whose expectations hold stores every event contiguously.
	free := eventlog.Ref{Type: "username", ID: "626f62"}
	okClaim := eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{Aggregate: free, Payload: &eventsv1.UsernameReserved{Username: "bob", UserId: user.ID}}}
	got, err := l.Append(ctx, okClaim, register)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Seqs) != 2 || got.Seqs[1] != got.Seqs[0]+1 {
		t.Fatalf("seqs = %v", got.Seqs)
	}
	for i, ref := range []eventlog.Ref{free, user} {
		if v, _ := l.Version(ctx, ref); v != got.Seqs[i] {
			t.Fatalf("%v version = %d, want %d", ref, v, got.Seqs[i])
		}
	}
}

func TestLoadLongHistory(t *testing.T) {
	ctx := context.Background()
	l, _ := openLog(t)
	ref := userRef()
	other := userRef()
	const n = 600
	for i := range n {
		if _, err := l.Append(ctx, renamed(ref, "n")); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if _, err := l.Append(ctx, renamed(other, "interleaved")); err != nil {
				t.Fatal(err)
			}
		}
	}
	history, version, err := l.Load(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != n {
		t.Fatalf("loaded %d events, want %d", len(history), n)
	}
	for i := 1; i < len(history); i++ {
		if history[i].Seq <= history[i-1].Seq || history[i].Aggregate() != ref {
			t.Fatalf("history out of order or mixed at %d", i)
		}
	}
	if version != history[n-1].Seq {
		t.Fatalf("version %d, last seq %d", version, history[n-1].Seq)
	}
}

func TestStreamIsImmutable(t *testing.T) {
	ctx := context.Background()
	l, js := openLog(t)
	if _, err := l.Append(ctx, renamed(userRef(), "x")); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, l.Stream())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err == nil {
		t.Fatal("purge succeeded on the event stream")
	}
	if err := s.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("delete succeeded on the event stream")
	}
}

func TestInvalidInput(t *testing.T) {
	ctx := context.Background()
	l, _ := openLog(t)
	tests := []struct {
		name string
		w    eventlog.Write
	}{
		{"subject wildcard in id", eventlog.Write{Event: eventlog.Event{Aggregate: eventlog.Ref{Type: "user", ID: "a.*"}, Payload: &eventsv1.UserUnlocked{}}}},
		{"empty type", eventlog.Write{Event: eventlog.Event{Aggregate: eventlog.Ref{ID: "x"}, Payload: &eventsv1.UserUnlocked{}}}},
		{"no payload", eventlog.Write{Event: eventlog.Event{Aggregate: userRef()}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.Append(ctx, tt.w); err == nil || eventlog.IsConflict(err) {
				t.Fatalf("err = %v, want a validation error", err)
			}
		})
	}
	if _, _, err := l.Load(ctx, eventlog.Ref{Type: "user", ID: ">"}); err == nil {
		t.Fatal("Load accepted a wildcard id")
	}
}

func TestDecodeUnknownEventType(t *testing.T) {
	// Events added by a newer binary decode with a nil Event instead of failing.
	data, err := proto.Marshal(&eventsv1.Envelope{
		Id:      "01J0000000000000000000000",
		Payload: &anypb.Any{TypeUrl: "type.googleapis.com/gatehouse.events.v1.FromTheFuture", Value: []byte{8, 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := eventlog.Decode(7, "test.user.x", data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Event != nil || rec.Type() != "gatehouse.events.v1.FromTheFuture" || rec.Seq != 7 {
		t.Fatalf("record = %+v", rec)
	}
	if _, err := eventlog.Decode(1, "test.user.x", []byte{0xff, 0xff}); err == nil {
		t.Fatal("garbage decoded without error")
	}
}

// Concurrent creators of a write-once aggregate all get the same event.
func TestOnceCreatesOneEvent(t *testing.T) {
	ctx := context.Background()
	l, _ := openLog(t)
	ref := eventlog.Ref{Type: "keys", ID: "current"}
	const n = 6
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rec, err := l.Once(ctx, ref, "test", func() (proto.Message, error) {
				return &eventsv1.DisplayNameSet{DisplayName: ulid.Make().String()}, nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = rec.Event.(*eventsv1.DisplayNameSet).GetDisplayName()
		})
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] || got[i] == "" {
			t.Fatalf("creators disagree: %v", got)
		}
	}
	history, _, _ := l.Load(ctx, ref)
	if len(history) != 1 {
		t.Fatalf("stored %d events, want 1", len(history))
	}
}

// A followed stream is another service's: it is read before and after its
// owner creates it, and never written or reconfigured.
func TestFollowReadsAnotherServicesStream(t *testing.T) {
	ctx := context.Background()
	js := testkit.NATS(t)
	follower, err := eventlog.Follow(js, eventlog.StreamConfig{Name: "OWNED", Prefix: "owned"})
	if err != nil {
		t.Fatal(err)
	}
	ref := userRef()
	if _, err := follower.Version(ctx, ref); err == nil {
		t.Fatal("Version of a stream that does not exist yet succeeded")
	}
	if _, err := js.Stream(ctx, "OWNED"); err == nil {
		t.Fatal("following a stream created it")
	}

	owner, err := eventlog.Open(ctx, js, eventlog.StreamConfig{Name: "OWNED", Prefix: "owned"})
	if err != nil {
		t.Fatal(err)
	}
	w := renamed(ref, "Alice")
	stored, err := owner.Append(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	history, version, err := follower.Load(ctx, ref)
	if err != nil || len(history) != 1 || version != stored.Last() {
		t.Fatalf("follower loaded %d events at version %d (%v), want 1 at %d", len(history), version, err, stored.Last())
	}
	if v, err := follower.Version(ctx, ref); err != nil || v != stored.Last() {
		t.Fatalf("follower version %d (%v), want %d", v, err, stored.Last())
	}
	if _, err := follower.Append(ctx, renamed(ref, "Mallory")); err == nil {
		t.Fatal("appending to a followed stream succeeded")
	}
	if _, version, _ := owner.Load(ctx, ref); version != stored.Last() {
		t.Fatalf("the followed stream changed: version %d, want %d", version, stored.Last())
	}
	for _, bad := range []eventlog.StreamConfig{{Name: "", Prefix: "x"}, {Name: "X", Prefix: "a.b"}} {
		if _, err := eventlog.Follow(js, bad); err == nil {
			t.Errorf("Follow(%+v) accepted a bad configuration", bad)
		}
	}
}

// A stream opened from the event contract refuses an event the contract does
// not list for its aggregate, before anything is stored.
func TestContractRefusesUnlistedEvents(t *testing.T) {
	ctx := context.Background()
	js := testkit.NATS(t)
	l, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Accounts, 1))
	if err != nil {
		t.Fatal(err)
	}
	if l.Stream() != "ACCOUNTS" {
		t.Fatalf("stream %s", l.Stream())
	}
	id := ulid.Make().String()
	tests := []struct {
		name    string
		ref     eventlog.Ref
		payload proto.Message
		ok      bool
	}{
		{"listed", eventlog.Ref{Type: "user", ID: id}, &eventsv1.UserLocked{UserId: id}, true},
		{"another aggregate's event", eventlog.Ref{Type: "browser", ID: id}, &eventsv1.UserLocked{UserId: id}, false},
		{"another stream's event", eventlog.Ref{Type: "user", ID: id}, &eventsv1.SessionEnded{SessionId: id}, false},
		{"unknown aggregate", eventlog.Ref{Type: "gadget", ID: id}, &eventsv1.UserLocked{UserId: id}, false},
	}
	for _, tt := range tests {
		_, err := l.Append(ctx, eventlog.Write{Event: eventlog.Event{Aggregate: tt.ref, Actor: "test", Payload: tt.payload}})
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
	if last, _ := l.LastSeq(ctx); last != 1 {
		t.Fatalf("stream holds %d events, want only the listed one", last)
	}
}

func TestUnhandled(t *testing.T) {
	known := eventlog.Record{Seq: 7, Event: &eventsv1.UserLocked{}, Envelope: &eventsv1.Envelope{}}
	if err := eventlog.Unhandled(known); !errors.Is(err, eventlog.ErrUnhandled) {
		t.Fatalf("a known type: %v", err)
	}
	if err := eventlog.Unhandled(eventlog.Record{Seq: 8, Envelope: &eventsv1.Envelope{}}); err != nil {
		t.Fatalf("a type this binary does not know: %v", err)
	}
}
