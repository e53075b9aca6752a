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
// Rows whose column is NULL stay.
func DropBefore(ctx context.Context, pool *pgxpool.Pool, table, column string, cutoff time.Time) (int64, error) {
	tag, err := pool.Exec(ctx, `DELETE FROM `+pgx.Identifier{table}.Sanitize()+` WHERE `+pgx.Identifier{column}.Sanitize()+` < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("pg: drop %s before %s: %w", table, cutoff.Format(time.RFC3339), err)
	}
	return tag.RowsAffected(), nil
}
