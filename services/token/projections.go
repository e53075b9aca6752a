package token

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

const sessionsProjection = "sessions"

// sessionsReadModel keeps the sessions and tokens tables, the events'
// personal fields (addresses, user agents) opened: empty once the user was
// erased. The account_sessions reactor empties them in the table when the
// erasure happens (account_changes.go).
func (s *Service) sessionsReadModel() projection.Projection {
	return projection.Projection{
		Name:     sessionsProjection,
		Subjects: []string{eventsv1.TokenSession.Subjects(), eventsv1.TokenActivity.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			if err := s.personal.UnsealRecord(ctx, &rec); err != nil {
				return err
			}
			return applySessionEvent(ctx, tx, rec)
		},
		Tables:     sessionsTables,
		Batch:      importBatch,
		ApplyBatch: s.applySessionsBatch,
	}
}

// sessionsTables are the tables of the sessions read model; the
// introspection index reads them in one snapshot with the checkpoint.
var sessionsTables = []string{"tokens", "sessions"}

// applySessionEvent applies one event. Applying an event again changes
// nothing: rows are inserted once, and a session row changes only for an
// event later than the last one applied to it (its version).
func applySessionEvent(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
	at, seq := rec.OccurredAt(), int64(rec.Seq)
	var err error
	switch ev := rec.Event.(type) {
	case *eventsv1.SessionStarted:
		_, err = tx.Exec(ctx, `
			INSERT INTO sessions (session_id, kind, client_id, user_id, username, scope, device_id, created_at, device_display_name, ip_address, user_agent, version,
			                      browser_session_id, owner_user_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (session_id) DO NOTHING`,
			ev.GetSessionId(), ev.GetKind(), ev.GetClientId(), ev.GetUserId(), ev.GetUsername(), ev.GetScope(), ev.GetDeviceId(), at, ev.GetDeviceDisplayName(),
			ev.GetIpAddress(), ev.GetUserAgent(), seq, ev.GetBrowserSessionId(), ev.GetOwnerUserId())
		if err == nil {
			err = insertTokens(ctx, tx, ev.GetTokens(), at)
		}
	case *eventsv1.SessionImported:
		err = applySessionImported(ctx, tx, ev, seq)
	case *eventsv1.TokensIssued:
		_, err = tx.Exec(ctx, `UPDATE tokens SET revoked = true WHERE token_hash = ANY($1)`,
			[]string{ev.GetReplacesRefreshHash(), ev.GetRevokesAccessHash()})
		if err == nil {
			err = insertTokens(ctx, tx, ev, at)
		}
	case *eventsv1.SessionRenamed:
		_, err = tx.Exec(ctx, `UPDATE sessions SET device_display_name = $2, version = $3 WHERE session_id = $1 AND version < $3`,
			ev.GetSessionId(), ev.GetDeviceDisplayName(), seq)
	case *eventsv1.SessionsActive:
		// One statement for the whole batch. Activity only moves forward
		// (several replicas flush their own batches), never before the session
		// started (times are whole seconds), and is not recorded on ended
		// sessions. An entry without an address keeps the one known.
		n := len(ev.GetEntries())
		ids, ips, ats := make([]string, 0, n), make([]string, 0, n), make([]time.Time, 0, n)
		for _, e := range ev.GetEntries() {
			ids = append(ids, e.GetSessionId())
			ips = append(ips, e.GetIpAddress())
			ats = append(ats, time.Unix(e.GetLastActiveUnix(), 0).UTC())
		}
		_, err = tx.Exec(ctx, `
			UPDATE sessions s
			SET last_active_at = GREATEST(v.at, s.created_at), ip_address = CASE WHEN v.ip <> '' THEN v.ip ELSE s.ip_address END
			FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS v(id, ip, at)
			WHERE s.session_id = v.id AND s.ended_at IS NULL AND v.at > COALESCE(s.last_active_at, '-infinity')`,
			ids, ips, ats)
	case *eventsv1.SessionEnded:
		_, err = tx.Exec(ctx, `UPDATE sessions SET ended_at = $2, end_reason = $3, version = $4 WHERE session_id = $1 AND ended_at IS NULL`,
			ev.GetSessionId(), at, ev.GetReason(), seq)
		if err == nil {
			_, err = tx.Exec(ctx, `UPDATE tokens SET revoked = true WHERE session_id = $1`, ev.GetSessionId())
		}
	default:
		return eventlog.Unhandled(rec)
	}
	if err != nil {
		return fmt.Errorf("sessions: %s: %w", rec.Type(), err)
	}
	return nil
}

func insertTokens(ctx context.Context, tx pgx.Tx, t *eventsv1.TokensIssued, at time.Time) error {
	if t.GetAccessHash() != "" {
		var expires *time.Time // NULL: a compat access token issued without a refresh token never expires
		if t.GetAccessExpiresAt() != nil {
			e := t.GetAccessExpiresAt().AsTime()
			expires = &e
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tokens (token_hash, session_id, kind, issued_at, expires_at) VALUES ($1, $2, 'access_token', $3, $4)
			ON CONFLICT (token_hash) DO NOTHING`,
			t.GetAccessHash(), t.GetSessionId(), at, expires); err != nil {
			return err
		}
	}
	if t.GetRefreshHash() != "" {
		if _, err := tx.Exec(ctx, `INSERT INTO tokens (token_hash, session_id, kind, issued_at) VALUES ($1, $2, 'refresh_token', $3)
			ON CONFLICT (token_hash) DO NOTHING`,
			t.GetRefreshHash(), t.GetSessionId(), at); err != nil {
			return err
		}
	}
	return nil
}
