package token

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/services/token/internal/session"
)

// Sessions nothing can use any more (issue 16). A client's own session
// (client_credentials) and a person's OAuth session given no refresh token
// get no tokens after their first, so once that access token has expired
// nothing of the session can be used again: left live, each would keep a
// subject of the TOKEN stream and rows of every read model that follows it
// for ever, one for every token such a client ever asked for. Every
// expireEvery, each replica ends those whose last token expired more than
// expireGrace ago (SessionEnded, reason session.ExpiredReason), found by the
// read model's usable_until; the end then goes like any other: its
// message expires after Config.EndedSessionRetention, the read models drop
// the session, the homeserver its device. Ending is an expected-sequence
// append decided on the session's own state (session.Expire), so two
// replicas ending the same session append one end, and a session that the
// read model has wrong is left alone.

// Sessions unused for too long. With Config.InactiveSessionExpiry (off by
// default), a person's OAuth or compat session last used longer ago than
// that is ended too (reason session.InactiveReason), and the homeserver
// deletes its device: every inactiveEvery, each replica reads the live
// sessions whose last use in the read model (its activity row, an import's
// last use, else its start) is that old, and ends each whose own state,
// raised to all this replica knows of its use, agrees. A use on another
// replica not yet written (oauth.activity_flush_interval) is not known: a
// session used for the first time in that long within the last few
// minutes may still end, while a refresh, an event of its own, keeps it.

// expireEvery is how often the sessions nothing can use are ended.
const expireEvery = 15 * time.Minute

// expireGrace is how long after its last token expired a session is ended:
// past any clock skew between the replica that issued it and this one.
const expireGrace = time.Minute

// expirePage is how many sessions one query of the sweep reads.
const expirePage = 500

// runExpiries ends the sessions nothing can use every expireEvery until ctx
// ends.
func (s *Service) runExpiries(ctx context.Context) {
	for {
		if n, err := s.expireSessions(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.logger.Warn("could not end the sessions whose tokens have all expired", "err", err)
		} else if n > 0 {
			s.logger.Info("ended the sessions whose tokens have all expired", "sessions", n)
		}
		if !sleep(ctx, expireEvery) {
			return
		}
	}
}

// expireSessions ends every live session whose last token expired before
// now less expireGrace, and returns how many it ended.
func (s *Service) expireSessions(ctx context.Context, now time.Time) (int, error) {
	cut := now.Add(-expireGrace)
	ended := 0
	var (
		afterAt time.Time // the sweep's place: (usable_until, session_id) of the last session read
		afterID string
	)
	for {
		rows, err := s.pool.Query(ctx, `
			SELECT session_id, usable_until FROM sessions
			WHERE ended_at IS NULL AND usable_until < $1 AND (usable_until, session_id) > ($2, $3)
			ORDER BY usable_until, session_id LIMIT $4`, cut, afterAt, afterID, expirePage)
		if err != nil {
			return ended, err
		}
		var (
			page []string
			id   string
			at   time.Time
		)
		if _, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error {
			page, afterAt, afterID = append(page, id), at, id
			return nil
		}); err != nil {
			return ended, err
		}
		for _, id := range page {
			ok, err := s.expireSession(ctx, id, cut)
			if err != nil {
				return ended, err
			}
			if ok {
				ended++
			}
		}
		if len(page) < expirePage {
			return ended, nil
		}
	}
}

// expireSession ends a session when, by its own state, nothing of it can be
// used at now (session.Expire), and reports whether it did.
func (s *Service) expireSession(ctx context.Context, id string, now time.Time) (bool, error) {
	ref := sessionRef(id)
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := session.Fold(history)
		return s.sessionWrites(ctx, ref, "system:token", st, version, session.Expire(st, now)...)
	})
	return len(appended.Seqs) > 0, err
}

// inactiveEvery is how often the sessions unused for too long are ended: a
// scan of every live session, where the expiry is at least a day.
const inactiveEvery = time.Hour

// runInactiveExpiries ends the sessions unused for too long every
// inactiveEvery until ctx ends.
func (s *Service) runInactiveExpiries(ctx context.Context) {
	for {
		if n, err := s.expireInactive(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.logger.Warn("could not end the sessions unused for too long", "err", err)
		} else if n > 0 {
			s.logger.Info("ended the sessions unused for too long", "sessions", n, "unused_for", s.cfg.InactiveSessionExpiry)
		}
		if !sleep(ctx, inactiveEvery) {
			return
		}
	}
}

// expireInactive ends every live OAuth or compat session last used before
// now less Config.InactiveSessionExpiry, and returns how many it ended.
func (s *Service) expireInactive(ctx context.Context, now time.Time) (int, error) {
	if s.cfg.InactiveSessionExpiry <= 0 {
		return 0, nil
	}
	cut := now.Add(-s.cfg.InactiveSessionExpiry)
	ended, after := 0, ""
	for {
		rows, err := s.pool.Query(ctx, `
			SELECT s.session_id FROM sessions s LEFT JOIN session_activity a ON a.session_id = s.session_id
			WHERE s.ended_at IS NULL AND s.kind IN ('oauth', 'compat') AND s.session_id > $2
				AND GREATEST(s.created_at, s.last_active_at, a.last_active_at) < $1
			ORDER BY s.session_id LIMIT $3`, cut, after, expirePage)
		if err != nil {
			return ended, err
		}
		var (
			page []string
			id   string
		)
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			page, after = append(page, id), id
			return nil
		}); err != nil {
			return ended, err
		}
		for _, id := range page {
			ok, err := s.expireIfInactive(ctx, id, cut)
			if err != nil {
				return ended, err
			}
			if ok {
				ended++
			}
		}
		if len(page) < expirePage {
			return ended, nil
		}
	}
}

// expireIfInactive ends a session when, by its own state raised to all this
// replica knows of its use, it was last active before cut
// (session.ExpireInactive), and reports whether it did.
func (s *Service) expireIfInactive(ctx context.Context, id string, cut time.Time) (bool, error) {
	ref := sessionRef(id)
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := session.Fold(history)
		if !st.Exists() || st.Ended {
			return nil, nil
		}
		u, err := readLastUse(ctx, s.pool, id)
		if err != nil {
			return nil, err
		}
		decided := session.ExpireInactive(s.withUse(st, u), cut)
		return s.sessionWritesUsing(ctx, ref, "system:token", st, u, version, decided...)
	})
	return len(appended.Seqs) > 0, err
}
