package notify

import (
	"context"
	"crypto/rand"
	"fmt"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/sealed"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/notify/internal/verification"
)

// keyRef is the aggregate holding the service's key.
var keyRef = eventlog.Ref{Type: eventsv1.NotifyKeys.Type, ID: "current"}

// loadKey reads the key codes and tickets are derived from, sealed with the
// keyring, generating it on first start (see sealed.KeysAggregate). Every
// replica must derive the same codes, and a restart the codes it already
// issued, so the key lives in the stream. A key an earlier version kept in
// clear is replaced by a new one: whoever read it could derive every code and
// recovery link to come. Codes issued before that still check against the
// hashes their events recorded; links already emailed stop working.
func (s *Service) loadKey(ctx context.Context, ring *sealed.Keyring) error {
	generate := func() (sealed.Secrets, error) {
		key := make([]byte, verification.KeySize)
		rand.Read(key) // never fails (Go 1.24+)
		return sealed.Secrets{"key": key}, nil
	}
	secrets, err := sealed.KeysAggregate{
		Log: s.log, Ref: keyRef, Keyring: ring, Logger: s.logger,
		Generate: generate,
		Event: func(sealedKeys map[string]*eventsv1.SealedSecret, change eventsv1.SecretChange) proto.Message {
			return &eventsv1.VerificationKeyGenerated{SealedKey: sealedKeys["key"], Change: change}
		},
		Read: func(m proto.Message) (sealed.Record, bool) {
			ev, ok := m.(*eventsv1.VerificationKeyGenerated)
			switch {
			case !ok:
				return sealed.Record{}, false
			case ev.GetSealedKey() == nil:
				return sealed.Record{Clear: sealed.Secrets{"key": ev.GetKey()}}, true
			}
			return sealed.Record{Sealed: map[string]*eventsv1.SealedSecret{"key": ev.GetSealedKey()}}, true
		},
		Replace: func(sealed.Secrets) (sealed.Secrets, error) { return generate() },
	}.Load(ctx)
	if err != nil {
		return fmt.Errorf("notify: key: %w", err)
	}
	if len(secrets["key"]) < verification.KeySize {
		return fmt.Errorf("notify: stored key is %d bytes, want %d", len(secrets["key"]), verification.KeySize)
	}
	s.key = verification.Key(secrets["key"])
	return nil
}
