package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/notify/internal/verification"
)

// verificationsProjection keeps the verifications and recovery_tickets tables.
const verificationsProjection = "verifications"

// verificationsReadModel keeps one row per verification (its status, for
// operators) and the index of recovery tickets by hash, from NOTIFY_PENDING,
// while the verifications live: a verification's rows go when the marker of
// its expiry comes, or when an event later than its purge time (its start
// plus life: how long its events are kept) is applied, should the marker
// have expired unread; so a rebuild from what the stream still holds gives
// the same rows.
func verificationsReadModel(pending *eventlog.Log, life time.Duration) projection.Projection {
	return projection.Projection{
		Name:     verificationsProjection,
		Source:   pending,
		Subjects: []string{eventsv1.NotifyVerification.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			return applyVerificationEvent(ctx, tx, rec, life)
		},
		Tables: []string{"verifications", "recovery_tickets"},
	}
}

func applyVerificationEvent(ctx context.Context, tx pgx.Tx, rec eventlog.Record, life time.Duration) error {
	at, seq, id := rec.OccurredAt(), int64(rec.Seq), rec.Aggregate().ID
	if err := forgetVerifications(ctx, tx, `purge_at < $1`, at); err != nil {
		return err
	}
	if rec.Expired {
		return forgetVerifications(ctx, tx, `id = $1 AND version < $2`, id, seq)
	}
	var (
		sql  string
		args []any
	)
	switch ev := rec.Event.(type) {
	case *eventsv1.VerificationStarted:
		if err := indexTicket(ctx, tx, ev.GetTicketHash(), id, 1); err != nil {
			return err
		}
		// No address: the event keeps it sealed, and only the delivery needs it.
		sql = `INSERT INTO verifications (id, purpose, user_id, status, issue, expires_at, created_at, updated_at, version, purge_at)
		       VALUES ($1, $2, $3, 'pending', 1, $4, $5, $5, $6, $7) ON CONFLICT (id) DO NOTHING`
		args = []any{id, purposeName(ev.GetPurpose()), ev.GetUserId(), ev.GetExpiresAt().AsTime(), at, seq, ev.GetIssuedAt().AsTime().Add(life)}
	case *eventsv1.VerificationCodeReissued:
		if err := indexTicket(ctx, tx, ev.GetTicketHash(), id, ev.GetIssue()); err != nil {
			return err
		}
		sql, args = update("issue = $4, expires_at = $5", id, at, seq, int32(ev.GetIssue()), ev.GetExpiresAt().AsTime())
	case *eventsv1.VerificationAttemptFailed:
		sql, args = update("failed_attempts = $4::integer, status = CASE WHEN $4::integer >= $5::integer THEN 'locked' ELSE status END",
			id, at, seq, int32(ev.GetAttempts()), verification.MaxAttempts)
	case *eventsv1.VerificationConfirmed:
		sql, args = update("status = 'confirmed'", id, at, seq)
	case *eventsv1.EmailDelivered:
		sql, args = update("delivered_issue = GREATEST(delivered_issue, $4)", id, at, seq, int32(ev.GetIssue()))
	case *eventsv1.EmailDeliveryFailed:
		sql, args = update("delivery_error = $4", id, at, seq, ev.GetReason())
	default:
		return eventlog.Unhandled(rec)
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("verifications: %s: %w", rec.Type(), err)
	}
	return nil
}

// forgetVerifications deletes the verifications matching where (on the
// verifications table, arguments from $1) and their recovery tickets.
func forgetVerifications(ctx context.Context, tx pgx.Tx, where string, args ...any) error {
	if _, err := tx.Exec(ctx, `DELETE FROM recovery_tickets WHERE verification_id IN (SELECT id FROM verifications WHERE `+where+`)`, args...); err != nil {
		return fmt.Errorf("verifications: forget tickets: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM verifications WHERE `+where, args...); err != nil {
		return fmt.Errorf("verifications: forget: %w", err)
	}
	return nil
}

// indexTicket records a recovery ticket's hash; there is none for code
// verifications and for recoveries of unknown addresses.
func indexTicket(ctx context.Context, tx pgx.Tx, hash, id string, issue uint32) error {
	if hash == "" {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO recovery_tickets (ticket_hash, verification_id, issue) VALUES ($1, $2, $3)
		ON CONFLICT (ticket_hash) DO NOTHING`, hash, id, int32(issue))
	if err != nil {
		return fmt.Errorf("verifications: index ticket: %w", err)
	}
	return nil
}

// update builds an UPDATE of one verification row; extra arguments start at
// $4. The row changes only for an event later than the last one applied to
// it (its version), so an event delivered again changes nothing.
func update(set, id string, at any, seq int64, extra ...any) (string, []any) {
	return `UPDATE verifications SET ` + set + `, updated_at = $2, version = $3 WHERE id = $1 AND version < $3`, append([]any{id, at, seq}, extra...)
}

// purposeName is the stored name of a purpose.
func purposeName(p eventsv1.VerificationPurpose) string {
	switch p {
	case eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION:
		return "registration"
	case eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL:
		return "add_email"
	case eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY:
		return "recovery"
	}
	return "unspecified"
}

// verificationByTicket finds the verification a recovery ticket was issued for.
func (s *Service) verificationByTicket(ctx context.Context, ticket string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT verification_id FROM recovery_tickets WHERE ticket_hash = $1`,
		verification.TicketHash(ticket)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errs.NotFound("This recovery link is not valid")
	}
	if err != nil {
		return "", errs.Wrap(errs.KindUnavailable, "Recovery links cannot be checked right now; try again.", err)
	}
	return id, nil
}
