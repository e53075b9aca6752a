package sealed

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Secrets are named secret byte strings, such as a service's keys
// ("private_jwks", "token_mac_key").
type Secrets map[string][]byte

// Record is what one event of a keys aggregate holds: its secrets sealed, or,
// in events written before sealing, in clear.
type Record struct {
	Sealed map[string]*eventsv1.SealedSecret
	Clear  Secrets
}

// KeysAggregate is the aggregate in which a service keeps the keys it
// generates for itself (token.keys.current, authorize.keys.current,
// notify.keys.current). Every replica must use the same keys, and a restart
// the keys it used before, so they live in the service's stream, sealed. The
// last event that records keys holds the keys in force.
type KeysAggregate struct {
	// Log is the service's event log, Ref the aggregate.
	Log *eventlog.Log
	Ref eventlog.Ref
	// Keyring seals the keys.
	Keyring *Keyring
	// Logger says what was generated, sealed again or replaced.
	Logger *slog.Logger
	// Generate makes new keys (first start).
	Generate func() (Secrets, error)
	// Event builds the event that records sealed keys for a reason.
	Event func(sealed map[string]*eventsv1.SealedSecret, change eventsv1.SecretChange) proto.Message
	// Read returns what an event records, and false for an event that records no keys.
	Read func(proto.Message) (Record, bool)
	// Replace, when set, is called with keys found in clear (written by a
	// version before sealing, so possibly copied by whoever could read the
	// stream) and returns the keys that replace them (recorded as ROTATED).
	// When nil, such keys are kept and only sealed (RESEALED).
	Replace func(Secrets) (Secrets, error)
}

// Load returns the keys in force. On first start it generates and records
// them. When the last record holds them in clear, or sealed under a key that
// is not the keyring's current one, it records them again sealed under the
// current key (replacing keys found in clear when Replace is set), with the
// aggregate's version expected, so replicas starting together record them
// once and all use the same.
func (a KeysAggregate) Load(ctx context.Context) (Secrets, error) {
	var (
		secrets Secrets
		change  eventsv1.SecretChange
		from    []string
	)
	appended, err := a.Log.Execute(ctx, a.Ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		var keys Secrets
		var err error
		change, keys, from, err = a.decide(history)
		if err != nil {
			return nil, err
		}
		secrets = keys
		if change == eventsv1.SecretChange_SECRET_CHANGE_UNSPECIFIED {
			return nil, nil
		}
		sealed := make(map[string]*eventsv1.SealedSecret, len(keys))
		for name, v := range keys {
			if sealed[name], err = a.Keyring.Seal(v, a.where(name)); err != nil {
				return nil, err
			}
		}
		return []eventlog.Write{{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{
			Aggregate: a.Ref, Actor: "system", Payload: a.Event(sealed, change),
		}}}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Log.Subject(a.Ref), err)
	}
	if appended.Last() > 0 {
		a.logChange(change, from)
	}
	return secrets, nil
}

// logChange says what Load recorded; never the keys.
func (a KeysAggregate) logChange(change eventsv1.SecretChange, from []string) {
	attrs := []any{"subject", a.Log.Subject(a.Ref), "key_id", a.Keyring.CurrentID()}
	switch change {
	case eventsv1.SecretChange_SECRET_CHANGE_GENERATED:
		a.Logger.Info("generated keys, sealed under the key-encryption key", attrs...)
	case eventsv1.SecretChange_SECRET_CHANGE_ROTATED:
		a.Logger.Warn("keys kept in clear by an earlier version: replaced by new keys, sealed", attrs...)
	case eventsv1.SecretChange_SECRET_CHANGE_RESEALED:
		if len(from) == 0 {
			a.Logger.Warn("keys kept in clear by an earlier version: sealed now; the old event still holds them in clear", attrs...)
			return
		}
		a.Logger.Info("keys sealed again under the current key-encryption key", append(attrs, "previous_key_ids", from)...)
	}
}

