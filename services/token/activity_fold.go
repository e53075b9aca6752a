package token

import (
	"context"
	"time"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/session"
)

// Bounded activity (issue 16). An activity batch (SessionsActive,
// activity.go) is appended with a message TTL of Config.ActivityRetention,
// so the batches hold at most the last retention's activity, not every
// flush since the session started. What a rebuild would then lose, the
// session's own subject keeps:
//
//   - the writer of every session event (refresh, rename, end) sets the
//     last use it knows in the event's snapshot (withKnownUse: its read
//     model's activity row and its unflushed notes), so an ended session's
//     last use is in its end;
//   - for a live session that is no longer used, the hourly fold
//     (foldActivity) appends a SessionSnapshotted carrying its newest
//     activity once that is older than half the retention and newer than
//     what the session's last event carries: before the batch that holds
//     it expires. A session in use keeps appearing in recent batches and
//     is not folded; an idle one is folded once.
//
// So a rebuild, which reads the session's last event and the batches of the
// last retention, gives each session the last use the live read model has
// (activity_projection.go). A fold is the expected-sequence append of
// a snapshot: a session changed meanwhile (ended, refreshed, folded by
// another replica) makes it conflict, and it is skipped. A fold seals the
// address under the user's personal key like any other; an erased user's
// is dropped.

// DefaultActivityRetention is how long an activity batch is kept.
const DefaultActivityRetention = 24 * time.Hour

// foldEvery is how often the fold looks for idle sessions to fold.
const foldEvery = time.Hour

// foldPage is how many sessions one query of the fold reads.
const foldPage = 500

// lastUsePlace is where a session event's snapshot seals the last use's
// address (platform/personal's place of SessionSnapshot.last_use).
func lastUsePlace(subject string) string { return subject + "/state/last_use" }

// withKnownUse raises st's last use to what this replica knows of it: the
// activity row of its read model and the note it has not written yet.
func (s *Service) withKnownUse(ctx context.Context, st session.State) (session.State, error) {
	u, err := readLastUse(ctx, s.pool, st.Started.GetSessionId())
	if err != nil {
		return st, err
	}
	return s.withUse(st, u), nil
}

// withUse is withKnownUse with the session's activity row already read (u):
// st's last use raised to it and to the note this replica has not written.
func (s *Service) withUse(st session.State, u use) session.State {
	id := st.Started.GetSessionId()
	if n, ok := s.activity.Last(id); ok {
		noted := use{at: n.At.Truncate(time.Second)} // as the batch would write it
		if n.IP != "" {
			noted.ip, noted.ipAt = n.IP, noted.at
		}
		u = u.merge(noted)
	}
	st.NoteUse(u.at, u.ip, u.ipAt)
	return st
}

// foldActivity appends, for every live session whose newest activity (or
// address) is older than half the retention at now and newer than what its
// last event carries, a SessionSnapshotted carrying it. It returns how many
// it appended.
func (s *Service) foldActivity(ctx context.Context, now time.Time) (int, error) {
	cut := now.Add(-s.cfg.ActivityRetention / 2)
	return s.eachPaged(ctx, foldPage, s.idPages(`
		SELECT a.session_id FROM session_activity a JOIN sessions s ON s.session_id = a.session_id
		WHERE a.session_id > $2 AND s.ended_at IS NULL AND (
			(a.last_active_at <= $1 AND a.last_active_at > COALESCE(a.carried_at, '-infinity'))
			OR (a.ip_at <= $1 AND a.ip_at > COALESCE(a.carried_ip_at, '-infinity')))
		ORDER BY a.session_id LIMIT $3`, cut, foldPage), s.foldSession)
}

// foldSession appends a SessionSnapshotted carrying the session's last use
// as this replica knows it, unless the session ended, its last event
// carries it already, or the session changed meanwhile (a conflict: the
// event that changed it carries its own). It reports whether it appended.
func (s *Service) foldSession(ctx context.Context, id string) (bool, error) {
	ref := sessionRef(id)
	history, version, err := s.log.Load(ctx, ref)
	if err != nil {
		return false, err
	}
	st := session.Fold(history)
	if !st.Exists() || st.Ended {
		return false, nil
	}
	at, ipAt := st.LastUse()
	if st, err = s.withKnownUse(ctx, st); err != nil {
		return false, err
	}
	if newAt, newIPAt := st.LastUse(); !newAt.After(at) && !newIPAt.After(ipAt) {
		return false, nil // the read model is behind the stream: next time
	}
	ev, err := resealSnapshot(ctx, s.personal, s.log.Subject(ref), st, &eventsv1.SessionSnapshotted{SessionId: id, State: st.Snapshot()})
	if err != nil {
		return false, err
	}
	_, err = s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{Aggregate: ref, Actor: "system:token", Payload: ev}})
	if eventlog.IsConflict(err) {
		return false, nil
	}
	return err == nil, err
}
