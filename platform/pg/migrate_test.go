package pg_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/testkit"
)

// file makes an fstest file.
func file(sql string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(sql)} }

// logged migrations record each run in a log table, so a migration applied
// twice shows up twice.
var logged = fstest.MapFS{
	"0001_log.sql":   file("CREATE TABLE log (version text); INSERT INTO log VALUES ('0001');"),
	"0002_users.sql": file("SELECT pg_sleep(0.05); CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);\nINSERT INTO log VALUES ('0002');"),
	"0003_index.sql": file("CREATE INDEX users_name ON users (name); INSERT INTO log VALUES ('0003');"),
	"README.md":      file("not a migration"),
	"old/0000.sql":   file("this is not at the root and is never run"),
}

// versions returns schema_migrations' versions in order.
func versions(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(testContext(t), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// runs returns the log table: one row per time a migration ran.
func runs(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(testContext(t), "SELECT version FROM log ORDER BY version")
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrateAppliesEachFileOnce(t *testing.T) {
	pool := connect(t, testkit.Postgres(t), "svc")
	first := fstest.MapFS{"0001_log.sql": logged["0001_log.sql"], "0002_users.sql": logged["0002_users.sql"]}
	steps := []struct {
		name     string
		fs       fstest.MapFS
		runs     []string // the log: one row per migration run
		versions []string // schema_migrations
	}{
		{"first run", first, []string{"0001", "0002"}, []string{"0001_log", "0002_users"}},
		{"second run is a no-op", first, []string{"0001", "0002"}, []string{"0001_log", "0002_users"}},
		{"new file applies alone", logged, []string{"0001", "0002", "0003"}, []string{"0001_log", "0002_users", "0003_index"}},
	}
	for _, s := range steps {
		if err := pg.Migrate(testContext(t), pool, s.fs); err != nil {
			t.Fatalf("%s: Migrate: %v", s.name, err)
		}
		if got := runs(t, pool); !slices.Equal(got, s.runs) {
			t.Fatalf("%s: migrations ran %v, want %v", s.name, got, s.runs)
		}
		if got := versions(t, pool); !slices.Equal(got, s.versions) {
			t.Fatalf("%s: schema_migrations = %v, want %v", s.name, got, s.versions)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM schema_migrations WHERE applied_at > now() - interval '1 hour'"); n != 3 {
		t.Fatalf("%d versions with a recent applied_at, want 3", n)
	}
}

func TestMigrateConcurrentReplicas(t *testing.T) {
	url := testkit.Postgres(t)
	const replicas = 4
	pools := make([]*pgxpool.Pool, replicas) // each replica has its own pool
	for i := range pools {
		pools[i] = connect(t, url, "svc")
	}
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	for i, pool := range pools {
		wg.Go(func() { errs[i] = pg.Migrate(testContext(t), pool, logged) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	if got, want := runs(t, pools[0]), []string{"0001", "0002", "0003"}; !slices.Equal(got, want) {
		t.Fatalf("migrations ran %v, want each exactly once: %v", got, want)
	}
}

func TestMigrateBrokenFileRollsBack(t *testing.T) {
	pool := connect(t, testkit.Postgres(t), "svc")
	broken := fstest.MapFS{
		"0001_log.sql":    logged["0001_log.sql"],
		"0002_broken.sql": file("CREATE TABLE half (id int); INSERT INTO log VALUES ('0002'); SELECT no_such_function();"),
		"0003_never.sql":  file("INSERT INTO log VALUES ('0003');"),
	}
	err := pg.Migrate(testContext(t), pool, broken)
	if err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Fatalf("Migrate = %v, want an error naming 0002_broken.sql", err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42883" {
		t.Fatalf("error %v does not carry the undefined_function PgError", err)
	}
	if got := runs(t, pool); !slices.Equal(got, []string{"0001"}) {
		t.Fatalf("log = %v, want only 0001: the broken file must roll back and later files not run", got)
	}
	if got := versions(t, pool); !slices.Equal(got, []string{"0001_log"}) {
		t.Fatalf("schema_migrations = %v, want [0001_log]", got)
	}
	if n := count(t, pool, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'half'"); n != 0 {
		t.Fatal("table from the broken migration survived")
	}

	broken["0002_broken.sql"] = file("CREATE TABLE half (id int); INSERT INTO log VALUES ('0002');")
	if err := pg.Migrate(testContext(t), pool, broken); err != nil {
		t.Fatalf("Migrate after the fix: %v", err)
	}
	if got := runs(t, pool); !slices.Equal(got, []string{"0001", "0002", "0003"}) {
		t.Fatalf("log after the fix = %v", got)
	}
}

func TestMigrateSchemasAreIsolated(t *testing.T) {
	url := testkit.Postgres(t)
	schemas := []string{"alpha", "beta"}
	pools := map[string]*pgxpool.Pool{}
	for _, s := range schemas {
		pools[s] = connect(t, url, s)
		if err := pg.Migrate(testContext(t), pools[s], logged); err != nil {
			t.Fatalf("Migrate %s: %v", s, err)
		}
		if _, err := pools[s].Exec(testContext(t), "INSERT INTO users VALUES (1, $1)", s); err != nil {
			t.Fatalf("insert into %s: %v", s, err)
		}
	}
	for _, s := range schemas {
		var name string
		if err := pools[s].QueryRow(testContext(t), "SELECT string_agg(name, ',') FROM users").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name != s {
			t.Fatalf("schema %s sees users %q, want only its own row %q", s, name, s)
		}
		if got := runs(t, pools[s]); !slices.Equal(got, []string{"0001", "0002", "0003"}) {
			t.Fatalf("schema %s: migrations ran %v", s, got)
		}
	}
}