// decide returns the keys in force, why they must be recorded again
// (UNSPECIFIED: they need not be) and, when they are sealed again, the ids of
// the keys that sealed them.
func (a KeysAggregate) decide(history []eventlog.Record) (eventsv1.SecretChange, Secrets, []string, error) {
	var last *Record
	for i := len(history) - 1; i >= 0 && last == nil; i-- {
		if history[i].Event == nil {
			continue
		}
		if r, ok := a.Read(history[i].Event); ok {
			last = &r
		}
	}
	switch {
	case last == nil:
		keys, err := a.Generate()
		if err != nil {
			return 0, nil, nil, err
		}
		return eventsv1.SecretChange_SECRET_CHANGE_GENERATED, keys, nil, nil
	case len(last.Sealed) == 0:
		if a.Replace == nil {
			return eventsv1.SecretChange_SECRET_CHANGE_RESEALED, last.Clear, nil, nil
		}
		keys, err := a.Replace(last.Clear)
		if err != nil {
			return 0, nil, nil, err
		}
		return eventsv1.SecretChange_SECRET_CHANGE_ROTATED, keys, nil, nil
	}
	keys := make(Secrets, len(last.Sealed))
	current := true
	var from []string
	for _, name := range slices.Sorted(maps.Keys(last.Sealed)) {
		s := last.Sealed[name]
		v, err := a.Keyring.Open(s, a.where(name))
		if err != nil {
			return 0, nil, nil, fmt.Errorf("open %s: %w", name, err)
		}
		keys[name] = v
		if !a.Keyring.Current(s) {
			current = false
			from = append(from, s.GetKeyId())
		}
	}
	if current {
		return eventsv1.SecretChange_SECRET_CHANGE_UNSPECIFIED, keys, nil, nil
	}
	return eventsv1.SecretChange_SECRET_CHANGE_RESEALED, keys, slices.Compact(from), nil
}

// where names the place of one secret of the aggregate, for sealing.
func (a KeysAggregate) where(name string) string {
	return a.Log.Subject(a.Ref) + "/" + name
}

// KeyEvent is an event that records one key: sealed, or, as written by a
// version before sealing, in clear.
type KeyEvent interface {
	proto.Message
	GetKey() []byte
	GetSealedKey() *eventsv1.SealedSecret
}

// RandomKey is a keys aggregate holding one random key (a MAC key, a key
// codes are derived from) recorded by events of type E.
type RandomKey[E KeyEvent] struct {
	// Log is the service's event log, Ref the aggregate.
	Log *eventlog.Log
	Ref eventlog.Ref
	// Keyring seals the key.
	Keyring *Keyring
	// Logger says what was generated, sealed again or replaced.
	Logger *slog.Logger
	// Size is the key's length in bytes (a stored key must have at least as many).
	Size int
	// Event builds the event recording the sealed key for a reason.
	Event func(sealed *eventsv1.SealedSecret, change eventsv1.SecretChange) E
	// ReplaceClear says whether a key found in clear is replaced by a new one
	// (cheap for short-lived derivations) or kept and only sealed (when
	// replacing it would invalidate what it signed).
	ReplaceClear bool
}

// Load returns the key in force, generating it on first start (see
// KeysAggregate.Load).
func (k RandomKey[E]) Load(ctx context.Context) ([]byte, error) {
	generate := func() (Secrets, error) {
		key := make([]byte, k.Size)
		rand.Read(key) // never fails (Go 1.24+)
		return Secrets{"key": key}, nil
	}
	agg := KeysAggregate{
		Log: k.Log, Ref: k.Ref, Keyring: k.Keyring, Logger: k.Logger,
		Generate: generate,
		Event: func(sealedKeys map[string]*eventsv1.SealedSecret, change eventsv1.SecretChange) proto.Message {
			return k.Event(sealedKeys["key"], change)
		},
		Read: func(m proto.Message) (Record, bool) {
			ev, ok := m.(E)
			switch {
			case !ok:
				return Record{}, false
			case ev.GetSealedKey() == nil:
				return Record{Clear: Secrets{"key": ev.GetKey()}}, true
			}
			return Record{Sealed: map[string]*eventsv1.SealedSecret{"key": ev.GetSealedKey()}}, true
		},
	}
	if k.ReplaceClear {
		agg.Replace = func(Secrets) (Secrets, error) { return generate() }
	}
	secrets, err := agg.Load(ctx)
	if err != nil {
		return nil, err
	}
	if key := secrets["key"]; len(key) < k.Size {
		return nil, fmt.Errorf("sealed: the key in %s is %d bytes, want %d", k.Log.Subject(k.Ref), len(key), k.Size)
	}
	return secrets["key"], nil
}
