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
