package notify

import (
	"context"
	"fmt"

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
	key, err := sealed.RandomKey[*eventsv1.VerificationKeyGenerated]{
		Log: s.log, Ref: keyRef, Keyring: ring, Logger: s.logger, Size: verification.KeySize, ReplaceClear: true,
		Event: func(k *eventsv1.SealedSecret, change eventsv1.SecretChange) *eventsv1.VerificationKeyGenerated {
			return &eventsv1.VerificationKeyGenerated{SealedKey: k, Change: change}
		},
	}.Load(ctx)
	if err != nil {
		return fmt.Errorf("notify: key: %w", err)
	}
	s.key = verification.Key(key)
	return nil
}
