package projection

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"gatehouse.dev/platform/eventlog"
)

// Rebuilds without downtime (blue/green).
//
// A rebuild, or a new Version of a projection, is a build: the projection's
// leader clones its live tables (columns, constraints, indexes, under the
// same names) into a schema of their own, "<schema>_build_<name>", runs
// Upgrade there when the version changes, and replays the stream into the
// copies with the projection's own Apply: every build transaction sets
// search_path to that schema alone, so Apply's unqualified names reach the
// copies (and a table the projection did not list fails loudly instead of
// touching a live one). The live tables keep answering and the live
// projection keeps applying new events meanwhile. (A projection that never
// ran has no live model to upgrade: its checkpoint row is created at its
// Version, so it builds nothing.)
//
// Once the copies have caught up with the live checkpoint, one transaction
// swaps them in: it locks the checkpoint row (the live batches wait), applies
// the last few events to the copies, drops the live tables, moves the copies
// into the service's schema (ALTER TABLE ... SET SCHEMA: names, indexes and
// constraints move with them), sets the checkpoint and the version, and
// forgets the build. PostgreSQL's DDL is transactional, so a reader sees the
// old tables or the new ones, never a mix and never a half-built model; a
// query waiting on the swap's lock looks the name up again and reads the new
// table, and statements prepared by pgx's cache are re-planned against it.
// The swap waits at most swapLockTimeout for readers in flight (so readers
// queued behind it wait no longer), and is tried again later if it could not.
//
// Progress lives in projection_builds (position, target, rate), so a new
// leader resumes a build where the last one stopped, any replica can report
// it (gatehouse projections list, the metrics), and a rebuild can be asked
// for on any replica (Set.StartRebuild).

// buildsDDL creates the table of builds under way.
const buildsDDL = `
CREATE TABLE IF NOT EXISTS projection_builds (
	name       text PRIMARY KEY,
	version    integer NOT NULL,
	reason     text NOT NULL,
	position   bigint NOT NULL DEFAULT 0,
	target     bigint NOT NULL DEFAULT 0,
	rate       double precision NOT NULL DEFAULT 0,
	max_rate   double precision NOT NULL DEFAULT 0,
	started_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
)`

// Why a build runs.
const (
	// ReasonRebuild is a build an operator asked for (gatehouse projections rebuild).
	ReasonRebuild = "rebuild"
	// ReasonUpgrade is a build of a new Version of the projection.
	ReasonUpgrade = "upgrade"
)

// Tuning of builds.
const (
	// swapLockTimeout bounds how long the swap waits for readers in flight
	// (and so how long readers queued behind it wait); it is tried again later.
	swapLockTimeout = 500 * time.Millisecond
	// swapRetryMin and swapRetryMax bound the pause before trying again a
	// swap that readers held up, so that a long reader does not make every
	// other reader wait swapLockTimeout over and over.
	swapRetryMin = time.Second
	swapRetryMax = 30 * time.Second
	// swapWaitEvents bounds how long the swap waits for the last events to
	// arrive from the stream.
	swapWaitEvents = 5 * time.Second
	// idleSwap: when no event arrived for this long, the build has caught up
	// with the stream and tries to swap.
	idleSwap = 100 * time.Millisecond
	// buildRetryMin is the first pause after a build failed.
	buildRetryMin = time.Second
	// buildRecheck is how often a leader looks for a build asked elsewhere
	// even without an announcement.
	buildRecheck = 30 * time.Second
)

// errBuildMoved means the build row changed under the builder (a new build
// replaced it, or another leader advanced it): the build restarts from it.
var errBuildMoved = errors.New("build changed by someone else")

// errNotCaughtUp means a swap was tried too early: the build goes on.
var errNotCaughtUp = errors.New("build not caught up yet")

