package accounts

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/user"
)

// Password hashes are sealed (platform/sealed) in the events and in the
// users read model, each for its place: a user's under
// "accounts.user.<id>/password_hash", a pending registration's under
// "accounts.registration.<id>/password_hash", so a sealed hash moved to
// another user does not open. They are opened only to verify a password.

// userPasswordPlace is where a user's password hash lives.
func userPasswordPlace(userID string) string {
	return eventsv1.AccountsUser.Subject(userID) + "/password_hash"
}

// registrationPasswordPlace is where a pending registration's password hash lives.
func registrationPasswordPlace(registrationID string) string {
	return eventsv1.AccountsRegistration.Subject(registrationID) + "/password_hash"
}

// sealHash seals a PHC string for its place; "" seals to nil (no password).
func (s *Service) sealHash(hash, where string) (*eventsv1.SealedSecret, error) {
	if hash == "" {
		return nil, nil
	}
	sealed, err := s.keyring.Seal([]byte(hash), where)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, "", fmt.Errorf("seal password hash: %w", err))
	}
	return sealed, nil
}

// openHash returns the PHC string of a recorded password hash: sealed, or in
// clear in events written before sealing. A hash that does not open (its key
// is no longer configured) is KindUnavailable, logged with the key's id.
func (s *Service) openHash(ctx context.Context, p user.Password, where string) (string, error) {
	if p.Sealed == nil {
		return p.Clear, nil
	}
	b, err := s.keyring.Open(p.Sealed, where)
	if err != nil {
		s.logger.ErrorContext(ctx, "a password hash does not open", "place", where, "key_id", p.Sealed.GetKeyId(), "err", err)
		return "", errs.Wrap(errs.KindUnavailable, "Passwords cannot be checked right now.", err)
	}
	return string(b), nil
}

// resealBatch is how many users the reseal reads at a time.
const resealBatch = 500

// resealPasswords seals again, under the current key-encryption key, every
// password hash sealed under another key or held in clear by events written
// before sealing: one PasswordChanged (reason RESEALED) per such user,
// decided on the user's latest events with their version expected, so
// replicas doing this together record each hash once and never undo a
// password change. It runs at start, once the users projection has caught
// up, and says when everything is sealed under the current key and the read
// model shows it: from then on the previous keys are needed only for pending
// registrations (30 minutes).
func (s *Service) resealPasswords(ctx context.Context) error {
	seq, err := s.log.LastSeqOf(ctx, s.log.Subjects(userAggregate))
	if err != nil {
		return err
	}
	if err := s.projections.WaitFor(ctx, usersProjection, seq); err != nil {
		return err
	}
	current := s.keyring.CurrentID()
	var (
		after    string
		resealed int
		lastSeq  uint64 // of the last reseal appended
		failed   []string
		lost     []string // ids of keys that sealed hashes which no longer open
	)
	for {
		rows, err := s.pool.Query(ctx, `SELECT id FROM users
			WHERE id > $1 AND (password_hash <> '' OR (password_sealed IS NOT NULL AND password_key_id <> $2))
			ORDER BY id LIMIT $3`, after, current, resealBatch)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			break
		}
		for _, id := range ids {
			after = id
			seq, keyID, err := s.resealPassword(ctx, id)
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case err != nil:
				failed = append(failed, id)
				if keyID != "" && !slices.Contains(lost, keyID) {
					lost = append(lost, keyID)
				}
			case seq > 0:
				resealed++
				lastSeq = max(lastSeq, seq)
			}
		}
	}
	// The read model is what sign-in reads: the rotation is done once it
	// holds every hash sealed again.
	if lastSeq > 0 {
		if err := s.projections.WaitFor(ctx, usersProjection, lastSeq); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		s.logger.ErrorContext(ctx, "password hashes that do not open: these users cannot sign in until their key-encryption key is configured again (secrets.previous_keys)",
			"users", len(failed), "first_user_id", failed[0], "key_ids", lost, "resealed", resealed)
		return nil
	}
	s.logger.InfoContext(ctx, "every password hash is sealed under the current key-encryption key", "key_id", current, "resealed", resealed)
	return nil
}

// resealPassword seals one user's hash again, returning the sequence of the
// event it recorded (0 for none), and for a hash that does not open, the id
// of its key.
func (s *Service) resealPassword(ctx context.Context, userID string) (seq uint64, keyID string, err error) {
	where := userPasswordPlace(userID)
	ref := eventlog.Ref{Type: userAggregate, ID: userID}
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		decided, err := user.ResealPassword(user.Fold(history), func(p user.Password) (*eventsv1.SealedSecret, error) {
			switch {
			case p.Sealed == nil:
				return s.keyring.Seal([]byte(p.Clear), where)
			case s.keyring.Current(p.Sealed):
				return nil, nil
			}
			keyID = p.Sealed.GetKeyId()
			return s.keyring.Reseal(p.Sealed, where)
		})
		if err != nil || len(decided) == 0 {
			return nil, err
		}
		return []eventlog.Write{{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{Aggregate: ref, Actor: "system", Payload: decided[0]}}}, nil
	})
	if err != nil {
		s.logger.WarnContext(ctx, "password hash not sealed again", "user_id", userID, "key_id", keyID, "err", err)
		return 0, keyID, err
	}
	return appended.Last(), "", nil
}

// storedPassword returns what the users read model holds of a user's password.
func (u *userRow) storedPassword() (user.Password, error) {
	if u.passwordSealed == nil {
		return user.Password{Clear: u.passwordHash}, nil
	}
	sealed := &eventsv1.SealedSecret{}
	if err := proto.Unmarshal(u.passwordSealed, sealed); err != nil {
		return user.Password{}, errs.Wrap(errs.KindInternal, "", fmt.Errorf("user %s: stored password: %w", u.id, err))
	}
	return user.Password{Sealed: sealed}, nil
}

// hasPassword reports whether the user has a password.
func (u *userRow) hasPassword() bool { return u.passwordSealed != nil || u.passwordHash != "" }

// passwordHashOf opens a user's password hash from the read model ("" for none).
func (s *Service) passwordHashOf(ctx context.Context, u *userRow) (string, error) {
	p, err := u.storedPassword()
	if err != nil {
		return "", err
	}
	return s.openHash(ctx, p, userPasswordPlace(u.id))
}

// sealedColumns returns the users columns recording an event's password
// hash: in clear (events before sealing) or sealed, with its key's id.
func sealedColumns(clear string, sealed *eventsv1.SealedSecret) (hash string, blob []byte, keyID string, err error) {
	if sealed == nil {
		return clear, nil, "", nil
	}
	blob, err = proto.Marshal(sealed)
	return "", blob, sealed.GetKeyId(), err
}
