package token

// Locked and deactivated users. The accounts service owns users; the token
// service learns whose tokens must not work from the ACCOUNTS stream, read
// only (internal/blocks decides from each user event):
//
//   - the user_blocks projection keeps, in the token schema, whether each
//     user ever locked or deactivated is blocked now;
//   - every replica keeps the same set in memory (userBlocks): at start it
//     loads the projection's rows together with the checkpoint they are at,
//     from one database snapshot, then follows the stream live from the event
//     after that checkpoint (eventlog.Tail). A lock made before the process
//     started is known from its first answer, and one made on any replica
//     reaches every replica within the stream's delivery time. The read model
//     need not be current: a projection that lags, or is being rebuilt, only
//     makes the tail longer.
//
// While a user is blocked, introspection (HTTP and gRPC), userinfo and the
// compat API treat the user's tokens as inactive, and refreshing or starting
// a session is refused. A lock ends nothing: unlocking restores the sessions,
// as MAS does. A deactivation ends them for good (account_changes.go).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/blocks"
)

const userBlocksProjection = "user_blocks"

// userBlocksReadModel keeps the user_blocks table from the ACCOUNTS stream.
func userBlocksReadModel(accounts *eventlog.Log) projection.Projection {
	return projection.Projection{
		Name:     userBlocksProjection,
		Source:   accounts,
		Subjects: []string{eventsv1.AccountsUser.Subjects()},
		Apply:    applyBlockEvent,
		Tables:   []string{"user_blocks"},
	}
}

func applyBlockEvent(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
	if _, concerns, err := blocks.Apply(blocks.State{}, rec); err != nil || !concerns {
		return err
	}
	userID := rec.Aggregate().ID
	var (
		cur     blocks.State
		version int64
	)
	err := tx.QueryRow(ctx, `SELECT locked, deactivated, version FROM user_blocks WHERE user_id = $1 FOR UPDATE`, userID).
		Scan(&cur.Locked, &cur.Deactivated, &version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("user blocks: read: %w", err)
	case uint64(version) >= rec.Seq:
		return nil // delivered again
	}
	next, _, err := blocks.Apply(cur, rec)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO user_blocks (user_id, locked, deactivated, changed_at, version) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (user_id) DO UPDATE SET locked = $2, deactivated = $3, changed_at = $4, version = $5`,
		userID, next.Locked, next.Deactivated, rec.OccurredAt(), int64(rec.Seq))
	if err != nil {
		return fmt.Errorf("user blocks: %s: %w", rec.Type(), err)
	}
	return nil
}

// blocksReadyWait bounds how long a request waits for this replica to know
// the blocked users after it started; past it the request fails (503)
// rather than answer without knowing.
const blocksReadyWait = 10 * time.Second

// userBlocks is this replica's set of blocked users, fed as described above.
type userBlocks struct {
	pool     *pgxpool.Pool
	accounts *eventlog.Log
	logger   *slog.Logger

	mu    sync.RWMutex
	users map[string]blocks.State
	tail  *eventlog.Tail // set before ready closes
	ready chan struct{}  // closed once the set caught up with the stream after start
}

func newUserBlocks(pool *pgxpool.Pool, accounts *eventlog.Log, logger *slog.Logger) *userBlocks {
	return &userBlocks{pool: pool, accounts: accounts, logger: logger.With("component", "user_blocks"),
		users: map[string]blocks.State{}, ready: make(chan struct{})}
}

// run loads the snapshot, then follows the stream until ctx ends.
func (b *userBlocks) run(ctx context.Context) {
	var checkpoint uint64
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		var err error
		checkpoint, err = projection.Snapshot(ctx, b.pool, userBlocksReadModel(b.accounts), b.load)
		if err == nil {
			break
		}
		b.logger.Warn("blocked users not loaded yet; retrying", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			return
		}
	}
	b.tail = b.accounts.Tail(eventlog.TailConfig{
		Name: "token.user_blocks", Subjects: []string{eventsv1.AccountsUser.Subjects()}, From: checkpoint + 1, Handle: b.apply,
	}, b.logger)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { b.tail.Run(ctx) })
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		if _, err := b.tail.CatchUp(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			return
		} else {
			b.logger.Warn("blocked users not caught up yet; retrying", "err", err, "backoff", backoff)
		}
		if !sleep(ctx, backoff) {
			return
		}
	}
	b.logger.Debug("blocked users known", "users", b.count(), "from", checkpoint, "position", b.tail.Position())
	close(b.ready)
}

// load reads the projection's rows (in Snapshot's transaction).
func (b *userBlocks) load(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT user_id, locked, deactivated FROM user_blocks WHERE locked OR deactivated`)
	if err != nil {
		return err
	}
	users := map[string]blocks.State{}
	for rows.Next() {
		var (
			id string
			st blocks.State
		)
		if err := rows.Scan(&id, &st.Locked, &st.Deactivated); err != nil {
			rows.Close()
			return err
		}
		users[id] = st
	}
	if err := rows.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	b.users = users
	b.mu.Unlock()
	return nil
}

// apply learns one user event from the tail.
func (b *userBlocks) apply(rec eventlog.Record) error {
	id := rec.Aggregate().ID
	b.mu.Lock()
	defer b.mu.Unlock()
	next, concerns, err := blocks.Apply(b.users[id], rec)
	if err != nil || !concerns {
		return err
	}
	if next.Blocked() {
		b.users[id] = next
	} else {
		delete(b.users, id)
	}
	return nil
}

func (b *userBlocks) count() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.users)
}

// waitReady blocks until the set has caught up after start (bounded by
// blocksReadyWait and ctx).
func (b *userBlocks) waitReady(ctx context.Context) error {
	select {
	case <-b.ready:
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, blocksReadyWait)
	defer cancel()
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		return errs.Wrap(errs.KindUnavailable, "Locked accounts are not known yet; try again shortly.", ctx.Err())
	}
}

// blocked reports whether userID is locked or deactivated. Tokens of no user
// (client credentials) are never blocked.
func (b *userBlocks) blocked(ctx context.Context, userID string) (bool, error) {
	st, err := b.state(ctx, userID)
	return st.Blocked(), err
}

// state is what this replica knows of userID's lock and deactivation.
func (b *userBlocks) state(ctx context.Context, userID string) (blocks.State, error) {
	if userID == "" {
		return blocks.State{}, nil
	}
	if err := b.waitReady(ctx); err != nil {
		return blocks.State{}, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.users[userID], nil
}

// catchUp waits until this replica has learnt every user event stored now.
func (b *userBlocks) catchUp(ctx context.Context) error {
	if err := b.waitReady(ctx); err != nil {
		return err
	}
	_, err := b.tail.CatchUp(ctx)
	return err
}

// refuseBlocked is the error for a refresh or a new session of a locked or
// deactivated user (the words are those of the accounts service's refusals,
// which the compat API maps to M_USER_DEACTIVATED and M_USER_LOCKED).
func (s *Service) refuseBlocked(ctx context.Context, userID string) error {
	st, err := s.index.users.state(ctx, userID)
	switch {
	case err != nil:
		return err
	case st.Deactivated:
		return errs.FailedPrecondition("This account has been deactivated.")
	case st.Locked:
		return errs.FailedPrecondition("This account is locked.")
	}
	return nil
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
