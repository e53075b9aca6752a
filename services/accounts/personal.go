package accounts

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/sealed"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Personal data. Every address, display name, IP address and user agent the
// service's events hold is sealed under a personal key (platform/personal):
// a user's own, created when the user registers, or, for a registration
// waiting for its code, the registration's, which expires with it and is
// destroyed when it completes. Every append goes through append or execute,
// which seal the events' personal fields; every load through load or
// execute, which open them again; projections open what they apply. Erasing
// a user destroys their key (erase.go).
//
// Email claims are keyed by a keyed hash of the address (user.EmailKey)
// under the claim key, generated on first start and kept sealed in the
// stream (accounts.keys.claims).

// claimKeyRef is the aggregate holding the claim key.
var claimKeyRef = eventlog.Ref{Type: eventsv1.AccountsKeys.Type, ID: "claims"}

// loadClaimKey reads the claim key from the stream, sealed with the keyring,
// generating it on first start (see sealed.KeysAggregate).
func (s *Service) loadClaimKey(ctx context.Context) error {
	secrets, err := sealed.KeysAggregate{
		Log: s.log, Ref: claimKeyRef, Keyring: s.keyring, Logger: s.logger,
		Generate: func() (sealed.Secrets, error) {
			key := make([]byte, 32)
			rand.Read(key) // never fails (Go 1.24+)
			return sealed.Secrets{"key": key}, nil
		},
		Event: func(sealedKeys map[string]*eventsv1.SealedSecret, change eventsv1.SecretChange) proto.Message {
			return &eventsv1.ClaimKeyGenerated{SealedKey: sealedKeys["key"], Change: change}
		},
		Read: func(m proto.Message) (sealed.Record, bool) {
			//eventcheck:partial — the claim key's aggregate (accounts.keys.claims) holds ClaimKeyGenerated only
			ev, ok := m.(*eventsv1.ClaimKeyGenerated)
			if !ok || ev.GetSealedKey() == nil {
				return sealed.Record{}, false
			}
			return sealed.Record{Sealed: map[string]*eventsv1.SealedSecret{"key": ev.GetSealedKey()}}, true
		},
	}.Load(ctx)
	if err != nil {
		return fmt.Errorf("accounts: claim key: %w", err)
	}
	if len(secrets["key"]) < 32 {
		return fmt.Errorf("accounts: the claim key is %d bytes, want 32", len(secrets["key"]))
	}
	s.claimKey = secrets["key"]
	return nil
}

// ownerOf is whose key seals the personal fields of an aggregate's events
// that name no user: a pending registration's own; nobody's otherwise (every
// other event with personal data names its user).
func ownerOf(ref eventlog.Ref) personal.Owner {
	if ref.Type == registrationAggregate {
		return personal.Flow(ref.ID)
	}
	return personal.NoOwner
}

// seal seals the personal fields of writes' events, creating the personal
// key of a user registered before personal keys (ensureKeys).
func (s *Service) seal(ctx context.Context, writes []eventlog.Write) ([]eventlog.Write, error) {
	out, err := s.sealOnce(ctx, writes)
	if errs.KindOf(err) != errs.KindFailedPrecondition {
		return out, err
	}
	if err := s.ensureKeys(ctx, writes); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The change could not be saved right now; try again.", err)
	}
	return s.sealOnce(ctx, writes)
}

// sealOnce seals the personal fields of writes' events.
func (s *Service) sealOnce(ctx context.Context, writes []eventlog.Write) ([]eventlog.Write, error) {
	out := make([]eventlog.Write, len(writes))
	for i, w := range writes {
		sealed, err := s.personal.Seal(ctx, w.Event.Payload, s.log.Subject(w.Event.Aggregate), ownerOf(w.Event.Aggregate))
		if err != nil {
			return nil, sealError(err)
		}
		w.Event.Payload = sealed
		out[i] = w
	}
	return out, nil
}

// sealError reports a failure to seal: a user whose key is gone (erased) is
// a refusal, anything else the key store being unavailable.
func sealError(err error) error {
	if errors.Is(err, personal.ErrErased) {
		return errs.Wrap(errs.KindFailedPrecondition, "This account has been erased.", err)
	}
	return errs.Wrap(errs.KindUnavailable, "The change could not be saved right now; try again.", err)
}

// append seals the personal fields of writes and appends them.
func (s *Service) append(ctx context.Context, writes ...eventlog.Write) (eventlog.Appended, error) {
	sealed, err := s.seal(ctx, writes)
	if err != nil {
		return eventlog.Appended{}, err
	}
	return s.log.Append(ctx, sealed...)
}

// load loads an aggregate with its events' personal fields opened.
func (s *Service) load(ctx context.Context, ref eventlog.Ref) ([]eventlog.Record, uint64, error) {
	history, version, err := s.log.Load(ctx, ref)
	if err != nil {
		return nil, 0, err
	}
	if err := s.personal.UnsealHistory(ctx, history); err != nil {
		return nil, 0, err
	}
	return history, version, nil
}

// execute is eventlog.Log.Execute on opened histories, sealing what decide
// writes.
func (s *Service) execute(ctx context.Context, ref eventlog.Ref, decide eventlog.Decide) (eventlog.Appended, error) {
	return s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		if err := s.personal.UnsealHistory(ctx, history); err != nil {
			return nil, err
		}
		writes, err := decide(history, version)
		if err != nil || len(writes) == 0 {
			return writes, err
		}
		return s.seal(ctx, writes)
	})
}
