package synapse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Schema versions the reader accepts.
const (
	// MinSchemaVersion is the oldest Synapse schema read: the only full
	// snapshot Synapse still ships (full_schemas/72).
	MinSchemaVersion = 72
	// TestedSchemaVersion is the newest schema the reader was written against
	// (Synapse 1.157); newer ones are read with a note in the report.
	TestedSchemaVersion = 94
)

// Mode says what a Source is opened for, which decides how it locks.
type Mode int

// Modes.
const (
	// ModeCheck reads while Synapse may run: the tables are locked in ACCESS
	// SHARE mode (which blocks nothing Synapse does), and a probe tries the
	// EXCLUSIVE lock a migration needs, then lets go of it.
	ModeCheck Mode = iota
	// ModeDryRun reads like ModeCheck: nothing is written anywhere.
	ModeDryRun
	// ModeMigrate takes EXCLUSIVE locks with NOWAIT and keeps them until
	// Close: Open fails with ErrSynapseRunning when Synapse holds the tables,
	// and Synapse cannot write while the migration reads.
	ModeMigrate
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case ModeCheck:
		return "check"
	case ModeDryRun:
		return "dry-run"
	case ModeMigrate:
		return "migrate"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// LockedTables are the tables a migration locks: those whose rows become
// Gatehouse's users, emails, sessions and links.
var LockedTables = []string{
	"users", "user_threepids", "user_external_ids", "devices", "access_tokens", "refresh_tokens",
	"profiles", "registration_tokens",
}

// requiredTables must exist in a Synapse database the reader reads.
var requiredTables = []string{
	"schema_version", "users", "user_threepids", "devices", "access_tokens", "refresh_tokens",
	"user_external_ids", "profiles", "erased_users", "users_pending_deactivation", "registration_tokens",
}

// applicationName names a migration's sessions on the Synapse database.
const applicationName = "gatehouse-migrate"

// ErrSynapseRunning is returned by Open in ModeMigrate when another session
// holds a lock on the Synapse tables that EXCLUSIVE mode conflicts with:
// Synapse (or something else) is writing to them.
var ErrSynapseRunning = errors.New("the Synapse tables are in use: stop Synapse before migrating (if it is stopped, an autovacuum holds them: try again in a minute, or run VACUUM first)")

// SchemaError says the database is not a Synapse database the reader can read.
type SchemaError struct {
	// Version is the schema version found (0 when there is none).
	Version int
	// Reason says what is wrong, for the operator.
	Reason string
}

func (e *SchemaError) Error() string { return e.Reason }

// Options configure Open.
type Options struct {
	// Mode decides the locks; see Mode.
	Mode Mode
	// ServerName is Synapse's server_name: MXIDs of other servers are skipped.
	ServerName string
	// Now is the clock deciding which tokens have expired; time.Now when nil.
	Now func() time.Time
}

// Source is one consistent, read-only view of a Synapse database: a single
// SERIALIZABLE READ ONLY DEFERRABLE transaction on a session that is itself
// read-only, kept until Close, which rolls it back. It never writes. The
// streams read one after the other; a Source is not safe for concurrent use.
type Source struct {
	conn *pgx.Conn
	tx   pgx.Tx
	opts Options
	// Info describes what Open found.
	Info Info
}

// Info is what Open learned about the database.
type Info struct {
	// SchemaVersion is schema_version.version.
	SchemaVersion int
	// Locked, Suspended, Approved and FullUserID tell whether the optional
	// columns users.locked (v80), users.suspended (v85), users.approved (v73)
	// and profiles.full_user_id (v76) exist.
	Locked, Suspended, Approved, FullUserID bool
	// Probe is the outcome of the lock probe.
	Probe LockProbe
	// OtherSessions are the other sessions connected to this database, by
	// application name (or role); Synapse keeps a pool of them open.
	OtherSessions []string
	// Estimates are pg_class.reltuples of each locked table (-1: never
	// analysed), cheap row counts for progress.
	Estimates map[string]int64
}

// LockProbe is whether the EXCLUSIVE lock a migration takes was available.
type LockProbe int

// Lock probe outcomes.
const (
	// ProbeFree: the lock was granted, nobody else held the tables.
	ProbeFree LockProbe = iota
	// ProbeBusy: another session holds a conflicting lock (Synapse writing).
	ProbeBusy
	// ProbeDenied: this role may not take EXCLUSIVE locks (it needs UPDATE,
	// DELETE or TRUNCATE on the tables); a migration needs a role that may.
	ProbeDenied
)

// Open connects to the Synapse database at databaseURL, starts the read-only
// transaction, locks the tables as opts.Mode says, and checks the schema:
// a *SchemaError when it is not a Synapse database of version
// MinSchemaVersion or later, ErrSynapseRunning (ModeMigrate) when Synapse
// holds the tables.
func Open(ctx context.Context, databaseURL string, opts Options) (*Source, error) {
	if opts.ServerName == "" {
		return nil, errors.New("synapse: no server name to read MXIDs with")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, errors.New("synapse: the database URL does not parse") // the error may quote the password
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = applicationName
	// Every transaction of this session is read-only, not just ours.
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	// The streams are a few large scans and hash joins: compiling them (JIT)
	// costs more than it saves, and hash tables of millions of users should
	// not spill to disk at the default 4 MB.
	cfg.RuntimeParams["jit"] = "off"
	cfg.RuntimeParams["work_mem"] = "64MB"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("synapse: connect to %s: %w", redactURL(databaseURL), err)
	}
	s := &Source{conn: conn, opts: opts}
	for waited := time.Duration(0); ; waited += earlierRunPoll {
		err := s.begin(ctx)
		if err == nil {
			return s, nil
		}
		if s.tx != nil {
			s.tx.Rollback(ctx) // a refused lock aborted it
			s.tx = nil
		}
		if !errors.Is(err, ErrSynapseRunning) || waited >= earlierRunWait || !s.heldByEarlierRuns(ctx) {
			conn.Close(context.WithoutCancel(ctx)) // ends the transaction too
			return nil, err
		}
		// An earlier migration holds the tables: one killed a moment ago,
		// whose session the database has not ended yet, or one finishing.
		select {
		case <-ctx.Done():
			conn.Close(context.WithoutCancel(ctx))
			return nil, ctx.Err()
		case <-time.After(earlierRunPoll):
		}
	}
}

// earlierRunWait bounds how long a migration waits for the sessions of
// earlier migrations to let go of the Synapse tables, polled every
// earlierRunPoll: a run killed (kill -9) and started again at once finds
// the database still ending the killed run's session. A Synapse holding the
// tables is not waited for.
const (
	earlierRunWait = time.Minute
	earlierRunPoll = 500 * time.Millisecond
)

// heldByEarlierRuns reports whether every other session holding a lock on
// the Synapse tables is a migration's (its application_name). False when
// none does or it cannot tell.
func (s *Source) heldByEarlierRuns(ctx context.Context) bool {
	rows, err := s.conn.Query(ctx, `
		SELECT DISTINCT coalesce(a.application_name, '')
		FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
		WHERE l.pid <> pg_backend_pid() AND l.granted AND l.relation IN (
			SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1))`,
		LockedTables)
	if err != nil {
		return false
	}
	var names []string
	var name string
	if _, err := pgx.ForEachRow(rows, []any{&name}, func() error { names = append(names, name); return nil }); err != nil {
		return false
	}
	return len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return n != applicationName })
}

