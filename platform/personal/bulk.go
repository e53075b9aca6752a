package personal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/sealed"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Bulk work (an import of many people at once): keys created and read many
// per round trip instead of one.

// bulkWindow is how many key publishes CreateAll keeps in flight.
const bulkWindow = 512

// prefetchBatch is how many keys one batched read asks for: a direct-get
// read's most (a connection with eventlog.ConnOptions has room for them).
const prefetchBatch = eventlog.DirectBatch

// CreateAll is Create for many people's keys at once (not flows'): the keys
// that do not exist yet are published together (asynchronous publishes, each
// expecting its subject empty), those that exist are read. It returns every
// owner's key; they are also remembered, like Create's.
func (s *Store) CreateAll(ctx context.Context, owners []Owner) (map[Owner]*sealed.Key, error) {
	out := make(map[Owner]*sealed.Key, len(owners))
	type pending struct {
		owner  Owner
		key    *sealed.Key
		future jetstream.PubAckFuture
	}
	var (
		inFlight []pending
		existing []Owner
	)
	settle := func(p pending) error {
		select {
		case <-p.future.Ok():
			out[p.owner] = p.key
			s.remember(p.owner, p.key)
			return nil
		case err := <-p.future.Err():
			if isWrongLastSequence(err) {
				existing = append(existing, p.owner) // created before: read it
				return nil
			}
			return fmt.Errorf("personal: store the key of %s: %w", p.owner, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, owner := range owners {
		if !owner.valid() || owner.IsFlow() {
			return nil, fmt.Errorf("personal: %q is not a person", owner)
		}
		if _, seen := out[owner]; seen {
			continue
		}
		if k, ok := s.cached(owner); ok {
			out[owner] = k
			continue
		}
		key, secret, err := sealed.GenerateKey()
		if err != nil {
			return nil, err
		}
		wrapped, err := s.keyring.Seal(secret, owner.where())
		if err != nil {
			return nil, fmt.Errorf("personal: seal the key of %s: %w", owner, err)
		}
		msg := nats.NewMsg(owner.subject())
		if msg.Data, err = proto.Marshal(wrapped); err != nil {
			return nil, err
		}
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		msg.Header.Set(jetstream.ExpectedStreamHeader, eventsv1.PersonalKeys.Name)
		if len(inFlight) >= bulkWindow {
			if err := settle(inFlight[0]); err != nil {
				return nil, err
			}
			inFlight = inFlight[1:]
		}
		f, err := s.js.PublishMsgAsync(msg)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			for _, p := range inFlight {
				if err := settle(p); err != nil {
					return nil, err
				}
			}
			inFlight = inFlight[:0]
			f, err = s.js.PublishMsgAsync(msg)
		}
		if err != nil {
			return nil, fmt.Errorf("personal: store the key of %s: %w", owner, err)
		}
		out[owner] = nil // claimed by this call
		inFlight = append(inFlight, pending{owner: owner, key: key, future: f})
	}
	for _, p := range inFlight {
		if err := settle(p); err != nil {
			return nil, err
		}
	}
	if len(existing) > 0 {
		found, err := s.GetAll(ctx, existing)
		if err != nil {
			return nil, err
		}
		for _, o := range existing {
			if found[o] == nil {
				return nil, fmt.Errorf("personal: the key of %s is neither new nor stored", o)
			}
			out[o] = found[o]
		}
	}
	return out, nil
}

// GetAll reads many people's keys with few round trips (batched direct gets)
// and remembers them. Owners without a key (erased, never created) are
// missing from the result.
func (s *Store) GetAll(ctx context.Context, owners []Owner) (map[Owner]*sealed.Key, error) {
	out := make(map[Owner]*sealed.Key, len(owners))
	var missing []string
	bySubject := map[string]Owner{}
	for _, o := range owners {
		if !o.valid() {
			return nil, fmt.Errorf("personal: %q is not an owner", o)
		}
		if _, seen := bySubject[o.subject()]; seen {
			continue
		}
		if k, ok := s.cached(o); ok {
			out[o] = k
			continue
		}
		bySubject[o.subject()] = o
		missing = append(missing, o.subject())
	}
	for len(missing) > 0 {
		chunk := missing[:min(prefetchBatch, len(missing))]
		missing = missing[len(chunk):]
		if err := s.readChunk(ctx, chunk, bySubject, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readChunkFor bounds one batched read of keys: a request JetStream leaves
// unanswered fails instead of waiting for ever.
const readChunkFor = 10 * time.Second

// readChunk reads the newest key message of each subject in chunk into out.
func (s *Store) readChunk(ctx context.Context, chunk []string, bySubject map[string]Owner, out map[Owner]*sealed.Key) error {
	ctx, cancel := context.WithTimeout(ctx, readChunkFor)
	defer cancel()
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, s.js, eventsv1.PersonalKeys.Name, chunk, jetstreamext.GetLastMsgsBatchSize(len(chunk)))
	if err != nil {
		return fmt.Errorf("personal: read keys: %w", err)
	}
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return fmt.Errorf("personal: read keys: %w", err)
		}
		o, ok := bySubject[msg.Subject]
		if !ok {
			continue
		}
		key, err := s.unwrap(o, msg.Data)
		if err != nil {
			return err
		}
		s.remember(o, key)
		out[o] = key
	}
	return nil
}

// PrefetchRecords is Prefetch for the events of a batch of records.
func (s *Store) PrefetchRecords(ctx context.Context, recs []eventlog.Record) error {
	events := make([]proto.Message, 0, len(recs))
	for _, rec := range recs {
		events = append(events, rec.Event)
	}
	return s.Prefetch(ctx, events)
}

// Prefetch reads the keys of the people whose personal data the events
// hold (see Owners) into memory at once, before opening or sealing them one
// by one: what a projection applying a batch of events does first.
func (s *Store) Prefetch(ctx context.Context, events []proto.Message) error {
	var owners []Owner
	seen := map[Owner]bool{}
	for _, ev := range events {
		if ev == nil {
			continue
		}
		for _, o := range sealedOwners(ev) {
			if !seen[o] && !o.IsFlow() {
				seen[o] = true
				owners = append(owners, o)
			}
		}
	}
	if len(owners) == 0 {
		return nil
	}
	_, err := s.GetAll(ctx, owners)
	return err
}

// SealValueWith is SealValue with the owner's key at hand (from CreateAll).
func SealValueWith(key *sealed.Key, owner Owner, plaintext []byte, where string) (*eventsv1.SealedSecret, error) {
	v, err := key.Seal(plaintext, where)
	if err != nil {
		return nil, err
	}
	v.PersonalKey = string(owner)
	return v, nil
}

// sealedOwners returns whose keys an event's sealed personal fields name.
func sealedOwners(event proto.Message) []Owner {
	var out []Owner
	collect := func(_ context.Context, m protoreflect.Message, _, sibling protoreflect.FieldDescriptor, _ string, _ Owner) error {
		if !m.Has(sibling) {
			return nil
		}
		if sv, ok := m.Get(sibling).Message().Interface().(*eventsv1.SealedSecret); ok && sv.GetPersonalKey() != "" {
			out = append(out, Owner(sv.GetPersonalKey()))
		}
		return nil
	}
	(&Store{}).walk(context.Background(), event.ProtoReflect(), "", NoOwner, collect)
	return out
}