// BuildStatus is a build under way.
type BuildStatus struct {
	// Version is the version being built.
	Version int
	// Reason is ReasonRebuild or ReasonUpgrade.
	Reason string
	// Position is the stream sequence of the last event applied to the copies.
	Position uint64
	// Target is the stream's last event on the projection's subjects when
	// the build was asked for; past it, the build follows the live checkpoint
	// until it swaps.
	Target uint64
	// Rate is the recent speed of the build, in events per second.
	Rate float64
	// MaxRate caps the build's speed (events per second; 0: no cap).
	MaxRate float64
	// StartedAt and UpdatedAt are when the build began and last moved.
	StartedAt, UpdatedAt time.Time
	// Schema holds the copies being filled.
	Schema string
	// liveShape is the live tables' shape the copies were cloned from.
	liveShape string
}

// Status is what the set knows of one projection or reactor.
type Status struct {
	// Name and Kind (KindProjection, KindReactor).
	Name, Kind string
	// Checkpoint is the stream sequence of the last event applied live.
	Checkpoint uint64
	// Version is the version of the live read model.
	Version int
	// Build is the build under way, nil when none.
	Build *BuildStatus
}

// BuildSchema is the schema where a build of projection name in schema fills
// its copies.
func BuildSchema(schema, name string) string {
	s := schema + "_build_" + name
	if len(s) <= 63 {
		return s
	}
	h := fnv.New64a()
	h.Write([]byte(schema + "." + name))
	return fmt.Sprintf("gatehouse_build_%016x", h.Sum64())
}

// queryRower is a pool, a connection or a transaction.
type queryRower interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

// loadBuild reads the build of name, nil when none is under way.
func loadBuild(ctx context.Context, q queryRower, schema, name string) (*BuildStatus, error) {
	b := &BuildStatus{Schema: BuildSchema(schema, name)}
	var pos, target int64
	err := q.QueryRow(ctx, `SELECT version, reason, position, target, rate, max_rate, started_at, updated_at, live_shape
		FROM `+pgx.Identifier{schema, "projection_builds"}.Sanitize()+` WHERE name = $1`, name).
		Scan(&b.Version, &b.Reason, &pos, &target, &b.Rate, &b.MaxRate, &b.StartedAt, &b.UpdatedAt, &b.liveShape)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("projection %s: read build: %w", name, err)
	}
	b.Position, b.Target = uint64(pos), uint64(target)
	return b, nil
}

// liveVersion reads the version of the live read model (1 before any).
func liveVersion(ctx context.Context, q queryRower, schema, name string) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT version FROM `+pgx.Identifier{schema, "projection_checkpoints"}.Sanitize()+` WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projection %s: read version: %w", name, err)
	}
	return v, nil
}

// requestBuild records that a build of version is wanted, unless one is
// under way already (which is then reported), and announces it.
func requestBuild(ctx context.Context, tx pgx.Tx, schema, name string, version int, reason string, target uint64, maxRate float64) error {
	_, err := tx.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, "projection_builds"}.Sanitize()+` (name, version, reason, target, max_rate)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING`, name, version, reason, int64(target), maxRate)
	if err != nil {
		return fmt.Errorf("projection %s: ask for a build: %w", name, err)
	}
	return notify(ctx, tx, name, "build")
}

// builds runs the builds of the runner's projection while it leads: the one
// asked for (StartRebuild, on any replica) and the one its Version needs.
func (r *Runner) builds(ctx context.Context) {
	backoff := buildRetryMin
	for {
		wake := r.listener.buildWatch(r.proj.Name)
		err := r.buildIfDue(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errBuildMoved):
			r.logger.Info("the build changed under this leader; resuming from it")
			continue
		case err != nil:
			r.logger.Error("rebuild interrupted; resuming where it stopped", "err", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = buildRetryMin
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-time.After(buildRecheck):
		}
	}
}

