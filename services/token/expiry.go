package token

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/services/token/internal/session"
)

// Sessions nothing can use any more (issue 16). A client's own session
// (client_credentials) and a person's OAuth session given no refresh token
// get no tokens after their first, so once that access token has expired
// nothing of the session can be used again: left live, each would keep a
// subject of the TOKEN stream and rows of every read model that follows it
// for ever, one for every token such a client ever asked for. Every
// expireEvery, one replica at a time ends those whose last token expired
// more than expireGrace ago (SessionEnded, reason session.ExpiredReason),
// found by the read model's usable_until; the end then goes like any other: its
// message expires after its retention (endedRetention), the read models drop
// the session, the homeserver its device. Ending is an expected-sequence
// append decided on the session's own state (session.Expire), so two
// replicas ending the same session append one end, and a session that the
// read model has wrong is left alone.

// Sessions unused for too long. With Config.InactiveSessionExpiry (off by
// default), a person's OAuth or compat session last used longer ago than
// that is ended too (reason session.InactiveReason), and the homeserver
// deletes its device: every inactiveEvery, a replica reads the live
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

// atNow is job run at the time it runs, for pg.Every.
func (s *Service) atNow(job func(context.Context, time.Time) (int, error)) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		n, err := job(ctx, s.now())
		return int64(n), err
	}
}

// expireSessions ends every live session whose last token expired before
// now less expireGrace, and returns how many it ended.
func (s *Service) expireSessions(ctx context.Context, now time.Time) (int, error) {
	cut := now.Add(-expireGrace)
	var (
		afterAt time.Time // the sweep's place: (usable_until, session_id) of the last session read
		afterID string
	)
	return s.endPaged(ctx, func(ctx context.Context) ([]string, error) {
		rows, err := s.pool.Query(ctx, `
			SELECT session_id, usable_until FROM sessions
			WHERE ended_at IS NULL AND usable_until < $1 AND (usable_until, session_id) > ($2, $3)
			ORDER BY usable_until, session_id LIMIT $4`, cut, afterAt, afterID, expirePage)
		if err != nil {
			return nil, err
		}
		var (
			page []string
			id   string
			at   time.Time
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
			page, afterAt, afterID = append(page, id), at, id
			return nil
		})
		return page, err
	}, func(st session.State, _ use) []proto.Message { return session.Expire(st, cut) })
}

// endPaged ends each session next finds whose state decide ends (eachPaged),
// and returns how many it ended.
func (s *Service) endPaged(ctx context.Context, next func(context.Context) ([]string, error), decide func(session.State, use) []proto.Message) (int, error) {
	return s.eachPaged(ctx, expirePage, next, func(ctx context.Context, id string) (bool, error) {
		return s.endIf(ctx, id, decide)
	})
}

// eachPaged runs do on each session next finds, page by page (until a page
// holds fewer than size), and returns how many do reported done. The
// sessions of a page are done sweepWorkers at a time: one at a time, each a
// load and an append waiting on the last, a sweep ended some 700 sessions a
// second, fewer than a deployment issuing client_credentials tokens at the
// issue's rate starts. Each sweep runs on one replica at a time (pg.Alone
// in Run); should two run at once (the lock's connection lost), each goes
// through a page in an order of its own, so they mostly meet different
// sessions first, and the one that comes second finds the session done.
func (s *Service) eachPaged(ctx context.Context, size int, next func(context.Context) ([]string, error), do func(context.Context, string) (bool, error)) (int, error) {
	var done atomic.Int64
	for {
		page, err := next(ctx)
		if err != nil {
			return int(done.Load()), err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(sweepWorkers)
		for _, i := range rand.Perm(len(page)) {
			g.Go(func() error {
				ok, err := do(gctx, page[i])
				if ok {
					done.Add(1)
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return int(done.Load()), err
		}
		if len(page) < size {
			return int(done.Load()), nil
		}
	}
}

// sweepWorkers is how many sessions a sweep works on at once.
const sweepWorkers = 32

// endIf appends the end decide decides on a live session's own state and
// its activity row in the read model (nothing when it decides none), and
// reports whether it did. The append expects the version decided on, so a
// session that changed meanwhile is decided again.
func (s *Service) endIf(ctx context.Context, id string, decide func(session.State, use) []proto.Message) (bool, error) {
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
		return s.sessionWritesUsing(ctx, ref, "system:token", st, u, version, decide(st, u)...)
	})
	return len(appended.Seqs) > 0, err
}

// inactiveEvery is how often the sessions unused for too long are ended: a
// scan of every live session, where the expiry is at least a day.
const inactiveEvery = time.Hour

// expireInactive ends every live OAuth or compat session last used before
// now less Config.InactiveSessionExpiry, and returns how many it ended.
func (s *Service) expireInactive(ctx context.Context, now time.Time) (int, error) {
	if s.cfg.InactiveSessionExpiry <= 0 {
		return 0, nil
	}
	cut := now.Add(-s.cfg.InactiveSessionExpiry)
	return s.endPaged(ctx, s.idPages(`
		SELECT s.session_id FROM sessions s LEFT JOIN session_activity a ON a.session_id = s.session_id
		WHERE s.ended_at IS NULL AND s.kind IN ('oauth', 'compat') AND s.session_id > $2
			AND GREATEST(s.created_at, s.last_active_at, a.last_active_at) < $1
		ORDER BY s.session_id LIMIT $3`, cut, expirePage), func(st session.State, u use) []proto.Message {
		return session.ExpireInactive(s.withUse(st, u), cut) // raised to this replica's unwritten notes too
	})
}

// idPages pages through the session ids query finds, in id order: query
// takes the cut ($1), the last id read so far ($2, the sweep's place) and
// the page's size ($3).
func (s *Service) idPages(query string, cut time.Time, size int) func(context.Context) ([]string, error) {
	after := ""
	return func(ctx context.Context) ([]string, error) {
		rows, err := s.pool.Query(ctx, query, cut, after, size)
		if err != nil {
			return nil, err
		}
		var (
			page []string
			id   string
		)
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
			page, after = append(page, id), id
			return nil
		})
		return page, err
	}
}
