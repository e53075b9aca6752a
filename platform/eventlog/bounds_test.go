package eventlog_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

func openBounded(t *testing.T, b eventlog.Bounds) (*eventlog.Log, jetstream.JetStream) {
	t.Helper()
	js := testkit.NATS(t)
	l, err := eventlog.Open(context.Background(), js, eventlog.StreamConfig{Name: "PENDING", Prefix: "pending", Bounds: &b})
	if err != nil {
		t.Fatal(err)
	}
	return l, js
}

// A bounded stream expires its events, refuses what does not fit and leaves
// a marker where an aggregate ended; a durable one keeps everything.
func TestBoundedStreamConfig(t *testing.T) {
	ctx := context.Background()
	_, js := openBounded(t, eventlog.Bounds{MaxAge: time.Hour, MaxBytes: 1 << 20, MarkerTTL: 30 * time.Second})
	st, err := js.Stream(ctx, "PENDING")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"max age", cfg.MaxAge, time.Hour},
		{"max bytes", cfg.MaxBytes, int64(1 << 20)},
		{"discard", cfg.Discard, jetstream.DiscardNew},
		{"message TTLs", cfg.AllowMsgTTL, true},
		{"marker TTL", cfg.SubjectDeleteMarkerTTL, 30 * time.Second},
		{"deny delete", cfg.DenyDelete, true},
		{"file storage", cfg.Storage, jetstream.FileStorage},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	durable, _ := openLog(t)
	info, err := durable.JetStream().Stream(ctx, "TEST")
	if err != nil {
		t.Fatal(err)
	}
	if d := info.CachedInfo().Config; d.MaxAge != 0 || d.MaxBytes > 0 || !d.DenyPurge || d.AllowMsgTTL {
		t.Errorf("a durable stream has limits: max age %s, max bytes %d, deny purge %v, TTLs %v", d.MaxAge, d.MaxBytes, d.DenyPurge, d.AllowMsgTTL)
	}
}

// A contract stream that shares its prefix stores only its own aggregates'
// subjects, so the durable and the short-lived streams of a service coexist.
func TestSplitPrefixStreams(t *testing.T) {
	ctx := context.Background()
	js := testkit.NATS(t)
	durable, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Authorize, 1))
	if err != nil {
		t.Fatal(err)
	}
	pending := eventlog.StreamOf(eventsv1.AuthorizePending, 1)
	pending.Bounds = &eventlog.Bounds{MaxAge: time.Hour, MaxBytes: 1 << 20, MarkerTTL: time.Minute}
	flows, err := eventlog.Open(ctx, js, pending)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*eventlog.Log{durable, flows} {
		st, err := js.Stream(ctx, l.Stream())
		if err != nil {
			t.Fatal(err)
		}
		subjects := st.CachedInfo().Config.Subjects
		for _, s := range subjects {
			if strings.HasSuffix(s, ">") {
				t.Errorf("%s stores %v: the whole prefix", l.Stream(), subjects)
			}
		}
	}
	id := "01JABCDEFGHJKMNPQRSTVWXYZ0"
	if _, err := flows.Append(ctx, eventlog.Write{TTL: time.Hour, Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: eventsv1.AuthorizeGrant.Type, ID: id}, Payload: &eventsv1.GrantDenied{GrantId: id},
	}}); err != nil {
		t.Fatalf("append to the short-lived stream: %v", err)
	}
	if _, err := durable.Append(ctx, eventlog.Write{Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: eventsv1.AuthorizeGrant.Type, ID: id}, Payload: &eventsv1.GrantDenied{GrantId: id},
	}}); err == nil {
		t.Error("the durable stream took a grant event")
	}
}

// Every event of an aggregate given the same end expires then; the log
// loads nothing, its version is the marker's, a tail sees the marker as an
// expired record, and a writer holding the old version cannot write.
func TestEventsExpireWithAMarker(t *testing.T) {
	ctx := context.Background()
	l, _ := openBounded(t, eventlog.Bounds{MaxAge: time.Hour, MaxBytes: 1 << 20, MarkerTTL: time.Second})
	var (
		mu      sync.Mutex
		expired []string
	)
	tail := l.Tail(eventlog.TailConfig{Subjects: []string{"pending.user.*"}, From: 1, Handle: func(rec eventlog.Record) error {
		if rec.Expired {
			mu.Lock()
			expired = append(expired, rec.Aggregate().ID)
			mu.Unlock()
			if rec.Event != nil || rec.OccurredAt().Before(time.Now().Add(-time.Minute)) {
				t.Errorf("marker record: event %v, at %s", rec.Event, rec.OccurredAt())
			}
		}
		return nil
	}}, slog.New(slog.DiscardHandler))
	runTail(t, tail)

	ref, kept := userRef(), userRef()
	first := renamed(ref, "a")
	first.TTL, first.Expect = 2*time.Second, eventlog.ExpectNew()
	a1, err := l.Append(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	second := renamed(ref, "b")
	second.TTL, second.Expect = 2*time.Second, eventlog.ExpectVersion(a1.Last())
	a2, err := l.Append(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	long := renamed(kept, "c")
	long.TTL = time.Hour
	if _, err := l.Append(ctx, long); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		history, version, err := l.Load(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if len(history) == 0 {
			if version <= a2.Last() {
				t.Fatalf("expired aggregate has version %d, not its marker's (> %d)", version, a2.Last())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d events after their TTL", len(history))
		}
		time.Sleep(200 * time.Millisecond)
	}
	stale := renamed(ref, "late")
	stale.TTL, stale.Expect = time.Minute, eventlog.ExpectVersion(a2.Last())
	if _, err := l.Append(ctx, stale); !eventlog.IsConflict(err) {
		t.Errorf("a write on the expired aggregate's old version: %v, want a conflict", err)
	}
	if history, _, err := l.Load(ctx, kept); err != nil || len(history) != 1 {
		t.Errorf("the aggregate with a long TTL has %d events (%v)", len(history), err)
	}
	for {
		mu.Lock()
		got := append([]string(nil), expired...)
		mu.Unlock()
		if len(got) == 1 && got[0] == ref.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tail saw markers for %v, want [%s]", got, ref.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A full bounded stream refuses new events and reports its usage.
func TestBoundedStreamRefusesWhenFull(t *testing.T) {
	ctx := context.Background()
	const limit = 64 << 10
	l, _ := openBounded(t, eventlog.Bounds{MaxAge: time.Hour, MaxBytes: limit, MarkerTTL: time.Minute})
	var refused error
	for i := 0; i < 1000 && refused == nil; i++ {
		w := renamed(userRef(), strings.Repeat("x", 1024))
		w.TTL = time.Hour
		_, refused = l.Append(ctx, w)
	}
	if refused == nil {
		t.Fatal("1000 events of 1 KiB fit into 64 KiB")
	}
	var apiErr *jetstream.APIError
	if !errors.As(refused, &apiErr) {
		t.Logf("refusal: %v", refused)
	}
	used, max, err := l.Usage(ctx)
	if err != nil || used > limit || max != limit {
		t.Errorf("usage %d of %d (%v), want at most %d of %d", used, max, err, limit, limit)
	}
}
