package accounts

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/user"
)

// Upgrades at start. Every step is idempotent and safe with several replicas
// doing it at once (each write expects the version it was decided on):
//
//   - personal keys sealed under a key-encryption key other than the current
//     one are sealed again under it (after a rotation of that key);
//   - password hashes an earlier version sealed under the key-encryption key,
//     or held in clear, are sealed again under their user's personal key,
//     which is created for every user who has none yet and is not erased
//     (passwords.go); other users get theirs the first time the service
//     seals something of theirs (ensureKeys);
//   - email claims of versions before keyed claims (accounts.email.<hex of
//     the address>) that still hold their address are moved to the keyed
//     subject: EmailReserved there and EmailReleased on the old one, as one
//     atomic batch. The old subjects keep their names, and the old events
//     their addresses in clear: the streams deny deletes (see README, "Data
//     retention").

// upgrade runs the upgrades, once the users projection has caught up.
func (s *Service) upgrade(ctx context.Context) error {
	n, err := s.personal.Reseal(ctx)
	if err != nil {
		return err
	}
	s.logger.InfoContext(ctx, "every personal key is sealed under the current key-encryption key", "key_id", s.keyring.CurrentID(), "resealed", n)
	seq, err := s.log.LastSeqOf(ctx, s.log.Subjects(userAggregate))
	if err != nil {
		return err
	}
	if err := s.projections.WaitFor(ctx, usersProjection, seq); err != nil {
		return err
	}
	if err := s.resealPasswords(ctx); err != nil {
		return err
	}
	return s.keyEmailClaims(ctx)
}

// ensureKeys creates the personal key of every user whose personal data the
// writes hold and who has none yet: users registered by a version before
// personal keys. Erased users are left without one (their writes then fail).
func (s *Service) ensureKeys(ctx context.Context, writes []eventlog.Write) error {
	for _, w := range writes {
		for _, owner := range personal.Owners(w.Event.Payload, ownerOf(w.Event.Aggregate)) {
			userID, ok := strings.CutPrefix(string(owner), "user.")
			if !ok {
				continue
			}
			if _, err := s.personal.Get(ctx, owner); !errors.Is(err, personal.ErrErased) {
				continue
			}
			history, _, err := s.log.Load(ctx, eventlog.Ref{Type: userAggregate, ID: userID})
			if err != nil {
				return err
			}
			if st := user.Fold(history); !st.Exists() || st.Erased {
				continue
			}
			if _, err := s.personal.Create(ctx, owner); err != nil {
				return err
			}
		}
	}
	return nil
}

// keyEmailClaims moves the claims of addresses still held on legacy subjects
// to their keyed subjects.
func (s *Service) keyEmailClaims(ctx context.Context) error {
	st, err := eventlog.FindStream(ctx, s.log.JetStream(), s.log.Stream())
	if err != nil {
		return err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.log.Subjects(emailAggregate)))
	if err != nil {
		return err
	}
	moved, failed := 0, 0
	prefix := eventsv1.AccountsEmail.Prefix + "." + eventsv1.AccountsEmail.Type + "."
	for subject := range info.State.Subjects {
		key := strings.TrimPrefix(subject, prefix)
		if !user.IsLegacyEmailKey(key) {
			continue
		}
		ok, err := s.keyEmailClaim(ctx, key)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			failed++
			s.logger.WarnContext(ctx, "an email claim not moved to its keyed subject; tried again at the next start", "subject", subject, "err", err)
		case ok:
			moved++
		}
	}
	if moved > 0 || failed > 0 {
		s.logger.InfoContext(ctx, "email claims of an earlier version moved to keyed subjects", "moved", moved, "failed", failed)
	}
	return nil
}

// keyEmailClaim moves one legacy claim, if it still holds its address.
func (s *Service) keyEmailClaim(ctx context.Context, legacyKey string) (bool, error) {
	raw, err := hex.DecodeString(legacyKey)
	if err != nil {
		return false, fmt.Errorf("not a legacy claim: %w", err)
	}
	email := string(raw)
	legacyRef := eventlog.Ref{Type: emailAggregate, ID: legacyKey}
	keyedRef := eventlog.Ref{Type: emailAggregate, ID: user.EmailKey(s.claimKey, email)}
	moved := false
	_, err = s.executeBatch(ctx, func() ([]eventlog.Write, error) {
		old, _, err := s.log.Load(ctx, legacyRef)
		if err != nil {
			return nil, err
		}
		claim := user.FoldEmailClaim(old)
		if claim.Holder == "" {
			return nil, nil
		}
		keyed, _, err := s.log.Load(ctx, keyedRef)
		if err != nil {
			return nil, err
		}
		now := user.FoldEmailClaim(keyed)
		writes := []eventlog.Write{{
			Expect: eventlog.ExpectVersion(claim.Version),
			Event:  eventlog.Event{Aggregate: legacyRef, Actor: "system", Payload: &eventsv1.EmailReleased{Email: email, UserId: claim.Holder}},
		}}
		switch now.Holder {
		case claim.Holder: // already keyed: release the old one only
		case "":
			writes = append(writes, eventlog.Write{
				Expect: eventlog.ExpectVersion(now.Version),
				Event:  eventlog.Event{Aggregate: keyedRef, Actor: "system", Payload: &eventsv1.EmailReserved{Email: email, UserId: claim.Holder}},
			})
		default:
			return nil, fmt.Errorf("the keyed claim is held by another user (%s)", now.Holder)
		}
		moved = true
		return writes, nil
	})
	return moved, err
}