// buildIfDue runs the build that is due, if any, until it swaps.
func (r *Runner) buildIfDue(ctx context.Context) error {
	schema, err := r.schema(ctx)
	if err != nil {
		return err
	}
	want := r.proj.version()
	live, err := liveVersion(ctx, r.pool, schema, r.proj.Name)
	if err != nil {
		return err
	}
	b, err := loadBuild(ctx, r.pool, schema, r.proj.Name)
	if err != nil {
		return err
	}
	switch {
	case b == nil && live == want:
		return nil
	case b == nil && live > want:
		r.logger.Warn("the live read model is of a newer version than this binary's; leaving it", "live_version", live, "version", want)
		return nil
	case b == nil:
		target, err := r.log.LastSeqOf(ctx, r.proj.Subjects...)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
			return requestBuild(ctx, tx, schema, r.proj.Name, want, ReasonUpgrade, target, 0)
		})
		if err != nil {
			return err
		}
		r.logger.Info("building a new version of the read model beside the live one", "live_version", live, "version", want)
		if b, err = loadBuild(ctx, r.pool, schema, r.proj.Name); err != nil || b == nil {
			return err
		}
	case b.Version > want:
		r.logger.Warn("a newer binary builds this read model; leaving its build alone", "build_version", b.Version, "version", want)
		return nil
	case b.Version < want:
		if _, err := r.pool.Exec(ctx, `UPDATE `+pgx.Identifier{schema, "projection_builds"}.Sanitize()+`
			SET version = $2, reason = $3, position = 0, rate = 0, started_at = clock_timestamp(), updated_at = now() WHERE name = $1`,
			r.proj.Name, want, ReasonUpgrade); err != nil {
			return fmt.Errorf("replace an older build: %w", err)
		}
		if b, err = loadBuild(ctx, r.pool, schema, r.proj.Name); err != nil || b == nil {
			return err
		}
	}
	bl := &builder{r: r, schema: schema, shadow: b.Schema, version: b.Version, from: live, pos: b.Position, rate: b.Rate,
		maxRate: b.MaxRate, epoch: b.StartedAt}
	return bl.run(ctx, b)
}

// schema is the service's schema (the pool's search_path), read once.
func (r *Runner) schema(ctx context.Context) (string, error) {
	r.schemaOnce.Lock()
	defer r.schemaOnce.Unlock()
	if r.schemaName != "" {
		return r.schemaName, nil
	}
	if err := r.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&r.schemaName); err != nil {
		return "", fmt.Errorf("current schema: %w", err)
	}
	return r.schemaName, nil
}

// builder fills one build's copies and swaps them in.
type builder struct {
	r              *Runner
	schema, shadow string
	version, from  int // the version built, and the live one it upgrades
	// epoch is the build's started_at, which every write of the build
	// expects: a builder that restarts the build changes it, so a second
	// builder (a leader that has not noticed yet that it lost its lock)
	// can only fail, never interleave.
	epoch         time.Time
	pos           uint64
	rate, maxRate float64
	lastFlush     time.Time
	started       time.Time
	applied       int
	// carry holds events taken for a swap that did not happen, applied first next.
	carry []eventlog.Record
	// swapBackoff is the pause after the last swap readers held up.
	swapBackoff time.Duration
}

// run prepares the copies when the build starts (or they are missing),
// then replays the stream into them until the swap.
func (b *builder) run(ctx context.Context, st *BuildStatus) error {
	r := b.r
	var exists bool
	if err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, b.shadow).Scan(&exists); err != nil {
		return fmt.Errorf("look up the build schema: %w", err)
	}
	fresh := b.pos == 0 || !exists
	if !fresh {
		// A migration that changed the live tables since the copies were
		// cloned (a new binary took the build over) makes them stale.
		shape, err := liveShape(ctx, r.pool, b.schema, r.proj.Tables)
		if err != nil {
			return err
		}
		if shape != st.liveShape {
			r.logger.Info("the live tables changed since the build began (a migration); starting it again")
			fresh = true
		}
	}
	if fresh {
		if err := b.prepare(ctx); err != nil {
			return err
		}
	}
	r.logger.Info("building the read model beside the live one", "reason", st.Reason, "version", b.version,
		"position", b.pos, "target", st.Target, "schema", b.shadow)
	b.started, b.lastFlush = time.Now(), time.Now()

	readCtx, stopReading := context.WithCancelCause(ctx)
	defer stopReading(nil)
	recs := make(chan eventlog.Record, r.batch)
	readErr := make(chan error, 1)
	go func() {
		readErr <- r.log.Read(readCtx, b.pos+1, r.proj.Subjects, func(rec eventlog.Record) error {
			select {
			case recs <- rec:
				return nil
			case <-readCtx.Done():
				return context.Cause(readCtx)
			}
		}, eventlog.WithDecoding(r.decoding))
	}()
	src := &source{recs: recs, errs: readErr}

	limit := r.batch
	if b.maxRate > 0 {
		limit = max(1, min(limit, int(b.maxRate/10)))
	}
	for {
		batch := b.carry
		b.carry = nil
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case err := <-readErr:
				return fmt.Errorf("read the stream: %w", err)
			case rec := <-recs:
				batch = append(batch, rec)
			case <-time.After(idleSwap):
				if done, err := b.trySwap(ctx, src); done || err != nil {
					return err
				}
				continue
			}
		}
	drain:
		for len(batch) < limit {
			select {
			case rec := <-recs:
				batch = append(batch, rec)
			default:
				break drain
			}
		}
		began := time.Now()
		if err := b.flush(ctx, batch); err != nil {
			return err
		}
		if b.maxRate > 0 {
			if pause := time.Duration(float64(len(batch))/b.maxRate*float64(time.Second)) - time.Since(began); pause > 0 && !sleep(ctx, pause) {
				return context.Cause(ctx)
			}
		}
		// Close behind the live projection: swap without waiting for a lull.
		cp, err := Checkpoint(ctx, r.pool, r.proj.Name)
		if err != nil {
			return err
		}
		if b.pos >= st.Target && cp <= b.pos+uint64(r.batch) {
			if done, err := b.trySwap(ctx, src); done || err != nil {
				return err
			}
		}
	}
}

