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
//
// A rebuild, or a new version of a read model, never touches the tables
// readers use: the leader fills copies of them in a schema of their own from
// the stream while the live tables keep answering, and swaps them in with one
// transaction once the copies have caught up (see build.go).
package projection

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
)

// Projection is a read model kept from a stream's events.
type Projection struct {
	// Name is unique within the service's schema, for example "users", and
	// among the projections of every service that follow the same stream:
	// it names the stream's durable consumer (projection_<name>), and two
	// runners sharing one would each get part of the events (found by the
	// node loss drill: accounts and authorize both had "token_sessions" on
	// TOKEN).
	Name string
	// Subjects it consumes, for example "accounts.user.*".
	Subjects []string
	// Apply applies one event inside the batch transaction. It must only touch
	// the projection's own tables (Tables), by unqualified names: during a
	// rebuild the same Apply fills the tables' copies, found first on the
	// search_path. Events of unknown types arrive with a nil Event.
	Apply func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error
	// ApplyBatch, optional, applies the events of one batch, in stream
	// order, at once (multi-row statements, COPY) instead of Apply on each:
	// for bulk work such as an import, where one statement per event would
	// be the limit. It must leave the read model as Apply on each in turn
	// would, and be as idempotent; the conformance suite checks both.
	// RunsOf helps apply runs of bulk events together and the others one by
	// one. Events at or below the checkpoint are not given.
	ApplyBatch func(ctx context.Context, tx pgx.Tx, recs []eventlog.Record) error
	// Batch is how many events one transaction applies at most
	// (DefaultBatch when zero); worth raising with ApplyBatch.
	Batch int
	// Tables are the tables the projection owns, created by the service's
	// migrations, for example "sessions", "tokens". A rebuild fills copies of
	// them and swaps them in together; a reset empties them.
	Tables []string
	// Version is the version of the read model's shape and meaning (1 when
	// zero). Raising it makes the leader build the new version beside the
	// live one, from the stream, and swap it in once it has caught up; a
	// read model that never ran starts at it. Until the swap Apply keeps
	// applying to the live tables: a column it writes is added by a
	// migration, and the build makes every row's value exact.
	Version int
	// Upgrade, optional, turns the copies of the tables (cloned from the live
	// ones, at version from) into this Version's shape before the replay fills
	// them: DDL by unqualified names (ALTER TABLE sessions DROP COLUMN ...).
	// The live tables keep their shape until the swap, so Apply must not
	// depend on what Upgrade changes.
	Upgrade func(ctx context.Context, tx pgx.Tx, from int) error
	// Source is the stream the events come from when it is not the service's
	// own: another service's stream, followed read-only (eventlog.Follow).
	Source *eventlog.Log
	// Ignores, optional, are event types on the subjects that Apply does
	// nothing with (its switch still names them): the runner and a rebuild
	// step over them without decoding them, the checkpoint moving past them.
	// The conformance suite checks that applying them changes nothing.
	Ignores []proto.Message
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func (p Projection) validate() error {
	switch {
	case !validName.MatchString(p.Name):
		return fmt.Errorf("projection: invalid name %q", p.Name)
	case len(p.Subjects) == 0:
		return fmt.Errorf("projection %s: no subjects", p.Name)
	case p.Apply == nil:
		return fmt.Errorf("projection %s: Apply is required", p.Name)
	case len(p.Tables) == 0:
		return fmt.Errorf("projection %s: no tables", p.Name)
	case p.Version < 0:
		return fmt.Errorf("projection %s: negative version", p.Name)
	}
	for _, t := range p.Tables {
		if !validName.MatchString(t) {
			return fmt.Errorf("projection %s: invalid table name %q", p.Name, t)
		}
	}
	return nil
}

// decoding is what the projection's runners decode: all but Ignores.
func (p Projection) decoding() eventlog.Decoding {
	if len(p.Ignores) == 0 {
		return nil
	}
	return eventlog.Except(eventlog.TypesOf(p.Ignores...))
}

// version is the projection's version, 1 when unset.
func (p Projection) version() int { return max(p.Version, 1) }

// batch is how many events one transaction applies at most.
func (p Projection) batch() int {
	if p.Batch > 0 {
		return p.Batch
	}
	return DefaultBatch
}

// applyAll applies records in order: with ApplyBatch when the projection
// has one, else with Apply on each.
func (p Projection) applyAll(ctx context.Context, tx pgx.Tx, recs []eventlog.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if p.ApplyBatch != nil {
		if err := p.ApplyBatch(ctx, tx, recs); err != nil {
			return fmt.Errorf("apply %d events from seq %d: %w", len(recs), recs[0].Seq, err)
		}
		return nil
	}
	for _, rec := range recs {
		if err := p.Apply(ctx, tx, rec); err != nil {
			return fmt.Errorf("apply %s at seq %d: %w", rec.Type(), rec.Seq, err)
		}
	}
	return nil
}

// RunsOf splits recs for an ApplyBatch: each maximal run of consecutive
// records bulk accepts goes to many, every other record to one, in stream
// order.
func RunsOf(recs []eventlog.Record, bulk func(eventlog.Record) bool, many func([]eventlog.Record) error, one func(eventlog.Record) error) error {
	return RunsBy(recs, func(rec eventlog.Record) string {
		if bulk(rec) {
			return "bulk"
		}
		return ""
	}, func(kind string, run []eventlog.Record) error {
		if kind != "" {
			return many(run)
		}
		for _, rec := range run {
			if err := one(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// RunsBy splits recs for an ApplyBatch that applies several kinds of events
// in bulk: each maximal run of consecutive records of one kind goes to
// apply with that kind, in stream order.
func RunsBy(recs []eventlog.Record, kind func(eventlog.Record) string, apply func(kind string, run []eventlog.Record) error) error {
	for i := 0; i < len(recs); {
		k, j := kind(recs[i]), i+1
		for j < len(recs) && kind(recs[j]) == k {
			j++
		}
		if err := apply(k, recs[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// truncate empties the projection's tables.
func (p Projection) truncate(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `TRUNCATE `+identifiers(p.Tables))
	return err
}

// identifiers is a comma-separated list of quoted identifiers.
func identifiers(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(quoted, ", ")
}

// setupDDL creates the tables the platform keeps in each service's schema:
// the checkpoints of projections and reactors (with the version of each live
// read model) and the rebuilds under way.
var setupDDL = []string{`
CREATE TABLE IF NOT EXISTS projection_checkpoints (
	name       text PRIMARY KEY,
	last_seq   bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now()
)`,
	// Only when missing: ALTER TABLE locks the table even when it changes nothing.
	`DO $$ BEGIN
		IF NOT EXISTS (SELECT 1 FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'projection_checkpoints' AND column_name = 'version') THEN
			ALTER TABLE projection_checkpoints ADD COLUMN version integer NOT NULL DEFAULT 1;
		END IF;
	END $$`,
	buildsDDL,
	`DO $$ BEGIN
		IF NOT EXISTS (SELECT 1 FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'projection_builds' AND column_name = 'live_shape') THEN
			ALTER TABLE projection_builds ADD COLUMN live_shape text NOT NULL DEFAULT '';
		END IF;
	END $$`,
}

// Setup creates the checkpoint and build tables in the pool's schema if they
// are missing (replicas starting together take turns).
func Setup(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '.gatehouse.projection.setup', 0))`); err != nil {
			return err
		}
		for _, ddl := range setupDDL {
			if _, err := tx.Exec(ctx, ddl); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("projection: create checkpoint tables: %w", err)
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
// transaction, in place: readers see empty tables until the leader, which
// notices, has replayed the stream. It is for tests and for a read model
// nobody reads yet; Set.Rebuild rebuilds without readers noticing.
// The replay applies this binary's Apply, so the read model becomes of its
// Version.
func Reset(ctx context.Context, pool *pgxpool.Pool, p Projection) error {
	return rewind(ctx, pool, p.Name, p.version(), p.truncate)
}

// rewind sets a member's checkpoint back to zero, and its version to version
// unless that is 0, running reset (when set) in the same transaction, and
// announces it.
func rewind(ctx context.Context, pool *pgxpool.Pool, name string, version int, reset func(context.Context, pgx.Tx) error) error {
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
		if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET last_seq = 0, version = CASE WHEN $2 > 0 THEN $2 ELSE version END,
			updated_at = now() WHERE name = $1`, name, version); err != nil {
			return fmt.Errorf("projection %s: rewind checkpoint: %w", name, err)
		}
		return notify(ctx, tx, name, "reset")
	})
}

// Snapshot reads a projection's tables with load and returns the checkpoint
// they are at, both from one consistent snapshot of the database (a
// repeatable-read, read-only transaction that first takes a share lock on the
// projection's tables, so a rebuild's swap cannot slip between the checkpoint
// and the rows): the tables hold exactly the events up to that checkpoint.
// A process that keeps state in memory loads it this way and then follows
// the stream from the event after the checkpoint (eventlog.Tail), so it
// neither misses an event nor depends on the read model being current.
func Snapshot(ctx context.Context, pool *pgxpool.Pool, p Projection, load func(ctx context.Context, tx pgx.Tx) error) (uint64, error) {
	var checkpoint uint64
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// Before any query: the snapshot is taken at the first one, after the lock.
		if _, err := tx.Exec(ctx, `LOCK TABLE `+identifiers(p.Tables)+` IN ACCESS SHARE MODE`); err != nil {
			return fmt.Errorf("projection %s: lock tables: %w", p.Name, err)
		}
		var err error
		if checkpoint, err = Checkpoint(ctx, tx, p.Name); err != nil {
			return err
		}
		if err := load(ctx, tx); err != nil {
			return fmt.Errorf("projection %s: load snapshot: %w", p.Name, err)
		}
		return nil
	})
	return checkpoint, err
}