// begin checks the tables, starts the transaction, locks, and reads the
// schema version.
func (s *Source) begin(ctx context.Context) error {
	// The catalog is read before the transaction: a serializable transaction
	// takes its snapshot at its first query, and that must come after the
	// locks, so the rows read are the ones the locks protect.
	tables, err := s.tables(ctx)
	if err != nil {
		return err
	}
	if missing := missingTables(tables); len(missing) > 0 {
		return &SchemaError{Reason: fmt.Sprintf(
			"not a Synapse database (or not its schema on the search path): no table %s", strings.Join(missing, ", "))}
	}
	tx, err := s.conn.BeginTx(ctx, pgx.TxOptions{
		IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly, DeferrableMode: pgx.Deferrable,
	})
	if err != nil {
		return fmt.Errorf("synapse: begin: %w", err)
	}
	s.tx = tx
	if err := s.lock(ctx); err != nil {
		return err
	}
	if err := s.readSchema(ctx, tables); err != nil {
		return err
	}
	return s.readActivity(ctx)
}

// tables returns the columns of each required table of the current schema.
func (s *Source) tables(ctx context.Context) (map[string][]string, error) {
	rows, err := s.conn.Query(ctx, `
		SELECT c.relname, a.attname
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
		  AND c.relname = ANY($1)`, requiredTables)
	if err != nil {
		return nil, fmt.Errorf("synapse: list tables: %w", err)
	}
	out := map[string][]string{}
	var table, column string
	_, err = pgx.ForEachRow(rows, []any{&table, &column}, func() error {
		out[table] = append(out[table], column)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("synapse: list tables: %w", err)
	}
	return out, nil
}

// missingTables lists the required tables absent from tables.
func missingTables(tables map[string][]string) []string {
	var out []string
	for _, t := range requiredTables {
		if _, ok := tables[t]; !ok {
			out = append(out, t)
		}
	}
	return out
}

// lock takes the locks of the mode; see Mode.
func (s *Source) lock(ctx context.Context) error {
	list := strings.Join(LockedTables, ", ")
	if s.opts.Mode == ModeMigrate {
		_, err := s.tx.Exec(ctx, "LOCK TABLE "+list+" IN EXCLUSIVE MODE NOWAIT")
		switch pgCode(err) {
		case "":
			s.Info.Probe = ProbeFree
			return nil
		case "55P03": // lock_not_available
			return ErrSynapseRunning
		case "42501": // insufficient_privilege
			return fmt.Errorf("synapse: this database role may not lock the Synapse tables in EXCLUSIVE mode (it needs UPDATE on them), which a migration does to keep Synapse out: %w", err)
		}
		return fmt.Errorf("synapse: lock: %w", err)
	}
	if _, err := s.tx.Exec(ctx, "LOCK TABLE "+list+" IN ACCESS SHARE MODE NOWAIT"); err != nil {
		if pgCode(err) == "55P03" {
			return fmt.Errorf("synapse: another session holds the Synapse tables exclusively (a schema upgrade or VACUUM FULL?): %w", err)
		}
		return fmt.Errorf("synapse: lock: %w", err)
	}
	// The probe: would a migration's lock be granted now? Rolling back to
	// the savepoint releases it at once.
	if _, err := s.tx.Exec(ctx, "SAVEPOINT probe"); err != nil {
		return fmt.Errorf("synapse: lock probe: %w", err)
	}
	_, err := s.tx.Exec(ctx, "LOCK TABLE "+list+" IN EXCLUSIVE MODE NOWAIT")
	switch pgCode(err) {
	case "":
		s.Info.Probe = ProbeFree
	case "55P03":
		s.Info.Probe = ProbeBusy
	case "42501":
		s.Info.Probe = ProbeDenied
	default:
		return fmt.Errorf("synapse: lock probe: %w", err)
	}
	if _, err := s.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT probe"); err != nil {
		return fmt.Errorf("synapse: lock probe: %w", err)
	}
	return nil
}