// source is where the builder's events come from.
type source struct {
	recs <-chan eventlog.Record
	errs <-chan error
}

// prepare creates the build schema with empty copies of the live tables,
// upgraded to the version built, and puts the build back at its start.
func (b *builder) prepare(ctx context.Context) error {
	r := b.r
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE `+pgx.Identifier{b.schema, "projection_builds"}.Sanitize()+`
			SET position = 0, rate = 0, started_at = clock_timestamp(), updated_at = now()
			WHERE name = $1 AND version = $2 AND started_at = $3 RETURNING started_at`, r.proj.Name, b.version, b.epoch).Scan(&b.epoch)
		if errors.Is(err, pgx.ErrNoRows) {
			return errBuildMoved
		}
		if err != nil {
			return fmt.Errorf("restart build: %w", err)
		}
		shape, err := liveShape(ctx, tx, b.schema, r.proj.Tables)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE `+pgx.Identifier{b.schema, "projection_builds"}.Sanitize()+` SET live_shape = $2 WHERE name = $1`,
			r.proj.Name, shape); err != nil {
			return fmt.Errorf("record the live tables' shape: %w", err)
		}
		shadow := pgx.Identifier{b.shadow}.Sanitize()
		if _, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+shadow+` CASCADE`); err != nil {
			return fmt.Errorf("drop an old build schema: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+shadow); err != nil {
			return fmt.Errorf("create the build schema: %w", err)
		}
		if err := cloneTables(ctx, tx, b.schema, b.shadow, r.proj.Tables); err != nil {
			return err
		}
		if b.from < b.version && r.proj.Upgrade != nil {
			if err := setSearchPath(ctx, tx, b.shadow); err != nil {
				return err
			}
			if err := r.proj.Upgrade(ctx, tx, b.from); err != nil {
				return fmt.Errorf("upgrade the copies from version %d to %d: %w", b.from, b.version, err)
			}
		}
		for _, t := range r.proj.Tables {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{b.shadow, t}.Sanitize()).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("table %s is neither in the schema nor created by Upgrade", t)
			}
		}
		b.pos, b.rate = 0, 0
		return nil
	})
}

