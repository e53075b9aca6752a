package sealed_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

var keysRef = eventlog.Ref{Type: "keys", ID: "current"}

// keysOf is a service's keys aggregate as notify has it: one key, "key".
func keysOf(t *testing.T, js jetstream.JetStream, ring *sealed.Keyring, replace bool) sealed.KeysAggregate {
	t.Helper()
	l, err := eventlog.Open(context.Background(), js, eventlog.StreamConfig{Name: "KEYTEST", Prefix: "keytest"})
	if err != nil {
		t.Fatal(err)
	}
	a := sealed.KeysAggregate{
		Log: l, Ref: keysRef, Keyring: ring, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Generate: func() (sealed.Secrets, error) {
			_, secret, err := sealed.GenerateKey()
			return sealed.Secrets{"key": secret}, err
		},
		Event: func(s map[string]*eventsv1.SealedSecret, change eventsv1.SecretChange) proto.Message {
			return &eventsv1.VerificationKeyGenerated{SealedKey: s["key"], Change: change}
		},
		Read: func(m proto.Message) (sealed.Record, bool) {
			ev, ok := m.(*eventsv1.VerificationKeyGenerated)
			if !ok {
				return sealed.Record{}, false
			}
			if ev.GetSealedKey() == nil {
				return sealed.Record{Clear: sealed.Secrets{"key": ev.GetKey()}}, true
			}
			return sealed.Record{Sealed: map[string]*eventsv1.SealedSecret{"key": ev.GetSealedKey()}}, true
		},
	}
	if replace {
		a.Replace = func(sealed.Secrets) (sealed.Secrets, error) { return a.Generate() }
	}
	return a
}

// events returns the key events of the aggregate, oldest first.
func events(t *testing.T, a sealed.KeysAggregate) []*eventsv1.VerificationKeyGenerated {
	t.Helper()
	history, _, err := a.Log.Load(context.Background(), keysRef)
	if err != nil {
		t.Fatal(err)
	}
	var out []*eventsv1.VerificationKeyGenerated
	for _, rec := range history {
		out = append(out, rec.Event.(*eventsv1.VerificationKeyGenerated))
	}
	return out
}

// loadAll loads the keys from n replicas at once and checks they agree.
func loadAll(t *testing.T, n int, a func() sealed.KeysAggregate) []byte {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		keys [][]byte
	)
	for range n {
		agg := a()
		wg.Go(func() {
			got, err := agg.Load(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			keys = append(keys, got["key"])
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("replicas disagree on the keys")
		}
	}
	return keys[0]
}

// Keys are generated once, sealed; after a rotation of the key-encryption key
// they are sealed again once (however many replicas start), stay the same,
// and load once the old key-encryption key is dropped.
func TestKeysAggregateRotation(t *testing.T) {
	js := testkit.NATS(t)
	oldKEK, _ := newKey(t)
	newKEK, _ := newKey(t)
	before, _ := sealed.NewKeyring(oldKEK)
	during, _ := sealed.NewKeyring(newKEK, oldKEK)
	after, _ := sealed.NewKeyring(newKEK)

	key := loadAll(t, 3, func() sealed.KeysAggregate { return keysOf(t, js, before, false) })
	evs := events(t, keysOf(t, js, before, false))
	if len(evs) != 1 || evs[0].GetChange() != eventsv1.SecretChange_SECRET_CHANGE_GENERATED ||
		evs[0].GetSealedKey().GetKeyId() != oldKEK.ID() || len(evs[0].GetKey()) != 0 {
		t.Fatalf("after the first start: %v", evs)
	}
	if again := loadAll(t, 1, func() sealed.KeysAggregate { return keysOf(t, js, before, false) }); !bytes.Equal(again, key) {
		t.Fatal("a restart got other keys")
	}
	if n := len(events(t, keysOf(t, js, before, false))); n != 1 {
		t.Fatalf("a restart recorded the keys again: %d events", n)
	}

	if got := loadAll(t, 3, func() sealed.KeysAggregate { return keysOf(t, js, during, false) }); !bytes.Equal(got, key) {
		t.Fatal("sealing again changed the keys")
	}
	evs = events(t, keysOf(t, js, during, false))
	if len(evs) != 2 || evs[1].GetChange() != eventsv1.SecretChange_SECRET_CHANGE_RESEALED || evs[1].GetSealedKey().GetKeyId() != newKEK.ID() {
		t.Fatalf("after the rotation: %d events, last %v", len(evs), evs[len(evs)-1])
	}

	if got := loadAll(t, 1, func() sealed.KeysAggregate { return keysOf(t, js, after, false) }); !bytes.Equal(got, key) {
		t.Fatal("without the old key-encryption key the keys changed")
	}
	if n := len(events(t, keysOf(t, js, after, false))); n != 2 {
		t.Fatalf("dropping the old key recorded the keys again: %d events", n)
	}

	// A process given only some other key cannot start: it says which key it needs.
	stranger, _ := sealed.NewKeyring(func() *sealed.Key { k, _ := newKey(t); return k }())
	_, err := keysOf(t, js, stranger, false).Load(context.Background())
	if uk, ok := errors.AsType[*sealed.UnknownKeyError](err); !ok || uk.ID != newKEK.ID() {
		t.Fatalf("Load with an unknown key: %v", err)
	}
}

// Keys an earlier version kept in clear are sealed (kept) or replaced by new
// keys, as the service chooses; either way once.
func TestKeysAggregateFromClear(t *testing.T) {
	for _, replace := range []bool{false, true} {
		name := map[bool]string{false: "kept", true: "replaced"}[replace]
		t.Run(name, func(t *testing.T) {
			js := testkit.NATS(t)
			ring := sealed.NewRandomKeyring()
			a := keysOf(t, js, ring, replace)
			clear := bytes.Repeat([]byte("k"), 32)
			if _, err := a.Log.Append(context.Background(), eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
				Aggregate: keysRef, Actor: "system", Payload: &eventsv1.VerificationKeyGenerated{Key: clear},
			}}); err != nil {
				t.Fatal(err)
			}
			got := loadAll(t, 3, func() sealed.KeysAggregate { return keysOf(t, js, ring, replace) })
			evs := events(t, a)
			if len(evs) != 2 || len(evs[1].GetKey()) != 0 || evs[1].GetSealedKey().GetKeyId() != ring.CurrentID() {
				t.Fatalf("events: %v", evs)
			}
			wantChange := eventsv1.SecretChange_SECRET_CHANGE_RESEALED
			if replace {
				wantChange = eventsv1.SecretChange_SECRET_CHANGE_ROTATED
			}
			if evs[1].GetChange() != wantChange {
				t.Fatalf("change = %v, want %v", evs[1].GetChange(), wantChange)
			}
			if bytes.Equal(got, clear) == replace {
				t.Fatalf("replace %v: got the clear key back: %v", replace, bytes.Equal(got, clear))
			}
			if again := loadAll(t, 1, func() sealed.KeysAggregate { return keysOf(t, js, ring, replace) }); !bytes.Equal(again, got) {
				t.Fatal("a restart got other keys")
			}
		})
	}
}
