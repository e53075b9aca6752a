package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/session"
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
		// 2: each session's last use in session_activity, whatever the
		// order of its sources (activity_projection.go); rebuilt on upgrade.
		Version: 2,
	}
}

// sessionsTables are the tables of the sessions read model; the
// introspection index reads them in one snapshot with the checkpoint.
var sessionsTables = []string{"tokens", "sessions", "session_activity"}

// applySessionEvent applies one event. Applying an event again changes
// nothing: rows are inserted once, and a session row and its tokens change
// only for an event later than the last one applied to it (its version).
func applySessionEvent(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
	at, seq := rec.OccurredAt(), int64(rec.Seq)
	if snap := eventsv1.SnapshotOf(rec.Event); snap != nil {
		if err := applySnapshot(ctx, tx, snap, seq); err != nil {
			return fmt.Errorf("sessions: %s: %w", rec.Type(), err)
		}
		return nil
	}
	var err error
	switch ev := rec.Event.(type) {
	case *eventsv1.SessionStarted:
		var tag pgconn.CommandTag
		tag, err = tx.Exec(ctx, `
			INSERT INTO sessions (session_id, kind, client_id, user_id, username, scope, device_id, created_at, device_display_name, ip_address, user_agent, version,
			                      browser_session_id, owner_user_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (session_id) DO NOTHING`,
			ev.GetSessionId(), ev.GetKind(), ev.GetClientId(), ev.GetUserId(), ev.GetUsername(), ev.GetScope(), ev.GetDeviceId(), at, ev.GetDeviceDisplayName(),
			ev.GetIpAddress(), ev.GetUserAgent(), seq, ev.GetBrowserSessionId(), ev.GetOwnerUserId())
		if err == nil && tag.RowsAffected() == 1 { // once: a start delivered again does not bring back rotated-out tokens
			err = insertTokens(ctx, tx, ev.GetTokens(), at)
		}
	case *eventsv1.SessionImported:
		err = applySessionImported(ctx, tx, ev, seq)
	case *eventsv1.TokensIssued:
		err = rotateTokens(ctx, tx, ev, at, seq)
	case *eventsv1.SessionSnapshotted:
		// Without a state there is nothing to apply (applySnapshot above).
	case *eventsv1.SessionRenamed:
		_, err = tx.Exec(ctx, `UPDATE sessions SET device_display_name = $2, version = $3 WHERE session_id = $1 AND version < $3`,
			ev.GetSessionId(), ev.GetDeviceDisplayName(), seq)
	case *eventsv1.SessionsActive:
		err = applySessionsActive(ctx, tx, ev) // activity_projection.go
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

// applySnapshot makes a session's rows what its snapshot says, unless an
// event as late was applied to it already (its version): the session row,
// created when the rebuild finds only its last event, and its tokens
// exactly the snapshot's — those rotated out deleted, the remembered
// rotated-out refresh tokens kept revoked, every one revoked once it ended.
// The last use it carries goes to the session's activity row
// (activity_projection.go).
func applySnapshot(ctx context.Context, tx pgx.Tx, snap *eventsv1.SessionSnapshot, seq int64) error {
	st := snap.GetSession()
	var version int64 = -1
	err := tx.QueryRow(ctx, `SELECT version FROM sessions WHERE session_id = $1 FOR UPDATE`, st.GetSessionId()).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return err
	case version >= seq:
		return nil
	}
	var ended, lastActive *time.Time
	if snap.GetEnded() {
		t := snap.GetEndedAt().AsTime()
		ended = &t
	}
	if snap.GetLastActiveAt() != nil {
		t := snap.GetLastActiveAt().AsTime()
		lastActive = &t
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO sessions (session_id, kind, client_id, user_id, username, scope, device_id, created_at, device_display_name, ip_address, user_agent, version,
		                      browser_session_id, owner_user_id, ended_at, end_reason, last_active_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		ON CONFLICT (session_id) DO UPDATE SET device_display_name = EXCLUDED.device_display_name, version = EXCLUDED.version,
			ended_at = COALESCE(sessions.ended_at, EXCLUDED.ended_at), end_reason = CASE WHEN sessions.ended_at IS NULL THEN EXCLUDED.end_reason ELSE sessions.end_reason END`,
		st.GetSessionId(), st.GetKind(), st.GetClientId(), st.GetUserId(), st.GetUsername(), st.GetScope(), st.GetDeviceId(), snap.GetCreatedAt().AsTime(),
		snap.GetDeviceDisplayName(), st.GetIpAddress(), st.GetUserAgent(), seq, st.GetBrowserSessionId(), st.GetOwnerUserId(), ended, snap.GetEndReason(), lastActive); err != nil {
		return err
	}
	if err := applyLastUse(ctx, tx, st.GetSessionId(), snap); err != nil {
		return err
	}
	n := len(snap.GetTokens())
	hashes, kinds, issued, expires, revoked := make([]string, 0, n), make([]string, 0, n), make([]time.Time, 0, n), make([]*time.Time, 0, n), make([]bool, 0, n)
	for _, t := range snap.GetTokens() {
		kind := "access_token"
		if t.GetRefresh() {
			kind = "refresh_token"
		}
		var exp *time.Time
		if t.GetExpiresAt() != nil {
			e := t.GetExpiresAt().AsTime()
			exp = &e
		}
		issuedAt := snap.GetCreatedAt().AsTime() // a remembered rotated-out token: its issue is not kept
		if t.GetIssuedAt() != nil {
			issuedAt = t.GetIssuedAt().AsTime()
		}
		hashes, kinds, issued, expires = append(hashes, t.GetHash()), append(kinds, kind), append(issued, issuedAt), append(expires, exp)
		revoked = append(revoked, snap.GetEnded() || t.GetConsumedAt() != nil)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE session_id = $1 AND NOT (token_hash = ANY($2))`, st.GetSessionId(), hashes); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO tokens (token_hash, session_id, kind, issued_at, expires_at, revoked)
		SELECT h, $1, k, i, e, r FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::bool[]) AS t(h, k, i, e, r)
		ON CONFLICT (token_hash) DO UPDATE SET revoked = EXCLUDED.revoked`,
		st.GetSessionId(), hashes, kinds, issued, expires, revoked)
	return err
}

// reuseMemory is how many of a session's rotated-out refresh tokens the
// read model keeps (revoked): the way from a refresh token presented again
// to its session, so that its reuse ends the session (MSC2964). An older
// one is merely invalid. Bounded, so that a session refreshed for years
// holds as many rows as one refreshed once.
const reuseMemory = session.ReuseMemory

// rotateTokens applies one issue of tokens to a live session: the access
// token it revokes is deleted (nobody looks up a rotated-out access token:
// absent is inactive, as revoked was), the refresh token it replaces is
// kept revoked, and of those only the reuseMemory newest; then its new
// tokens are inserted. Rows follow the session's live state, not its
// history (issue 16); the same events give the same rows in any replay.
func rotateTokens(ctx context.Context, tx pgx.Tx, ev *eventsv1.TokensIssued, at time.Time, seq int64) error {
	// Applied once: a session's version is the sequence of its last event
	// applied, so an issue delivered again does not bring back the tokens a
	// later one removed.
	tag, err := tx.Exec(ctx, `UPDATE sessions SET version = $2 WHERE session_id = $1 AND version < $2`, ev.GetSessionId(), seq)
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE token_hash = $1 AND kind = 'access_token'`, ev.GetRevokesAccessHash()); err != nil {
		return err
	}
	if ev.GetReplacesRefreshHash() != "" {
		if _, err := tx.Exec(ctx, `UPDATE tokens SET revoked = true WHERE token_hash = $1`, ev.GetReplacesRefreshHash()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			DELETE FROM tokens WHERE token_hash IN (
				SELECT token_hash FROM tokens WHERE session_id = $1 AND kind = 'refresh_token' AND revoked
				ORDER BY issued_at DESC, token_hash OFFSET $2)`, ev.GetSessionId(), reuseMemory); err != nil {
			return err
		}
	}
	return insertTokens(ctx, tx, ev, at)
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