// liveShape sums up the definitions of the tables of schema that exist
// (columns, constraints, indexes): it changes when a migration changes them.
func liveShape(ctx context.Context, q queryRower, schema string, tables []string) (string, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{schema, t}.Sanitize()
	}
	var shape string
	err := q.QueryRow(ctx, `
		WITH t AS (SELECT to_regclass(n) AS oid FROM unnest($1::text[]) n)
		SELECT coalesce(md5(string_agg(d, E'\n' ORDER BY d)), '') FROM (
			SELECT c.relname || ' column ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text ||
				coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '') AS d
			FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
			LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
			WHERE a.attrelid IN (SELECT oid FROM t) AND a.attnum > 0 AND NOT a.attisdropped
			UNION ALL
			SELECT c.relname || ' constraint ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
			FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE k.conrelid IN (SELECT oid FROM t)
			UNION ALL
			SELECT c.relname || ' index ' || pg_get_indexdef(x.indexrelid)
			FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
			WHERE x.indrelid IN (SELECT oid FROM t)
		) defs`, names).Scan(&shape)
	if err != nil {
		return "", fmt.Errorf("read the live tables' shape: %w", err)
	}
	return shape, nil
}

// setSearchPath confines the rest of tx to the given schemas.
func setSearchPath(ctx context.Context, tx pgx.Tx, schemas ...string) error {
	path := make([]string, len(schemas))
	for i, s := range schemas {
		path[i] = pgx.Identifier{s}.Sanitize()
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, strings.Join(path, ", ")); err != nil {
		return fmt.Errorf("set search_path: %w", err)
	}
	return nil
}

// applyToCopies applies records after the build's position to the copies,
// inside tx (whose search_path it confines to the build schema), and returns
// the new position.
func (b *builder) applyToCopies(ctx context.Context, tx pgx.Tx, batch []eventlog.Record) (uint64, error) {
	if err := setSearchPath(ctx, tx, b.shadow); err != nil {
		return 0, err
	}
	next := b.pos
	recs := make([]eventlog.Record, 0, len(batch))
	for _, rec := range batch {
		if rec.Seq <= next {
			continue
		}
		if !rec.Skipped {
			recs = append(recs, rec)
		}
		next = rec.Seq
	}
	if err := b.r.proj.applyAll(ctx, tx, recs); err != nil {
		return 0, fmt.Errorf("the copies: %w", err)
	}
	return next, nil
}

// flush applies a batch to the copies in one transaction that also advances
// the build's position.
func (b *builder) flush(ctx context.Context, batch []eventlog.Record) error {
	r := b.r
	var next uint64
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var err error
		if next, err = b.applyToCopies(ctx, tx, batch); err != nil {
			return err
		}
		now := time.Now()
		rate := b.rate
		if dt := now.Sub(b.lastFlush).Seconds(); dt > 0 && next > b.pos {
			inst := float64(next-b.pos) / dt
			if rate == 0 {
				rate = inst
			} else {
				rate = 0.7*rate + 0.3*inst
			}
		}
		tag, err := tx.Exec(ctx, `UPDATE `+pgx.Identifier{b.schema, "projection_builds"}.Sanitize()+`
			SET position = $2, rate = $3, updated_at = now() WHERE name = $1 AND position = $4 AND version = $5 AND started_at = $6`,
			r.proj.Name, int64(next), rate, int64(b.pos), b.version, b.epoch)
		if err != nil {
			return fmt.Errorf("advance the build: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return errBuildMoved
		}
		b.rate = rate
		return nil
	})
	if err != nil {
		return err
	}
	b.applied += len(batch)
	b.pos, b.lastFlush = next, time.Now()
	return nil
}

