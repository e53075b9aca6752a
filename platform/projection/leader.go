package projection

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// leaderPing is how often a leader checks that it still holds its lock.
const leaderPing = 5 * time.Second

// errLostLeadership means the connection holding the advisory lock broke: the
// lock is gone and another replica may lead already.
var errLostLeadership = errors.New("lost the leader connection")

// lead waits until this replica holds the advisory lock of the member name in
// the pool's schema, then runs fn with a context that ends when the lock's
// connection breaks (cause errLostLeadership) or ctx ends. It releases the
// lock when fn returns, and returns fn's error.
//
// One lock per projection or reactor: each is led by one replica at a time,
// and different members may be led by different replicas.
func lead(ctx context.Context, pool *pgxpool.Pool, name string, fn func(ctx context.Context) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire leader connection: %w", err)
	}
	// The advisory lock belongs to this session: keep the connection out of the pool.
	lockConn := conn.Hijack()
	defer lockConn.Close(context.WithoutCancel(ctx))
	key := "gatehouse.projection." + name
	if _, err := lockConn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended(current_schema() || '.' || $1, 0))`, key); err != nil {
		return fmt.Errorf("wait for leadership: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		t := time.NewTicker(leaderPing)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := lockConn.Ping(ctx); err != nil && ctx.Err() == nil {
					cancel(fmt.Errorf("%w: %v", errLostLeadership, err))
					return
				}
			}
		}
	}()
	err = fn(ctx)
	cause := context.Cause(ctx)
	cancel(nil)
	<-pinged
	if errors.Is(cause, errLostLeadership) {
		return cause
	}
	return err
}
