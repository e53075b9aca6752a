package accounts

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Projection names.
const (
	usersProjection = "users"
	auditProjection = "audit"
)

// usersReadModel keeps the users table from the user aggregates' events.
func usersReadModel() projection.Projection {
	return projection.Projection{
		Name:     usersProjection,
		Subjects: []string{subjectPrefix + ".user.*"},
		Apply:    applyUserEvent,
		Reset: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `TRUNCATE users`)
			return err
		},
	}
}

func applyUserEvent(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
	at := rec.OccurredAt()
	seq := int64(rec.Seq)
	id := rec.Aggregate().ID
	var (
		sql  string
		args []any
	)
	switch ev := rec.Event.(type) {
	case *eventsv1.UserRegistered:
		sql = `INSERT INTO users (id, username, email, display_name, password_hash, admin, created_at, updated_at, version)
		       VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)`
		args = []any{id, ev.GetUsername(), ev.GetEmail(), ev.GetDisplayName(), ev.GetPasswordHash(), ev.GetAdmin(), at, seq}
	case *eventsv1.PasswordChanged:
		sql, args = update("password_hash = $4", id, at, seq, ev.GetPasswordHash())
	case *eventsv1.UserLocked:
		sql, args = update("locked = true", id, at, seq)
	case *eventsv1.UserUnlocked:
		sql, args = update("locked = false", id, at, seq)
	case *eventsv1.UserDeactivated:
		sql, args = update("deactivated = true", id, at, seq)
	case *eventsv1.UserReactivated:
		sql, args = update("deactivated = false", id, at, seq)
	case *eventsv1.DisplayNameSet:
		sql, args = update("display_name = $4", id, at, seq, ev.GetDisplayName())
	case *eventsv1.AdminSet:
		sql, args = update("admin = $4", id, at, seq, ev.GetAdmin())
	default:
		return nil
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("users: %s: %w", rec.Type(), err)
	}
	return nil
}

// update builds an UPDATE of one user row; extra arguments start at $4.
func update(set, id string, at any, seq int64, extra ...any) (string, []any) {
	return `UPDATE users SET ` + set + `, updated_at = $2, version = $3 WHERE id = $1`, append([]any{id, at, seq}, extra...)
}

// auditReadModel records every accounts event as an audit entry.
func auditReadModel() projection.Projection {
	return projection.Projection{
		Name:     auditProjection,
		Subjects: []string{subjectPrefix + ".>"},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			userID, summary := describe(rec)
			_, err := tx.Exec(ctx, `
				INSERT INTO audit_log (seq, event_id, event_type, user_id, actor, occurred_at, summary)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				int64(rec.Seq), rec.ID(), rec.Type(), userID, rec.Envelope.GetActor(), rec.OccurredAt(), summary)
			if err != nil {
				return fmt.Errorf("audit: %w", err)
			}
			return nil
		},
		Reset: func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `TRUNCATE audit_log`)
			return err
		},
	}
}

// describe names the user an event concerns and summarises it for people.
// Summaries never include secrets such as password hashes.
func describe(rec eventlog.Record) (userID, summary string) {
	switch ev := rec.Event.(type) {
	case *eventsv1.UsernameReserved:
		return ev.GetUserId(), fmt.Sprintf("username %q reserved", ev.GetUsername())
	case *eventsv1.EmailReserved:
		return ev.GetUserId(), fmt.Sprintf("email %q reserved", ev.GetEmail())
	case *eventsv1.EmailReleased:
		return ev.GetUserId(), fmt.Sprintf("email %q released", ev.GetEmail())
	case *eventsv1.UserRegistered:
		s := fmt.Sprintf("registered as %q", ev.GetUsername())
		if ev.GetAdmin() {
			s += " (administrator)"
		}
		return ev.GetUserId(), s
	case *eventsv1.PasswordChanged:
		reasons := map[eventsv1.PasswordChangeReason]string{
			eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_USER:     "password changed by the user",
			eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_ADMIN:    "password set by an administrator",
			eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_UPGRADE:  "password hash upgraded",
			eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RECOVERY: "password reset through recovery",
		}
		if s, ok := reasons[ev.GetReason()]; ok {
			return ev.GetUserId(), s
		}
		return ev.GetUserId(), "password changed"
	case *eventsv1.UserLocked:
		if ev.GetReason() != "" {
			return ev.GetUserId(), "locked: " + ev.GetReason()
		}
		return ev.GetUserId(), "locked"
	case *eventsv1.UserUnlocked:
		return ev.GetUserId(), "unlocked"
	case *eventsv1.UserDeactivated:
		if ev.GetErase() {
			return ev.GetUserId(), "deactivated (erase requested)"
		}
		return ev.GetUserId(), "deactivated"
	case *eventsv1.UserReactivated:
		return ev.GetUserId(), "reactivated"
	case *eventsv1.DisplayNameSet:
		return ev.GetUserId(), fmt.Sprintf("display name set to %q", ev.GetDisplayName())
	case *eventsv1.AdminSet:
		if ev.GetAdmin() {
			return ev.GetUserId(), "made an administrator"
		}
		return ev.GetUserId(), "administrator rights removed"
	default:
		return rec.Aggregate().ID, rec.Type()
	}
}
