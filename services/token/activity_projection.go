package token

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// A session's last use in the sessions read model (issue 16): the
// session_activity table, one row per session, kept apart from the
// session's row so that it comes out the same whatever order its sources
// are applied in. Live, a session's start comes before its activity; a
// rebuild from a compacted TOKEN stream may meet an activity batch before
// the session's one remaining event (its last), and an activity batch that
// expired (oauth.activity_retention) is not met at all. So:
//
//   - a SessionsActive batch raises each live session's row (GREATEST),
//     whether or not the session's row exists yet; a session known to have
//     ended takes no more activity;
//   - every session event after the start carries the last use its writer
//     knew (SessionSnapshot.last_use: its read model and its unflushed
//     notes); a live session's raises the row too and is remembered as
//     what the session's last event carries (carried_at, carried_ip_at:
//     what the fold compares, activity_fold.go); an end's replaces the row
//     (an ended session's last use is what its end says, whatever batches
//     came before it or expired since);
//   - readers take the newer of the row and the session's own
//     last_active_at (an import's), never before the session started, and
//     the row's address when it has one (lastActiveSQL, lastAddressSQL).
//
// The newest address goes with its time (ip_at); of two noted at the same
// second, the greater string, so that any order gives the same row. An
// erased user's addresses are emptied (eraseSessions), their times with
// them, as a rebuild that cannot open them leaves them.

// activityJoin joins each session (s) to its activity row (a).
const activityJoin = ` LEFT JOIN session_activity a ON a.session_id = s.session_id`

// lastActiveSQL is a session's last use as readers see it.
const lastActiveSQL = `CASE WHEN a.last_active_at IS NULL THEN s.last_active_at ELSE GREATEST(s.last_active_at, a.last_active_at, s.created_at) END`

// lastAddressSQL is a session's newest client address: the newest noted
// with its activity, else the start's.
const lastAddressSQL = `CASE WHEN a.ip_address <> '' THEN a.ip_address ELSE s.ip_address END`

// newerAddress is the SQL condition under which the incoming row's address
// (EXCLUDED) replaces the stored one (a): it has one, and it is newer (or
// as new and greater).
const newerAddress = `EXCLUDED.ip_address <> '' AND (a.ip_at IS NULL OR EXCLUDED.ip_at > a.ip_at OR (EXCLUDED.ip_at = a.ip_at AND EXCLUDED.ip_address > a.ip_address))`

// use is one session's use as an activity source says it: when, and the
// newest address with its time (ip "" and ipAt zero: none).
type use struct {
	at, ipAt time.Time
	ip       string
}

// merge is the newer of two uses, by the rules of the session_activity
// table.
func (u use) merge(o use) use {
	if o.at.After(u.at) {
		u.at = o.at
	}
	if o.ip != "" && (u.ip == "" || o.ipAt.After(u.ipAt) || (o.ipAt.Equal(u.ipAt) && o.ip > u.ip)) {
		u.ip, u.ipAt = o.ip, o.ipAt
	}
	return u
}