// trySwap swaps the copies in if they have caught up with the live
// checkpoint (taking the last events from src inside the swap), and reports
// whether it did. A swap that could not get its locks in time, or found the
// live projection too far ahead, leaves everything as it was.
func (b *builder) trySwap(ctx context.Context, src *source) (bool, error) {
	r := b.r
	if hold := r.swapHold(); hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
	}
	var (
		taken   []eventlog.Record
		swapped uint64
	)
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, fmt.Sprintf("%dms", swapLockTimeout.Milliseconds())); err != nil {
			return err
		}
		checkpoints := pgx.Identifier{b.schema, "projection_checkpoints"}.Sanitize()
		if _, err := tx.Exec(ctx, `INSERT INTO `+checkpoints+` (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, r.proj.Name); err != nil {
			return err
		}
		var live int64
		if err := tx.QueryRow(ctx, `SELECT last_seq FROM `+checkpoints+` WHERE name = $1 FOR UPDATE`, r.proj.Name).Scan(&live); err != nil {
			return fmt.Errorf("lock the checkpoint: %w", err)
		}
		if uint64(live) > b.pos+uint64(4*r.batch) {
			return errNotCaughtUp
		}
		// The events between the copies and the live tables are in the
		// stream: take them (the live batches wait for this transaction).
		// Those of a stream with Bounds may have expired since the live
		// tables applied them: the stream's newest event on the subjects
		// is then as far as there is to read.
		head, err := r.log.LastSeqOf(ctx, r.proj.Subjects...)
		if err != nil {
			return fmt.Errorf("read the stream's head: %w", err)
		}
		last := b.pos
		wait := time.NewTimer(swapWaitEvents)
		defer wait.Stop()
		for last < uint64(live) && last < head {
			select {
			case rec := <-src.recs:
				taken = append(taken, rec)
				last = max(last, rec.Seq)
			case err := <-src.errs:
				return fmt.Errorf("read the stream: %w", err)
			case <-wait.C:
				return errNotCaughtUp
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		next, err := b.applyToCopies(ctx, tx, taken)
		if err != nil {
			return err
		}
		if err := setSearchPath(ctx, tx, b.schema); err != nil {
			return err
		}
		if err := b.swapTables(ctx, tx); err != nil {
			return err
		}
		swapped = max(next, uint64(live))
		if _, err := tx.Exec(ctx, `UPDATE `+checkpoints+` SET last_seq = $2, version = $3, updated_at = now() WHERE name = $1`,
			r.proj.Name, int64(swapped), b.version); err != nil {
			return fmt.Errorf("set the checkpoint: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM `+pgx.Identifier{b.schema, "projection_builds"}.Sanitize()+`
			WHERE name = $1 AND version = $2 AND position = $3 AND started_at = $4`, r.proj.Name, b.version, int64(b.pos), b.epoch)
		if err != nil {
			return fmt.Errorf("end the build: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return errBuildMoved
		}
		if _, err := tx.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{b.shadow}.Sanitize()+` CASCADE`); err != nil {
			return fmt.Errorf("drop the build schema: %w", err)
		}
		if err := notify(ctx, tx, r.proj.Name, fmt.Sprint(swapped)); err != nil {
			return err
		}
		return notify(ctx, tx, r.proj.Name, "swapped")
	})
	switch {
	case err == nil:
		r.logger.Info("rebuilt read model swapped in", "version", b.version, "checkpoint", swapped,
			"events", b.applied+len(taken), "took", time.Since(b.started).Round(time.Millisecond))
		return true, nil
	case errors.Is(err, errNotCaughtUp):
		b.carry = taken
		return false, nil
	case isLockTimeout(err):
		b.carry = taken
		b.swapBackoff = min(max(2*b.swapBackoff, swapRetryMin), swapRetryMax)
		r.logger.Info("readers held the tables; trying the swap again later", "lock_timeout", swapLockTimeout, "retry_in", b.swapBackoff)
		if !sleep(ctx, b.swapBackoff) {
			return false, context.Cause(ctx)
		}
		return false, nil
	default:
		b.carry = taken
		return false, err
	}
}

// swapTables drops the live tables and moves the copies in their place.
func (b *builder) swapTables(ctx context.Context, tx pgx.Tx) error {
	var live []string
	for _, t := range b.r.proj.Tables {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{b.schema, t}.Sanitize()).Scan(&ok); err != nil {
			return err
		}
		if ok {
			live = append(live, pgx.Identifier{b.schema, t}.Sanitize())
		}
	}
	if len(live) > 0 {
		if _, err := tx.Exec(ctx, `DROP TABLE `+strings.Join(live, ", ")); err != nil {
			return fmt.Errorf("drop the live tables: %w", err)
		}
	}
	for _, t := range b.r.proj.Tables {
		if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{b.shadow, t}.Sanitize()+` SET SCHEMA `+pgx.Identifier{b.schema}.Sanitize()); err != nil {
			return fmt.Errorf("move %s in: %w", t, err)
		}
	}
	return nil
}

// isLockTimeout reports PostgreSQL's lock_not_available (lock_timeout).
func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}
