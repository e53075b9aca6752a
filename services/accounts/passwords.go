package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/user"
)

// Password hashes are sealed in the events and in the users read model under
// a personal key (platform/personal), each for its place: a user's under the
// user's key at "accounts.user.<id>/password_hash", a pending registration's
// under the registration's key at "accounts.registration.<id>/password_hash",
// so a sealed hash moved to another user does not open, and erasing the user
// (or the registration expiring) makes it unreadable for good. They are
// opened only to verify a password. Versions before personal keys sealed
// them under the key-encryption key: those still open, and are sealed again
// under the user's key at start (resealPasswords).

// userPasswordPlace is where a user's password hash lives.
func userPasswordPlace(userID string) string {
	return eventsv1.AccountsUser.Subject(userID) + "/password_hash"
}

// registrationPasswordPlace is where a pending registration's password hash lives.
func registrationPasswordPlace(registrationID string) string {
	return eventsv1.AccountsRegistration.Subject(registrationID) + "/password_hash"
}

// sealHash seals a user's PHC string under the user's personal key; ""
// seals to nil (no password).
func (s *Service) sealHash(ctx context.Context, userID, hash string) (*eventsv1.SealedSecret, error) {
	return s.sealHashFor(ctx, personal.User(userID), userPasswordPlace(userID), hash)
}

// sealHashFor seals a PHC string under owner's personal key for its place.
func (s *Service) sealHashFor(ctx context.Context, owner personal.Owner, where, hash string) (*eventsv1.SealedSecret, error) {
	if hash == "" {
		return nil, nil
	}
	sealed, err := s.personal.SealValue(ctx, owner, []byte(hash), where)
	if err != nil {
		return nil, sealError(fmt.Errorf("seal password hash: %w", err))
	}
	return sealed, nil
}

// openHash returns the PHC string of a recorded password hash: sealed, or in
// clear in events written before sealing; "" when its personal key is gone
// (the user was erased, the registration expired). A hash that does not open
// otherwise (its key-encryption key is no longer configured) is
// KindUnavailable, logged with the key's id.
func (s *Service) openHash(ctx context.Context, p user.Password, where string) (string, error) {
	if p.Sealed == nil {
		return p.Clear, nil
	}
	b, err := s.personal.OpenValue(ctx, p.Sealed, where)
	if errors.Is(err, personal.ErrErased) {
		return "", nil
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "a password hash does not open", "place", where, "key_id", p.Sealed.GetKeyId(), "err", err)
		return "", errs.Wrap(errs.KindUnavailable, "Passwords cannot be checked right now.", err)
	}
	return string(b), nil
}

// resealBatch is how many users the reseal reads at a time.
const resealBatch = 500

// resealPasswords seals again, under its user's personal key, every
// password hash that an earlier version sealed under a key-encryption key or
// held in clear: one PasswordChanged (reason RESEALED) per such user,
// decided on the user's latest events with their version expected, so
// replicas doing this together record each hash once and never undo a
// password change. It runs at start, once the users projection has caught
// up and every user has a personal key (upgrade.go), and says when
// everything is sealed under personal keys and the read model shows it.
// Erased users are skipped: their hashes are gone with their keys.
func (s *Service) resealPasswords(ctx context.Context) error {
	var (
		after    string
		resealed int
		lastSeq  uint64 // of the last reseal appended
		failed   []string
		lost     []string // ids of keys that sealed hashes which no longer open
	)
	for {
		rows, err := s.pool.Query(ctx, `SELECT id FROM users
			WHERE id > $1 AND NOT erased AND (password_hash <> '' OR (password_sealed IS NOT NULL AND NOT password_personal))
			ORDER BY id LIMIT $2`, after, resealBatch)
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
	s.logger.InfoContext(ctx, "every password hash is sealed under its user's personal key", "resealed", resealed)
	return nil
}

// resealPassword seals one user's hash again, returning the sequence of the
// event it recorded (0 for none), and for a hash that does not open, the id
// of its key.
func (s *Service) resealPassword(ctx context.Context, userID string) (seq uint64, keyID string, err error) {
	where := userPasswordPlace(userID)
	ref := eventlog.Ref{Type: userAggregate, ID: userID}
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := user.Fold(history)
		if st.Exists() && !st.Erased {
			if _, err := s.personal.Create(ctx, personal.User(userID)); err != nil {
				return nil, err
			}
		}
		decided, err := user.ResealPassword(st, func(p user.Password) (*eventsv1.SealedSecret, error) {
			plaintext := []byte(p.Clear)
			switch {
			case st.Erased:
				return nil, nil
			case p.Sealed == nil:
			case p.Sealed.GetPersonalKey() != "":
				return nil, nil // sealed under the user's key already
			default:
				keyID = p.Sealed.GetKeyId()
				var err error
				if plaintext, err = s.keyring.Open(p.Sealed, where); err != nil {
					return nil, err
				}
			}
			return s.personal.SealValue(ctx, personal.User(userID), plaintext, where)
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
// hash: in clear (events before sealing) or sealed, with its key's id and
// whether that key is a personal key.
func sealedColumns(clear string, sealed *eventsv1.SealedSecret) (hash string, blob []byte, keyID string, personal bool, err error) {
	if sealed == nil {
		return clear, nil, "", false, nil
	}
	blob, err = proto.Marshal(sealed)
	return "", blob, sealed.GetKeyId(), sealed.GetPersonalKey() != "", err
}
