// Package projection keeps PostgreSQL read models current from the event log.
//
// A Projection names the subjects it consumes and applies each event inside a
// transaction that also advances its checkpoint (the stream sequence of the last
// event applied). The checkpoint, not the consumer's ack floor, is the truth: an
// event at or below it is skipped, so a crash between commit and ack applies
// nothing twice, and a restart resumes right after it, so nothing is skipped.
//
// One replica at a time runs each projection, elected with a PostgreSQL advisory
// lock; the others wait on the lock and take over when the leader goes away.
// Commits announce the new checkpoint with NOTIFY, which lets any replica wait
// until a projection has caught up with an event it just appended (see Listener).
package projection

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/eventlog"
)

// Projection is a read model kept from a stream's events.
type Projection struct {
	// Name is unique within the service's schema, for example "users".
	Name string
	// Subjects it consumes, for example "accounts.user.*".
	Subjects []string
	// Apply applies one event inside the batch transaction. It must only touch
	// the projection's own tables. Events of unknown types arrive with a nil Event.
	Apply func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error
	// Reset empties the projection's tables before a rebuild.
	Reset func(ctx context.Context, tx pgx.Tx) error
	// Source is the stream the events come from when it is not the service's
	// own: another service's stream, followed read-only (eventlog.Follow).
	Source *eventlog.Log
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func (p Projection) validate() error {
	switch {
	case !validName.MatchString(p.Name):
		return fmt.Errorf("projection: invalid name %q", p.Name)
	case len(p.Subjects) == 0:
		return fmt.Errorf("projection %s: no subjects", p.Name)
	case p.Apply == nil || p.Reset == nil:
		return fmt.Errorf("projection %s: Apply and Reset are required", p.Name)
	}
	return nil
}

// checkpointsDDL creates the checkpoint table in the service's schema.
const checkpointsDDL = `
CREATE TABLE IF NOT EXISTS projection_checkpoints (
	name       text PRIMARY KEY,
	last_seq   bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now()
)`

// Setup creates the checkpoint table in the pool's schema if it is missing.
func Setup(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, checkpointsDDL); err != nil {
		return fmt.Errorf("projection: create checkpoints table: %w", err)
	}
	return nil
}

// Checkpoint returns the stream sequence of the last event the projection applied.
func Checkpoint(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (uint64, error) {
	var seq int64
	err := q.QueryRow(ctx, `SELECT last_seq FROM projection_checkpoints WHERE name = $1`, name).Scan(&seq)
	if err == pgx.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projection %s: read checkpoint: %w", name, err)
	}
	return uint64(seq), nil
}

// notifyChannel is the LISTEN/NOTIFY channel of a schema's projections.
func notifyChannel(schema string) string { return "gatehouse_projections_" + schema }

// notify announces a projection's new checkpoint, delivered when tx commits.
func notify(ctx context.Context, tx pgx.Tx, name, payload string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify('gatehouse_projections_' || current_schema(), $1)`, name+":"+payload)
	if err != nil {
		return fmt.Errorf("projection %s: notify: %w", name, err)
	}
	return nil
}

// Reset empties a projection's tables and rewinds its checkpoint to zero in one
// transaction. The leader notices and replays the stream from the start.
func Reset(ctx context.Context, pool *pgxpool.Pool, p Projection) error {
	return rewind(ctx, pool, p.Name, p.Reset)
}

// rewind sets a member's checkpoint back to zero, running reset (when set) in
// the same transaction, and announces it.
func rewind(ctx context.Context, pool *pgxpool.Pool, name string, reset func(context.Context, pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return fmt.Errorf("projection %s: ensure checkpoint: %w", name, err)
		}
		// Lock the checkpoint so a batch in flight waits, then sees the rewind.
		if _, err := tx.Exec(ctx, `SELECT last_seq FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, name); err != nil {
			return fmt.Errorf("projection %s: lock checkpoint: %w", name, err)
		}
		if reset != nil {
			if err := reset(ctx, tx); err != nil {
				return fmt.Errorf("projection %s: reset tables: %w", name, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET last_seq = 0, updated_at = now() WHERE name = $1`, name); err != nil {
			return fmt.Errorf("projection %s: rewind checkpoint: %w", name, err)
		}
		return notify(ctx, tx, name, "reset")
	})
}

// Snapshot reads a projection's tables with load and returns the checkpoint
// they are at, both from one consistent snapshot of the database (a
// repeatable-read, read-only transaction): the tables hold exactly the
// events up to that checkpoint, even while the projection is being rebuilt.
// A process that keeps state in memory loads it this way and then follows
// the stream from the event after the checkpoint (eventlog.Tail), so it
// neither misses an event nor depends on the read model being current.
func Snapshot(ctx context.Context, pool *pgxpool.Pool, name string, load func(ctx context.Context, tx pgx.Tx) error) (uint64, error) {
	var checkpoint uint64
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if checkpoint, err = Checkpoint(ctx, tx, name); err != nil {
			return err
		}
		if err := load(ctx, tx); err != nil {
			return fmt.Errorf("projection %s: load snapshot: %w", name, err)
		}
		return nil
	})
	return checkpoint, err
}