// readSchema reads the schema version and which optional columns exist.
func (s *Source) readSchema(ctx context.Context, tables map[string][]string) error {
	var version int
	if err := s.tx.QueryRow(ctx, "SELECT version FROM schema_version").Scan(&version); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return &SchemaError{Reason: "schema_version is empty: Synapse never finished preparing this database"}
		}
		return fmt.Errorf("synapse: read schema_version: %w", err)
	}
	s.Info.SchemaVersion = version
	if version < MinSchemaVersion {
		return &SchemaError{Version: version, Reason: fmt.Sprintf(
			"the Synapse database has schema version %d; Gatehouse reads version %d (Synapse 1.78) and later: upgrade Synapse and start it once, then run the migration again",
			version, MinSchemaVersion)}
	}
	s.Info.Locked = slices.Contains(tables["users"], "locked")
	s.Info.Suspended = slices.Contains(tables["users"], "suspended")
	s.Info.Approved = slices.Contains(tables["users"], "approved")
	s.Info.FullUserID = slices.Contains(tables["profiles"], "full_user_id")
	return nil
}

// readActivity reads row estimates and the other sessions on the database.
func (s *Source) readActivity(ctx context.Context) error {
	s.Info.Estimates = map[string]int64{}
	rows, err := s.tx.Query(ctx, `
		SELECT relname, reltuples::bigint FROM pg_catalog.pg_class
		WHERE relnamespace = current_schema()::regnamespace AND relname = ANY($1)`, LockedTables)
	if err != nil {
		return fmt.Errorf("synapse: estimates: %w", err)
	}
	var name string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { s.Info.Estimates[name] = n; return nil }); err != nil {
		return fmt.Errorf("synapse: estimates: %w", err)
	}
	rows, err = s.tx.Query(ctx, `
		SELECT coalesce(nullif(application_name, ''), usename::text, '?')
		FROM pg_catalog.pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
		ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("synapse: sessions: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&name}, func() error {
		s.Info.OtherSessions = append(s.Info.OtherSessions, name)
		return nil
	}); err != nil {
		return fmt.Errorf("synapse: sessions: %w", err)
	}
	return nil
}

// Close ends the transaction (a rollback: nothing was written) and the
// connection.
func (s *Source) Close(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	err := s.tx.Rollback(ctx) // never a commit: there is nothing to commit
	if cerr := s.conn.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

// pgCode returns the SQLSTATE of a PostgreSQL error, "" for nil, and "?"
// for any other error.
func pgCode(err error) string {
	if err == nil {
		return ""
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code
	}
	return "?"
}

// redactURL returns a database URL without its password, for messages.
func redactURL(u string) string {
	cfg, err := pgconn.ParseConfig(u)
	if err != nil {
		return "the Synapse database"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
