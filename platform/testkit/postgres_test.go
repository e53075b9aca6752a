package testkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// dial connects to url, closing the connection when the test ends.
func dial(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// queryInt runs a query returning one integer.
func queryInt(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// userTables counts the tables outside the system schemas.
const userTables = "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"

var testDBName = regexp.MustCompile(`^t_[0-9a-f]{16}$`)

func TestPostgresGivesFreshDatabases(t *testing.T) {
	a, b := dial(t, Postgres(t)), dial(t, Postgres(t))
	var nameA, nameB string
	for _, c := range []struct {
		conn *pgx.Conn
		name *string
	}{{a, &nameA}, {b, &nameB}} {
		if err := c.conn.QueryRow(context.Background(), "SELECT current_database()").Scan(c.name); err != nil {
			t.Fatal(err)
		}
		if !testDBName.MatchString(*c.name) {
			t.Fatalf("database name %q does not match %v", *c.name, testDBName)
		}
		if n := queryInt(t, c.conn, userTables); n != 0 {
			t.Fatalf("fresh database %s has %d tables", *c.name, n)
		}
	}
	if nameA == nameB {
		t.Fatalf("two calls returned the same database %s", nameA)
	}
	if _, err := a.Exec(context.Background(), "CREATE TABLE only_in_a (id int)"); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, b, userTables); n != 0 {
		t.Fatalf("table created in %s is visible in %s", nameA, nameB)
	}
}

func TestPostgresDropsDatabaseAfterTest(t *testing.T) {
	var name string
	var leftOpen *pgx.Conn
	t.Run("user", func(t *testing.T) {
		url := Postgres(t)
		// A connection the test forgets to close must not block the drop.
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		leftOpen = conn
		t.Cleanup(func() { leftOpen.Close(context.Background()) }) // runs after the drop
		if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	observer := dial(t, Postgres(t))
	if n := queryInt(t, observer, "SELECT count(*) FROM pg_database WHERE datname = $1", name); n != 0 {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestPostgresConcurrentTests(t *testing.T) {
	names := make(chan string, 8)
	t.Run("group", func(t *testing.T) {
		for i := range cap(names) {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				conn := dial(t, Postgres(t))
				var name string
				if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
					t.Fatal(err)
				}
				names <- name
			})
		}
	})
	close(names)
	seen := map[string]bool{}
	for n := range names {
		if seen[n] {
			t.Fatalf("database %s handed out twice", n)
		}
		seen[n] = true
	}
	if len(seen) != cap(names) {
		t.Fatalf("got %d databases, want %d", len(seen), cap(names))
	}
}

func TestExternalServer(t *testing.T) {
	srv, err := sharedServer()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(srv.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	keywordForm := fmt.Sprintf("host='%s' port=%d user=%s password='%s' dbname=postgres sslmode=disable",
		cfg.Host, cfg.Port, cfg.User, cfg.Password)
	tests := []struct{ name, adminURL string }{
		{"url form", srv.adminURL},
		{"keyword/value form", keywordForm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ext, err := openServer(ctx, tt.adminURL)
			if err != nil {
				t.Fatalf("openServer: %v", err)
			}
			defer ext.close(ctx)
			name, err := ext.createDatabase(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conn := dial(t, ext.url(name))
			var got string
			if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != name {
				t.Fatalf("URL for %s connects to %s", name, got)
			}
			conn.Close(ctx)
			if err := ext.dropDatabase(ctx, name); err != nil {
				t.Fatal(err)
			}
			if n := queryInt(t, dial(t, tt.adminURL), "SELECT count(*) FROM pg_database WHERE datname = $1", name); n != 0 {
				t.Fatalf("database %s not dropped", name)
			}
		})
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u:p@db:5432/postgres?sslmode=disable", "postgres://u:p@db:5432/t_1?sslmode=disable"},
		{"postgresql://u@/postgres?host=%2Ftmp%2Fa%20b&dbname=other", "postgresql://u@/t_1?host=%2Ftmp%2Fa%20b"},
		{"host=/tmp user=u dbname=postgres", "host=/tmp user=u dbname=postgres dbname=t_1"},
	}
	for _, tt := range tests {
		got := withDatabase(tt.in, "t_1")
		if got != tt.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tt.in, got, tt.want)
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", got, err)
		}
		if cfg.Database != "t_1" {
			t.Errorf("%q connects to database %q, want t_1", got, cfg.Database)
		}
	}
}

func TestRemoveStaleClusters(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID, livePID := dead.Process.Pid, os.Getppid()
	tests := []struct {
		name         string
		ownerPID     int
		postmaster   int // pid in data/postmaster.pid; 0 for none
		wantRemained bool
	}{
		{"owner dead", deadPID, 0, false},
		{"owner dead, stale postmaster.pid", deadPID, deadPID, false},
		{"owner dead, server still running", deadPID, livePID, true},
		{"owner alive", livePID, 0, true},
	}
	dirs := make([]string, len(tests))
	for i, tt := range tests {
		dir, err := os.MkdirTemp(os.TempDir(), fmt.Sprintf("%s%d-", clusterDirPrefix, tt.ownerPID))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		if tt.postmaster != 0 {
			pidFile := fmt.Sprintf("%d\n%s/data\n", tt.postmaster, dir)
			if err := os.WriteFile(filepath.Join(dir, "data", "postmaster.pid"), []byte(pidFile), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		dirs[i] = dir
	}
	removeStaleClusters()
	for i, tt := range tests {
		_, err := os.Stat(dirs[i])
		if remained := err == nil; remained != tt.wantRemained {
			t.Errorf("%s: directory remained = %v, want %v", tt.name, remained, tt.wantRemained)
		}
	}
	srv, err := sharedServer()
	if err != nil {
		t.Fatalf("shared server: %v", err)
	}
	if srv.cluster != nil { // nil when GATEHOUSE_TEST_DATABASE_URL is set
		if _, err := os.Stat(srv.cluster.Dir()); err != nil {
			t.Fatalf("own cluster directory removed: %v", err)
		}
	}
}