// applySessionsActive raises the activity rows of a batch's sessions, in
// one statement; sessions known to have ended are left as their end set
// them.
func applySessionsActive(ctx context.Context, tx pgx.Tx, ev *eventsv1.SessionsActive) error {
	uses := map[string]use{}
	var order []string
	for _, e := range ev.GetEntries() {
		at := time.Unix(e.GetLastActiveUnix(), 0).UTC()
		u := use{at: at}
		if e.GetIpAddress() != "" {
			u.ip, u.ipAt = e.GetIpAddress(), at
		}
		if old, ok := uses[e.GetSessionId()]; ok {
			u = old.merge(u)
		} else {
			order = append(order, e.GetSessionId())
		}
		uses[e.GetSessionId()] = u
	}
	n := len(order)
	ids, ats, ips, ipAts := make([]string, 0, n), make([]time.Time, 0, n), make([]string, 0, n), make([]*time.Time, 0, n)
	for _, id := range order {
		u := uses[id]
		ids, ats, ips, ipAts = append(ids, id), append(ats, u.at), append(ips, u.ip), append(ipAts, timeOrNil(u.ipAt))
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO session_activity AS a (session_id, last_active_at, ip_address, ip_at)
		SELECT v.id, v.at, v.ip, v.ip_at FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[]) AS v(id, at, ip, ip_at)
		WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = v.id AND s.ended_at IS NOT NULL)
		ON CONFLICT (session_id) DO UPDATE SET
			last_active_at = GREATEST(a.last_active_at, EXCLUDED.last_active_at),
			ip_address = CASE WHEN `+newerAddress+` THEN EXCLUDED.ip_address ELSE a.ip_address END,
			ip_at = CASE WHEN `+newerAddress+` THEN EXCLUDED.ip_at ELSE a.ip_at END`,
		ids, ats, ips, ipAts)
	return err
}

// applyLastUses applies the last use each snapshot carries (one snapshot
// per session): a live session's raises its row and is what its last event
// carries; an ended session's replaces the row (none: no row). One
// statement for each of the four cases present, whatever the number of
// sessions.
func applyLastUses(ctx context.Context, tx pgx.Tx, snaps []*eventsv1.SessionSnapshot) error {
	var (
		gone, forgotten []string // no last use: the session ended, or is live
		ended, live     lastUses
	)
	for _, snap := range snaps {
		id, lu := snap.GetSession().GetSessionId(), snap.GetLastUse()
		switch {
		case lu.GetAt() == nil && snap.GetEnded():
			gone = append(gone, id)
		case lu.GetAt() == nil:
			forgotten = append(forgotten, id)
		case snap.GetEnded():
			ended.add(id, lu)
		default:
			live.add(id, lu)
		}
	}
	if len(gone) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM session_activity WHERE session_id = ANY($1)`, gone); err != nil {
			return err
		}
	}
	if len(forgotten) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE session_activity SET carried_at = NULL, carried_ip_at = NULL WHERE session_id = ANY($1)`, forgotten); err != nil {
			return err
		}
	}
	const carried = `
		INSERT INTO session_activity AS a (session_id, last_active_at, ip_address, ip_at, carried_at, carried_ip_at)
		SELECT v.id, v.at, v.ip, v.ip_at, v.at, v.ip_at FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::timestamptz[]) AS v(id, at, ip, ip_at)
		ON CONFLICT (session_id) DO UPDATE SET `
	if len(ended.ids) > 0 {
		if _, err := tx.Exec(ctx, carried+`last_active_at = EXCLUDED.last_active_at, ip_address = EXCLUDED.ip_address, ip_at = EXCLUDED.ip_at,
			carried_at = EXCLUDED.carried_at, carried_ip_at = EXCLUDED.carried_ip_at`,
			ended.ids, ended.at, ended.ip, ended.ipAt); err != nil {
			return err
		}
	}
	if len(live.ids) > 0 {
		if _, err := tx.Exec(ctx, carried+`
			last_active_at = GREATEST(a.last_active_at, EXCLUDED.last_active_at),
			ip_address = CASE WHEN `+newerAddress+` THEN EXCLUDED.ip_address ELSE a.ip_address END,
			ip_at = CASE WHEN `+newerAddress+` THEN EXCLUDED.ip_at ELSE a.ip_at END,
			carried_at = EXCLUDED.carried_at, carried_ip_at = EXCLUDED.carried_ip_at`,
			live.ids, live.at, live.ip, live.ipAt); err != nil {
			return err
		}
	}
	return nil
}

// lastUses are the columns of session_activity rows to write at once.
type lastUses struct {
	ids, ip []string
	at      []time.Time
	ipAt    []*time.Time
}

// add adds a session's last use; an address goes only with its time (an
// erased user's does not open: no address, no time).
func (l *lastUses) add(sessionID string, lu *eventsv1.SessionLastUse) {
	ip, ipAt := lu.GetIpAddress(), (*time.Time)(nil)
	if ip != "" && lu.GetIpAt() != nil {
		ipAt = timeOrNil(lu.GetIpAt().AsTime())
	} else {
		ip = ""
	}
	l.ids, l.at, l.ip, l.ipAt = append(l.ids, sessionID), append(l.at, lu.GetAt().AsTime()), append(l.ip, ip), append(l.ipAt, ipAt)
}

// readLastUse is a session's last use in this replica's read model (zero:
// none noted).
func readLastUse(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sessionID string) (use, error) {
	var row useRow
	err := q.QueryRow(ctx, `SELECT last_active_at, ip_address, ip_at FROM session_activity WHERE session_id = $1`, sessionID).Scan(row.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return use{}, nil
	}
	return row.use(), err
}

// useRow is a session's activity row as read, its columns NULL when the
// session has none (a LEFT JOIN).
type useRow struct {
	at, ipAt *time.Time
	ip       *string
}

// dest are the scan targets of last_active_at, ip_address, ip_at.
func (r *useRow) dest() []any { return []any{&r.at, &r.ip, &r.ipAt} }

// use is the row's use (zero: no row); an address goes only with its time.
func (r useRow) use() use {
	var u use
	if r.at != nil {
		u.at = *r.at
	}
	if r.ip != nil && r.ipAt != nil {
		u.ip, u.ipAt = *r.ip, *r.ipAt
	}
	return u
}

// timeOrNil is t, nil when zero.
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
