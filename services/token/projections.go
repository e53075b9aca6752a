package token

import (
	"context"
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
	if eventsv1.SnapshotOf(rec.Event) != nil {
		if err := applySnapshots(ctx, tx, []eventlog.Record{rec}); err != nil {
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
			                      browser_session_id, owner_user_id, usable_until)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (session_id) DO NOTHING`,
			ev.GetSessionId(), ev.GetKind(), ev.GetClientId(), ev.GetUserId(), ev.GetUsername(), ev.GetScope(), ev.GetDeviceId(), at, ev.GetDeviceDisplayName(),
			ev.GetIpAddress(), ev.GetUserAgent(), seq, ev.GetBrowserSessionId(), ev.GetOwnerUserId(), usableUntil(session.UsableUntil(ev)))
		if err == nil && tag.RowsAffected() == 1 { // once: a start delivered again does not bring back rotated-out tokens
			err = insertTokens(ctx, tx, ev.GetTokens(), at)
		}
	case *eventsv1.SessionImported:
		err = applySessionImported(ctx, tx, ev, seq)
	case *eventsv1.TokensIssued:
		err = rotateTokens(ctx, tx, ev, at, seq)
	case *eventsv1.SessionSnapshotted:
		// Without a state there is nothing to apply (applySnapshots above).
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

// applySnapshots makes each session's rows what its snapshot says (recs
// carry their session's state, one record per session), unless an event as
// late was applied to it already (its version): the session row, created
// when the rebuild finds only its last event, and its tokens exactly the
// snapshot's — those rotated out deleted, the remembered rotated-out
// refresh tokens kept revoked, every one revoked once it ended. The last
// use it carries goes to the session's activity row
// (activity_projection.go). The same few statements apply one snapshot or
// a batch's run of them (applySnapshotRun).
func applySnapshots(ctx context.Context, tx pgx.Tx, recs []eventlog.Record) error {
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = eventsv1.SnapshotOf(rec.Event).GetSession().GetSessionId()
	}
	versions := make(map[string]int64, len(recs))
	rows, err := tx.Query(ctx, `SELECT session_id, version FROM sessions WHERE session_id = ANY($1) ORDER BY session_id FOR UPDATE`, ids)
	if err != nil {
		return err
	}
	var (
		id      string
		version int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &version}, func() error { versions[id] = version; return nil }); err != nil {
		return err
	}
	var (
		cols   snapshotColumns
		snaps  = make([]*eventsv1.SessionSnapshot, 0, len(recs))
		tokens tokenColumns
	)
	for _, rec := range recs {
		snap, seq := eventsv1.SnapshotOf(rec.Event), int64(rec.Seq)
		if v, ok := versions[snap.GetSession().GetSessionId()]; ok && v >= seq {
			continue
		}
		cols.add(snap, seq)
		snaps = append(snaps, snap)
		tokens.add(snap)
	}
	if len(snaps) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO sessions (session_id, kind, client_id, user_id, username, scope, device_id, created_at, device_display_name, ip_address, user_agent, version,
		                      browser_session_id, owner_user_id, ended_at, end_reason, last_active_at, usable_until)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::text[], $10::text[],
			$11::text[], $12::bigint[], $13::text[], $14::text[], $15::timestamptz[], $16::text[], $17::timestamptz[], $18::timestamptz[])
		ON CONFLICT (session_id) DO UPDATE SET device_display_name = EXCLUDED.device_display_name, version = EXCLUDED.version,
			ended_at = COALESCE(sessions.ended_at, EXCLUDED.ended_at), end_reason = CASE WHEN sessions.ended_at IS NULL THEN EXCLUDED.end_reason ELSE sessions.end_reason END,
			usable_until = EXCLUDED.usable_until`,
		cols.ids, cols.kinds, cols.clients, cols.users, cols.names, cols.scopes, cols.devices, cols.created, cols.displays, cols.ips, cols.agents, cols.versions,
		cols.browsers, cols.owners, cols.ended, cols.endReasons, cols.lastActive, cols.usable); err != nil {
		return err
	}
	if err := applyLastUses(ctx, tx, snaps); err != nil {
		return err
	}
	// Each session keeps the tokens its snapshot lists: its other rows go.
	if _, err := tx.Exec(ctx, `
		DELETE FROM tokens t WHERE t.session_id = ANY($1)
			AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS k(h, s) WHERE k.h = t.token_hash AND k.s = t.session_id)`,
		cols.ids, tokens.hashes, tokens.sessions); err != nil {
		return err
	}
	if len(tokens.hashes) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO tokens (token_hash, session_id, kind, issued_at, expires_at, revoked)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::bool[])
		ON CONFLICT (token_hash) DO UPDATE SET revoked = EXCLUDED.revoked`,
		tokens.hashes, tokens.sessions, tokens.kinds, tokens.issued, tokens.expires, tokens.revoked)
	return err
}

// snapshotColumns are the sessions rows of snapshots, column by column.
type snapshotColumns struct {
	ids, kinds, clients, users, names, scopes, devices, displays, ips, agents, browsers, owners, endReasons []string
	created                                                                                                 []time.Time
	versions                                                                                                []int64
	ended, lastActive, usable                                                                               []*time.Time
}

// add adds the row of a snapshot applied at seq.
func (c *snapshotColumns) add(snap *eventsv1.SessionSnapshot, seq int64) {
	st := snap.GetSession()
	var ended, lastActive *time.Time
	if snap.GetEnded() {
		t := snap.GetEndedAt().AsTime()
		ended = &t
	}
	if snap.GetLastActiveAt() != nil {
		t := snap.GetLastActiveAt().AsTime()
		lastActive = &t
	}
	c.ids, c.kinds, c.clients, c.users = append(c.ids, st.GetSessionId()), append(c.kinds, st.GetKind()), append(c.clients, st.GetClientId()), append(c.users, st.GetUserId())
	c.names, c.scopes, c.devices, c.created = append(c.names, st.GetUsername()), append(c.scopes, st.GetScope()), append(c.devices, st.GetDeviceId()), append(c.created, snap.GetCreatedAt().AsTime())
	c.displays, c.ips, c.agents, c.versions = append(c.displays, snap.GetDeviceDisplayName()), append(c.ips, st.GetIpAddress()), append(c.agents, st.GetUserAgent()), append(c.versions, seq)
	c.browsers, c.owners, c.ended = append(c.browsers, st.GetBrowserSessionId()), append(c.owners, st.GetOwnerUserId()), append(c.ended, ended)
	c.endReasons, c.lastActive = append(c.endReasons, snap.GetEndReason()), append(c.lastActive, lastActive)
	c.usable = append(c.usable, usableUntil(session.SnapshotUsableUntil(snap)))
}

// usableUntil is the sessions row's usable_until: NULL for a session that
// can go on (expiry.go).
func usableUntil(at time.Time, ok bool) *time.Time {
	if !ok {
		return nil
	}
	return &at
}

// tokenColumns are the tokens rows of snapshots, column by column; hashes
// and sessions are never nil (empty arrays keep no token).
type tokenColumns struct {
	hashes, sessions, kinds []string
	issued                  []time.Time
	expires                 []*time.Time
	revoked                 []bool
}

// add adds the tokens a snapshot keeps.
func (c *tokenColumns) add(snap *eventsv1.SessionSnapshot) {
	if c.hashes == nil {
		c.hashes, c.sessions = []string{}, []string{}
	}
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
		c.hashes, c.sessions, c.kinds = append(c.hashes, t.GetHash()), append(c.sessions, snap.GetSession().GetSessionId()), append(c.kinds, kind)
		c.issued, c.expires, c.revoked = append(c.issued, issuedAt), append(c.expires, exp), append(c.revoked, snap.GetEnded() || t.GetConsumedAt() != nil)
	}
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
