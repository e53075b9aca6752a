package pg

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Every runs job every d until ctx ends, and logs what it did (did, with
// how many rows or sessions, when any) or its failure: the one loop of the
// read models' periodic work — rows their stream has dropped, sessions to
// fold or end.
func Every(ctx context.Context, d time.Duration, logger *slog.Logger, did string, job func(context.Context) (int64, error)) {
	for {
		if n, err := job(ctx); err != nil && ctx.Err() == nil {
			logger.WarnContext(ctx, "periodic work failed", "work", did, "err", err)
		} else if n > 0 {
			logger.InfoContext(ctx, did, "count", n)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// DropBefore deletes the rows of table whose column (a time) is before
// cutoff, and returns how many: a read model's rows its stream has dropped.
// Rows whose column is NULL stay. Index the column.
func DropBefore(ctx context.Context, pool *pgxpool.Pool, table, column string, cutoff time.Time) (int64, error) {
	n, err := DropWhere(ctx, pool, table, pgx.Identifier{column}.Sanitize()+` < $1`, cutoff)
	if err != nil {
		return n, fmt.Errorf("pg: drop %s before %s: %w", table, cutoff.Format(time.RFC3339), err)
	}
	return n, nil
}

// DropWhere deletes the rows of table that where (SQL of the caller's, its
// parameters args) holds for, DropChunk rows a statement, so that a sweep
// of millions holds no long transaction, and returns how many.
func DropWhere(ctx context.Context, pool *pgxpool.Pool, table, where string, args ...any) (int64, error) {
	t := pgx.Identifier{table}.Sanitize()
	sql := fmt.Sprintf(`DELETE FROM %s WHERE ctid = ANY(ARRAY(SELECT ctid FROM %s WHERE %s LIMIT $%d))`, t, t, where, len(args)+1)
	args = append(args[:len(args):len(args)], DropChunk)
	var dropped int64
	for {
		tag, err := pool.Exec(ctx, sql, args...)
		if err != nil {
			return dropped, fmt.Errorf("pg: drop from %s: %w", table, err)
		}
		dropped += tag.RowsAffected()
		if tag.RowsAffected() < DropChunk {
			return dropped, nil
		}
	}
}

// DropChunk is how many rows one statement of a sweep deletes at most.
const DropChunk = 5000

// unlockTimeout bounds giving Alone's lock back.
const unlockTimeout = 5 * time.Second

// Alone wraps a periodic job so that one replica at a time runs it: a run
// that finds another replica's under way (a PostgreSQL advisory lock named
// name, in the pool's schema, held on one of the pool's connections while
// the job runs) does nothing and reports 0. For work each replica would
// otherwise do whole, at the same moments (replicas started together keep
// their timers together): sweeps that load and append per row. If the
// lock's connection breaks, another replica may start meanwhile; the job
// must stay correct run twice at once.
func Alone(pool *pgxpool.Pool, name string, job func(context.Context) (int64, error)) func(context.Context) (int64, error) {
	key := "gatehouse.alone." + name
	const lock = `SELECT pg_try_advisory_lock(hashtextextended(current_schema() || '.' || $1, 0))`
	const unlock = `SELECT pg_advisory_unlock(hashtextextended(current_schema() || '.' || $1, 0))`
	return func(ctx context.Context) (int64, error) {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return 0, fmt.Errorf("pg: %s: %w", name, err)
		}
		defer conn.Release()
		var mine bool
		if err := conn.QueryRow(ctx, lock, key).Scan(&mine); err != nil {
			return 0, fmt.Errorf("pg: %s: take the lock: %w", name, err)
		}
		if !mine {
			return 0, nil
		}
		defer func() {
			// A connection going back to the pool must not keep the lock:
			// one that cannot give it back (in time: the database may be
			// gone) is closed, which does.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
			defer cancel()
			if _, err := conn.Exec(ctx, unlock, key); err != nil {
				conn.Conn().Close(ctx)
			}
		}()
		return job(ctx)
	}
}
