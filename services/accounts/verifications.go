package accounts

// Proof of email addresses. The notify service owns verifications: it emails
// a code and, when the right one is typed, appends VerificationConfirmed to
// its stream (NOTIFY_PENDING, notify.verification.<id>, where a
// verification's events expire an hour after it can last be used, and
// which notify's key does not share). The accounts service follows
// that stream read-only and projects every confirmation into
// email_verifications; an address becomes one of a user's only against such
// a row, never on a caller's word:
//
//   - CompleteRegistration: a registration verification of the
//     registration's address, confirmed after the registration started;
//   - Register and AddEmail with a verification id: a confirmation of that
//     address for that purpose (and, for AddEmail, that user) in the last
//     verificationMaxAge;
//   - Register and AddEmail with skip_verification: an administrator vouches
//     for the address (the CLI); the event records no verification;
//   - SetPassword with a recovery verification: a recovery confirmation for
//     that user in the last verificationMaxAge (the change is then recorded
//     as a recovery, not as an administrator's).
//
// A caller usually asks right after notify confirmed the code, before the
// projection has seen it. So the check first reads the version of the
// verification aggregate from the stream itself (one direct get), waits until
// the projection has applied up to it, and only then reads the row: a
// confirmation that exists is never missed, and none is taken on trust.
//
// A verification whose events expired from the stream proves nothing: the
// marker of its expiry removes its row, so the read model holds what a
// rebuild from the stream would. Its events outlive the verification by an
// hour (verificationRetention), longer than any check accepts.

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/user"
)

const (
	verificationsProjection = "email_verifications"
	// verificationMaxAge is how long a confirmation proves an address for
	// Register and AddEmail.
	verificationMaxAge = 30 * time.Minute
	// verificationRetention is how long the projection keeps a confirmation:
	// longer than any check accepts (verificationMaxAge, registrationTTL), so
	// the table stays small and holds no old addresses.
	verificationRetention = time.Hour
	// verificationsVersion is the read model's version: 2 since
	// verifications moved from NOTIFY to NOTIFY_PENDING, so an upgrade
	// builds it again from the new stream (confirmations recorded in
	// NOTIFY are no longer read).
	verificationsVersion = 2
	// verificationWait bounds the wait for the projection to catch up.
	verificationWait = 10 * time.Second
)

// purposeNames are the purposes as stored in email_verifications.
var purposeNames = map[eventsv1.VerificationPurpose]string{
	eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION: "registration",
	eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL:    "add_email",
	eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY:     "recovery",
}

// verificationsReadModel projects the notify service's confirmations. It
// keeps no address: each confirmation's address is opened (it is sealed
// under the user's or the verification's personal key) and stored as its
// claim key (user.EmailKey, a keyed hash), which is all a check compares.
func (s *Service) verificationsReadModel(notify *eventlog.Log) projection.Projection {
	return projection.Projection{
		Name:     verificationsProjection,
		Source:   notify,
		Subjects: []string{eventsv1.NotifyVerification.Subjects()},
		Apply:    s.unsealing(s.applyConfirmation),
		Tables:   []string{"email_verifications"},
		Version:  verificationsVersion,
	}
}

