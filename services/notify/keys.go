package notify

import (
	"context"
	"crypto/rand"
	"fmt"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/notify/internal/verification"
)

// keyRef is the aggregate holding the service's key.
var keyRef = eventlog.Ref{Type: eventsv1.NotifyKeys.Type, ID: "current"}

// loadKey reads the key codes and tickets are derived from, generating it on
// first start. Replicas starting together race with ExpectNew: one key wins,
// all use it. Every replica must derive the same codes, and a restart must
// derive the codes it already hashed, so the key lives in the stream.
func (s *Service) loadKey(ctx context.Context) error {
	for range 3 {
		history, _, err := s.log.Load(ctx, keyRef)
		if err != nil {
			return fmt.Errorf("notify: load key: %w", err)
		}
		for i := len(history) - 1; i >= 0; i-- {
			if ev, ok := history[i].Event.(*eventsv1.VerificationKeyGenerated); ok {
				if len(ev.GetKey()) < verification.KeySize {
					return fmt.Errorf("notify: stored key is %d bytes, want %d", len(ev.GetKey()), verification.KeySize)
				}
				s.key = verification.Key(ev.GetKey())
				return nil
			}
		}
		key := make([]byte, verification.KeySize)
		rand.Read(key) // never fails (Go 1.24+)
		_, err = s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
			Aggregate: keyRef, Actor: "system", Payload: &eventsv1.VerificationKeyGenerated{Key: key},
		}})
		if err != nil && !eventlog.IsConflict(err) {
			return fmt.Errorf("notify: store key: %w", err)
		}
		if err == nil {
			s.logger.Info("generated the verification key")
		}
	}
	return fmt.Errorf("notify: the verification key could not be loaded")
}
