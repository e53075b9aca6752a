// Package personal keeps personal data erasable: every email address, display
// name, IP address, user agent and password hash an event holds is sealed
// (platform/sealed) under a personal key — one per person, or one per
// anonymous flow such as a registration waiting for its code — and erasing the
// person destroys the key (crypto-shredding). The events stay, so the audit
// trail of what happened stays; what they said about the person no longer
// opens, in any copy of the stream.
//
// Personal keys live in the PERSONALKEYS stream (eventsv1.PersonalKeys), one
// message per key on personalkeys.<owner>: 32 random bytes sealed with the
// deployment's key-encryption key. The stream keeps one message per subject
// and allows deletes: Destroy removes a key with JetStream's secure delete,
// which also overwrites it on disk. A flow's key carries a message TTL
// (FlowTTL), so the data of a flow that never completed becomes unreadable on
// its own.
//
// Which fields are personal is written in the event contract: a string field
// <x> with a SealedSecret sibling named sealed_<x> (password_hash aside, which
// the accounts service seals itself). Seal moves such fields into their
// sealed siblings before an append; Unseal opens them again after a load. A
// field whose key was destroyed opens as empty, with its sealed sibling still
// set: "erased".
package personal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/sealed"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// FlowTTL is how long the key of an anonymous flow lives: longer than any
// flow it seals (a registration waits 30 minutes for its code, a verification
// code lives 5, a recovery link 10), short enough that an abandoned flow's
// address and password hash are gone the same day.
const FlowTTL = 2 * time.Hour

// cacheFor is how long a process keeps a personal key it read in memory, and
// cacheMax how many it keeps. Destroy forgets the key at once in the process
// that destroys it; others forget it within cacheFor (and the token service
// forgets an erased user's key as soon as it learns of the erasure).
const (
	cacheFor  = time.Minute
	cacheMax  = 100_000
	opTimeout = 5 * time.Second
)

// ErrErased is returned for a personal key that does not exist: destroyed by
// an erasure, expired with its flow, or never created.
var ErrErased = errors.New("personal: the personal key is gone (erased or expired)")

// Owner names a personal key: "user.<user id>" or "flow.<id>".
type Owner string

// NoOwner is the owner of data that belongs to nobody's key (a client acting
// for itself): Seal leaves it in clear.
const NoOwner Owner = ""

// User is the owner of a person's key.
func User(userID string) Owner { return Owner("user." + userID) }

// Flow is the owner of an anonymous flow's key (a pending registration, a
// verification of an address that belongs to no account yet); it expires
// after FlowTTL.
func Flow(id string) Owner { return Owner("flow." + id) }

// IsFlow reports whether the owner is an anonymous flow.
func (o Owner) IsFlow() bool { return strings.HasPrefix(string(o), "flow.") }

// valid reports whether the owner names a key: a kind and one subject token.
func (o Owner) valid() bool {
	kind, id, ok := strings.Cut(string(o), ".")
	if !ok || (kind != "user" && kind != "flow") || id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// subject is the key's subject in the stream.
func (o Owner) subject() string { return eventsv1.PersonalKeys.Prefix + "." + string(o) }

// where is the place the key itself is sealed for.
func (o Owner) where() string { return o.subject() + "/key" }

// Store reads, creates and destroys personal keys. It is safe for concurrent use.
type Store struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	keyring *sealed.Keyring
	now     func() time.Time

	mu    sync.Mutex
	cache map[Owner]cached
}

// cached is a key read from the stream, and when.
type cached struct {
	key *sealed.Key
	at  time.Time
}

// Config configures the stream.
type Config struct {
	// Replicas is the stream's replication factor (nats.replicas).
	Replicas int
}

// Open creates or updates the PERSONALKEYS stream and returns the store. Every
// service that seals or reads personal data opens it with the same
// configuration; keyring seals the keys.
func Open(ctx context.Context, js jetstream.JetStream, keyring *sealed.Keyring, cfg Config) (*Store, error) {
	if keyring == nil {
		return nil, errors.New("personal: no keyring to seal personal keys")
	}
	stream, err := eventlog.EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:              eventsv1.PersonalKeys.Name,
		Description:       "Gatehouse personal keys: one per person or anonymous flow, sealed; destroyed on erasure",
		Subjects:          []string{eventsv1.PersonalKeys.Prefix + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          max(cfg.Replicas, 1),
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		AllowMsgTTL:       true,
		AllowDirect:       true,
		Duplicates:        time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("personal: create stream %s: %w", eventsv1.PersonalKeys.Name, err)
	}
	return &Store{js: js, stream: stream, keyring: keyring, now: time.Now, cache: map[Owner]cached{}}, nil
}

