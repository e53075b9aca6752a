package pg_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a pool on url confined to schema, closed when the test ends.
func connect(t *testing.T, url, schema string) *pgxpool.Pool {
	t.Helper()
	pool, err := pg.Connect(testContext(t), url, schema)
	if err != nil {
		t.Fatalf("Connect(%s): %v", schema, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// count runs a query returning one integer.
func count(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := q.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestConnectUsesSchema(t *testing.T) {
	pool := connect(t, testkit.Postgres(t), "accounts")
	var schema string
	if err := pool.QueryRow(testContext(t), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if schema != "accounts" {
		t.Fatalf("current_schema() = %q, want accounts", schema)
	}
	if _, err := pool.Exec(testContext(t), "CREATE TABLE users (id int)"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'accounts' AND table_name = 'users'"); n != 1 {
		t.Fatalf("unqualified table not created in schema accounts")
	}
}

func TestConnectIsIdempotentAndConcurrent(t *testing.T) {
	url := testkit.Postgres(t)
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() {
			pool, err := pg.Connect(testContext(t), url, "shared")
			if err == nil {
				pool.Close()
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Connect: %v", err)
		}
	}
	pool := connect(t, url, "shared")
	if n := count(t, pool, "SELECT count(*) FROM pg_namespace WHERE nspname = 'shared'"); n != 1 {
		t.Fatalf("schema shared exists %d times", n)
	}
}

func TestConnectErrors(t *testing.T) {
	const secret = "s3cr3t-pw"
	url := testkit.Postgres(t)
	tests := []struct {
		name, url, schema, want string
	}{
		{"upper case schema", url, "Accounts", "invalid schema name"},
		{"leading digit", url, "1accounts", "invalid schema name"},
		{"punctuation", url, "a;drop", "invalid schema name"},
		{"empty schema", url, "", "invalid schema name"},
		{"unparsable URL", "postgres://u:" + secret + "@host:notaport/db", "accounts", "parse database URL"},
		{"unreachable server URL", "postgres://u:" + secret + "@/db?host=/nonexistent&connect_timeout=5", "accounts", "ping"},
		{"unreachable server keyword/value", "host=/nonexistent user=u password=" + secret + " dbname=db connect_timeout=5", "accounts", "ping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := pg.Connect(testContext(t), tt.url, tt.schema)
			if err == nil {
				pool.Close()
				t.Fatal("Connect succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q reveals the password", err)
			}
		})
	}
}

func TestCreateAndDropDatabase(t *testing.T) {
	admin := testkit.Postgres(t)
	adminConn := connect(t, admin, "public")
	const name = "Gatehouse Test-DB"
	exists := func() int {
		return count(t, adminConn, "SELECT count(*) FROM pg_database WHERE datname = $1", name)
	}
	for i := range 2 { // the second create finds it exists
		if err := pg.CreateDatabase(testContext(t), admin, name); err != nil {
			t.Fatalf("CreateDatabase #%d: %v", i+1, err)
		}
	}
	if exists() != 1 {
		t.Fatalf("database %q not created", name)
	}
	// A connected client does not stop the drop.
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = name
	client, err := pgx.ConnectConfig(testContext(t), cfg)
	if err != nil {
		t.Fatalf("connect to created database: %v", err)
	}
	defer client.Close(context.Background())
	for i := range 2 { // the second drop finds nothing to drop
		if err := pg.DropDatabase(testContext(t), admin, name); err != nil {
			t.Fatalf("DropDatabase #%d: %v", i+1, err)
		}
	}
	if exists() != 0 {
		t.Fatalf("database %q not dropped", name)
	}
}

func TestIsUniqueViolation(t *testing.T) {
	pool := connect(t, testkit.Postgres(t), "public")
	ctx := testContext(t)
	if _, err := pool.Exec(ctx, "CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	_, dup := pool.Exec(ctx, "INSERT INTO u VALUES (1)")
	_, missing := pool.Exec(ctx, "INSERT INTO nosuchtable VALUES (1)")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"duplicate key", dup, true},
		{"wrapped duplicate key", fmt.Errorf("create user: %w", dup), true},
		{"other database error", missing, false},
		{"unique code by hand", &pgconn.PgError{Code: "23505"}, true},
		{"plain error", errors.New("23505"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pg.IsUniqueViolation(tt.err); got != tt.want {
				t.Fatalf("IsUniqueViolation(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestInTx(t *testing.T) {
	pool := connect(t, testkit.Postgres(t), "public")
	if _, err := pool.Exec(testContext(t), "CREATE TABLE items (name text)"); err != nil {
		t.Fatal(err)
	}
	errBoom := errors.New("boom")
	insert := func(name string, then func() error) func(pgx.Tx) error {
		return func(tx pgx.Tx) error {
			if _, err := tx.Exec(context.Background(), "INSERT INTO items VALUES ($1)", name); err != nil {
				return err
			}
			return then()
		}
	}
	tests := []struct {
		name    string
		fn      func(pgx.Tx) error
		wantErr error
		panics  bool
		kept    int
	}{
		{"commit", insert("commit", func() error { return nil }), nil, false, 1},
		{"error rolls back", insert("error rolls back", func() error { return errBoom }), errBoom, false, 0},
		{"panic rolls back", insert("panic rolls back", func() error { panic(errBoom) }), nil, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				err = pg.InTx(testContext(t), pool, tt.fn)
				return false
			}()
			if panicked != tt.panics {
				t.Fatalf("panicked = %v, want %v", panicked, tt.panics)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("InTx error = %v, want %v", err, tt.wantErr)
			}
			if n := count(t, pool, "SELECT count(*) FROM items WHERE name = $1", tt.name); n != tt.kept {
				t.Fatalf("%d rows kept, want %d", n, tt.kept)
			}
		})
	}
	if n := count(t, pool, "SELECT count(*) FROM items"); n != 1 {
		t.Fatalf("%d rows in total, want 1", n)
	}
}