// applyConfirmation records a confirmation; the verification's other events
// prove nothing. A confirmation whose address no longer opens (erased,
// expired) is recorded with no key, and proves nothing. The marker of a
// verification's expiry forgets its confirmation.
func (s *Service) applyConfirmation(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
	if rec.Expired {
		if _, err := tx.Exec(ctx, `DELETE FROM email_verifications WHERE verification_id = $1 AND seq < $2`,
			rec.Aggregate().ID, int64(rec.Seq)); err != nil {
			return fmt.Errorf("email verifications: forget expired: %w", err)
		}
		return nil
	}
	var ev *eventsv1.VerificationConfirmed
	switch e := rec.Event.(type) {
	case *eventsv1.VerificationConfirmed:
		ev = e
	case *eventsv1.VerificationStarted, *eventsv1.VerificationCodeReissued, *eventsv1.VerificationAttemptFailed,
		*eventsv1.EmailDelivered, *eventsv1.EmailDeliveryFailed:
		return nil
	default:
		return eventlog.Unhandled(rec)
	}
	purpose, known := purposeNames[ev.GetPurpose()]
	if !known {
		return nil
	}
	// A confirmation already forgotten (a newer one is more than the
	// retention younger) is not recorded again when delivered again.
	emailKey := ""
	if ev.GetEmail() != "" {
		emailKey = user.EmailKey(s.claimKey, ev.GetEmail())
	}
	_, err := tx.Exec(ctx, `INSERT INTO email_verifications (verification_id, email_key, purpose, user_id, confirmed_at, seq)
		SELECT $1, $2, $3, $4, $5, $6
		WHERE NOT EXISTS (SELECT 1 FROM email_verifications WHERE confirmed_at > $5::timestamptz + $7::interval)
		ON CONFLICT (verification_id) DO NOTHING`,
		rec.Aggregate().ID, emailKey, purpose, ev.GetUserId(), rec.OccurredAt(), int64(rec.Seq), verificationRetention)
	if err != nil {
		return fmt.Errorf("email verifications: %w", err)
	}
	// Keep only what can still prove something. Measured against the
	// event's own time, so a rebuild ends with the same rows.
	if _, err := tx.Exec(ctx, `DELETE FROM email_verifications WHERE confirmed_at < $1`,
		rec.OccurredAt().Add(-verificationRetention)); err != nil {
		return fmt.Errorf("email verifications: forget old ones: %w", err)
	}
	return nil
}

// proof is what an address must have been proved for.
type proof struct {
	verificationID string
	// email, when set, must be the address confirmed (normalized).
	email   string
	purpose eventsv1.VerificationPurpose
	// userID, when set, must be the account the verification was for.
	userID string
	// after is the earliest confirmation accepted.
	after time.Time
}

// errNotProved is the answer when no matching confirmation exists.
func errNotProved() error {
	e := errs.FailedPrecondition("The email address has not been verified; ask for a new code.")
	e.Field = "verification_id"
	return e
}

// checkProof reports whether the notify service confirmed p.
func (s *Service) checkProof(ctx context.Context, p proof) error {
	ref := eventlog.Ref{Type: eventsv1.NotifyVerification.Type, ID: p.verificationID}
	if p.verificationID == "" || !user.ValidVerificationID(p.verificationID) {
		return errs.InvalidField("verification_id", "verification_id must be the id of a verification from the notify service")
	}
	version, err := s.notify.Version(ctx, ref)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return errNotProved() // no verification was ever started
	}
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, "Email verifications cannot be checked right now; try again.", err)
	}
	if version == 0 {
		return errNotProved()
	}
	wait, cancel := context.WithTimeout(ctx, verificationWait)
	defer cancel()
	if err := s.projections.WaitFor(wait, verificationsProjection, version); err != nil {
		return errs.Wrap(errs.KindUnavailable, "Email verifications cannot be checked right now; try again.", err)
	}
	var (
		emailKey, purpose, userID string
		confirmedAt               time.Time
	)
	err = s.pool.QueryRow(ctx, `SELECT email_key, purpose, user_id, confirmed_at FROM email_verifications WHERE verification_id = $1`,
		p.verificationID).Scan(&emailKey, &purpose, &userID, &confirmedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return errNotProved()
	}
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, "Email verifications cannot be checked right now; try again.", err)
	}
	switch {
	case emailKey == "", p.email != "" && !hmac.Equal([]byte(emailKey), []byte(user.EmailKey(s.claimKey, p.email))), purpose != purposeNames[p.purpose],
		p.userID != "" && userID != p.userID,
		confirmedAt.Before(p.after):
		return errNotProved()
	}
	return nil
}