// Create returns the owner's key, creating it when it does not exist yet (a
// flow's with a TTL of FlowTTL). Of two creations racing, both get the key
// that was stored first. Only the service that owns the person or flow
// creates its key: the accounts service for users, the service running the
// flow for flows.
func (s *Store) Create(ctx context.Context, owner Owner) (*sealed.Key, error) {
	if !owner.valid() {
		return nil, fmt.Errorf("personal: %q is not an owner", owner)
	}
	if k, ok := s.cached(owner); ok {
		return k, nil
	}
	key, secret, err := sealed.GenerateKey()
	if err != nil {
		return nil, err
	}
	wrapped, err := s.keyring.Seal(secret, owner.where())
	if err != nil {
		return nil, fmt.Errorf("personal: seal the key of %s: %w", owner, err)
	}
	data, err := proto.Marshal(wrapped)
	if err != nil {
		return nil, err
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithExpectStream(eventsv1.PersonalKeys.Name)}
	if owner.IsFlow() {
		opts = append(opts, jetstream.WithMsgTTL(FlowTTL))
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	_, err = s.js.Publish(ctx, owner.subject(), data, opts...)
	switch {
	case err == nil:
		s.remember(owner, key)
		return key, nil
	case isWrongLastSequence(err):
		return s.load(ctx, owner) // another creation won: use its key
	}
	return nil, fmt.Errorf("personal: store the key of %s: %w", owner, err)
}

// Get returns the owner's key, ErrErased when it does not exist.
func (s *Store) Get(ctx context.Context, owner Owner) (*sealed.Key, error) {
	if !owner.valid() {
		return nil, fmt.Errorf("personal: %q is not an owner", owner)
	}
	if k, ok := s.cached(owner); ok {
		return k, nil
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return s.load(ctx, owner)
}

// load reads the owner's key from the stream and remembers it.
func (s *Store) load(ctx context.Context, owner Owner) (*sealed.Key, error) {
	msg, err := s.stream.GetLastMsgForSubject(ctx, owner.subject())
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrErased
	}
	if err != nil {
		return nil, fmt.Errorf("personal: read the key of %s: %w", owner, err)
	}
	key, err := s.unwrap(owner, msg.Data)
	if err != nil {
		return nil, err
	}
	s.remember(owner, key)
	return key, nil
}

// unwrap opens a stored key.
func (s *Store) unwrap(owner Owner, data []byte) (*sealed.Key, error) {
	wrapped := &eventsv1.SealedSecret{}
	if err := proto.Unmarshal(data, wrapped); err != nil {
		return nil, fmt.Errorf("personal: the key of %s: %w", owner, err)
	}
	secret, err := s.keyring.Open(wrapped, owner.where())
	if err != nil {
		return nil, fmt.Errorf("personal: open the key of %s: %w", owner, err)
	}
	return sealed.NewKey(secret)
}

// Destroy erases the owner's key: JetStream's secure delete removes the
// message and overwrites it on disk. Destroying a key that does not exist
// succeeds. Values sealed under it never open again, in any copy of any
// stream; backups of the PERSONALKEYS stream keep it until they expire.
func (s *Store) Destroy(ctx context.Context, owner Owner) error {
	if !owner.valid() {
		return fmt.Errorf("personal: %q is not an owner", owner)
	}
	s.Forget(owner)
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	for {
		msg, err := s.stream.GetLastMsgForSubject(ctx, owner.subject())
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			s.Forget(owner)
			return nil
		}
		if err != nil {
			return fmt.Errorf("personal: destroy the key of %s: %w", owner, err)
		}
		if err := s.stream.SecureDeleteMsg(ctx, msg.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("personal: destroy the key of %s: %w", owner, err)
		}
	}
}

// Forget drops the owner's key from this process's memory (an erasure learnt
// from the event stream).
func (s *Store) Forget(owner Owner) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache, owner)
}

func (s *Store) cached(owner Owner) (*sealed.Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cache[owner]
	if !ok || s.now().Sub(c.at) > cacheFor {
		return nil, false
	}
	return c.key, true
}

func (s *Store) remember(owner Owner, key *sealed.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= cacheMax {
		now := s.now()
		for o, c := range s.cache {
			if now.Sub(c.at) > cacheFor {
				delete(s.cache, o)
			}
		}
		if len(s.cache) >= cacheMax {
			clear(s.cache)
		}
	}
	s.cache[owner] = cached{key: key, at: s.now()}
}

// isWrongLastSequence reports whether err is JetStream refusing a publish
// whose expected last subject sequence is not the subject's (10071, or 10164
// from replicated streams).
func isWrongLastSequence(err error) bool {
	var code jetstream.ErrorCode
	var apiErr *jetstream.APIError
	var jsErr jetstream.JetStreamError
	switch {
	case errors.As(err, &apiErr):
		code = apiErr.ErrorCode
	case errors.As(err, &jsErr) && jsErr.APIError() != nil:
		code = jsErr.APIError().ErrorCode
	}
	return code == jetstream.JSErrCodeStreamWrongLastSequence || code == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
