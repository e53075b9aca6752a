package eventlog_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/natsserver"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// seen records what a tail handled, in order.
type seen struct {
	mu    sync.Mutex
	names []string
	seqs  []uint64
	fail  func(eventlog.Record) error
}

func (s *seen) handle(rec eventlog.Record) error {
	if s.fail != nil {
		if err := s.fail(rec); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = append(s.names, rec.Event.(*eventsv1.DisplayNameSet).GetDisplayName())
	s.seqs = append(s.seqs, rec.Seq)
	return nil
}

func (s *seen) got() ([]string, []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.names), slices.Clone(s.seqs)
}

func rename(t *testing.T, l *eventlog.Log, user, name string) uint64 {
	t.Helper()
	got, err := l.Append(context.Background(), eventlog.Write{Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: "user", ID: user}, Payload: &eventsv1.DisplayNameSet{UserId: user, DisplayName: name},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return got.Last()
}

func runTail(t *testing.T, tail *eventlog.Tail) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tail.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func catchUp(t *testing.T, tail *eventlog.Tail) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seq, err := tail.CatchUp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func TestTailFromNowAndFromASequence(t *testing.T) {
	l, _ := openLog(t)
	rename(t, l, "u1", "a")
	second := rename(t, l, "u1", "b")
	rename(t, l, "u2", "c")

	now, from := &seen{}, &seen{}
	nowTail := l.Tail(eventlog.TailConfig{Name: "now", Handle: now.handle}, slog.New(slog.DiscardHandler))
	fromTail := l.Tail(eventlog.TailConfig{Name: "from", From: second, Subjects: []string{"test.user.u1"}, Handle: from.handle}, slog.New(slog.DiscardHandler))
	runTail(t, nowTail)
	runTail(t, fromTail)
	catchUp(t, nowTail) // "now" is resolved: only what comes next is handled
	rename(t, l, "u2", "d")
	last := rename(t, l, "u1", "e")

	if seq := catchUp(t, nowTail); seq != last || nowTail.Position() != last {
		t.Fatalf("caught up to %d at position %d, want %d", seq, nowTail.Position(), last)
	}
	if names, _ := now.got(); strings.Join(names, "") != "de" {
		t.Fatalf("from now: handled %v, want d e", names)
	}
	catchUp(t, fromTail)
	if names, _ := from.got(); strings.Join(names, "") != "be" {
		t.Fatalf("from seq %d on u1: handled %v, want b e", second, names)
	}
}

// A Handle that fails is offered the same event again; nothing behind it is
// handled meanwhile, and the tail does not claim to be caught up.
func TestTailRetriesAFailingEvent(t *testing.T) {
	l, _ := openLog(t)
	var (
		mu       sync.Mutex
		failures = 3
	)
	s := &seen{fail: func(rec eventlog.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if rec.Event.(*eventsv1.DisplayNameSet).GetDisplayName() == "b" && failures > 0 {
			failures--
			return fmt.Errorf("not now")
		}
		return nil
	}}
	tail := l.Tail(eventlog.TailConfig{Name: "retry", From: 1, Handle: s.handle}, slog.New(slog.DiscardHandler))
	rename(t, l, "u1", "a")
	rename(t, l, "u1", "b")
	last := rename(t, l, "u1", "c")
	runTail(t, tail)
	short, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := tail.CatchUp(short); err == nil {
		t.Fatal("caught up while an event was failing")
	}
	if seq := catchUp(t, tail); seq != last {
		t.Fatalf("caught up to %d", seq)
	}
	if names, seqs := s.got(); strings.Join(names, "") != "abc" || !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Fatalf("handled %v %v, want a b c once each, in order", names, seqs)
	}
}

// The NATS server goes away and comes back: the tail resumes right after the
// last event it handled, in order, without a gap or a repeat.
func TestTailSurvivesAServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: dir, Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	port := srv.ClientURL()[strings.LastIndex(srv.ClientURL(), ":")+1:]
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := eventlog.Open(ctx, js, eventlog.StreamConfig{Name: "TEST", Prefix: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s := &seen{}
	tail := l.Tail(eventlog.TailConfig{Name: "restart", From: 1, Handle: s.handle}, slog.New(slog.DiscardHandler))
	runTail(t, tail)
	for i := range 20 {
		rename(t, l, "u1", fmt.Sprint(i))
	}
	catchUp(t, tail)

	srv.Shutdown()
	var p int
	fmt.Sscan(port, &p)
	srv, err = natsserver.Start(natsserver.Options{StoreDir: dir, Anonymous: true, Port: p})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	// Reconnected, and JetStream has recovered the stream (it answers
	// for it), before writing again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := js.Stream(sctx, "TEST")
		cancel()
		if nc.IsConnected() && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream not back after the restart: connected %v, %v", nc.IsConnected(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var last uint64
	for i := 20; i < 40; i++ {
		last = rename(t, l, "u1", fmt.Sprint(i))
	}
	if seq := catchUp(t, tail); seq != last {
		t.Fatalf("caught up to %d, want %d", seq, last)
	}
	names, seqs := s.got()
	if len(names) != 40 {
		t.Fatalf("handled %d events: %v", len(names), names)
	}
	for i, n := range names {
		if n != fmt.Sprint(i) || seqs[i] != uint64(i+1) {
			t.Fatalf("event %d: %s at seq %d", i, n, seqs[i])
		}
	}
}

// A tail of another service's stream that does not exist yet is caught up
// (there is nothing) and handles the events once the stream exists.
func TestTailWaitsForTheStream(t *testing.T) {
	js := testkit.NATS(t)
	follower, err := eventlog.Follow(js, eventlog.StreamConfig{Name: "LATER", Prefix: "later"})
	if err != nil {
		t.Fatal(err)
	}
	s := &seen{}
	tail := follower.Tail(eventlog.TailConfig{Name: "later", Subjects: []string{"later.user.*"}, Handle: s.handle}, slog.New(slog.DiscardHandler))
	runTail(t, tail)
	if seq := catchUp(t, tail); seq != 0 {
		t.Fatalf("caught up to %d before the stream exists", seq)
	}
	owner, err := eventlog.Open(context.Background(), js, eventlog.StreamConfig{Name: "LATER", Prefix: "later"})
	if err != nil {
		t.Fatal(err)
	}
	last := rename(t, owner, "u1", "x")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tail.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	if names, _ := s.got(); !slices.Equal(names, []string{"x"}) {
		t.Fatalf("handled %v", names)
	}
}

// A message that is not an event cannot be handled by anyone: the tail says
// so and goes on after it.
func TestTailStepsOverAnUndecodableMessage(t *testing.T) {
	js := testkit.NATS(t)
	l, err := eventlog.Open(context.Background(), js, eventlog.StreamConfig{Name: "TEST", Prefix: "test"})
	if err != nil {
		t.Fatal(err)
	}
	rename(t, l, "u1", "a")
	if _, err := js.Publish(context.Background(), "test.user.u1", []byte("\xff not protobuf")); err != nil {
		t.Fatal(err)
	}
	last := rename(t, l, "u1", "b")
	s := &seen{}
	tail := l.Tail(eventlog.TailConfig{Name: "garbage", From: 1, Handle: s.handle}, slog.New(slog.DiscardHandler))
	runTail(t, tail)
	if seq := catchUp(t, tail); seq != last {
		t.Fatalf("caught up to %d", seq)
	}
	if names, seqs := s.got(); strings.Join(names, "") != "ab" || !slices.Equal(seqs, []uint64{1, 3}) {
		t.Fatalf("handled %v at %v", names, seqs)
	}
}
