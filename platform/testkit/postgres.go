package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/pgcluster"
)

// DatabaseURLEnv names the environment variable that points the test kit at an
// existing PostgreSQL server (a superuser connection URL) instead of starting a
// private cluster.
const DatabaseURLEnv = "GATEHOUSE_TEST_DATABASE_URL"

// templateDB is the empty database every test database is copied from.
const templateDB = "gatehouse_test_template"

// pgTimeout bounds the test kit's own PostgreSQL operations.
const pgTimeout = 2 * time.Minute

// shared is the test process's PostgreSQL server, set up by the first call to
// Postgres: the only global state of the package.
var shared struct {
	mu  sync.Mutex
	srv *pgServer
	err error
}

// Postgres returns the connection URL of a fresh, empty database for this
// test, dropped when the test ends. The databases live on a private cluster
// started on first use and shared by the test process (or on the server named
// by GATEHOUSE_TEST_DATABASE_URL). Packages that call Postgres should call
// Main from their TestMain so no server outlives the test binary.
func Postgres(t testing.TB) string {
	t.Helper()
	srv, err := sharedServer()
	if err != nil {
		t.Fatalf("testkit: postgres: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	name, err := srv.createDatabase(ctx)
	if err != nil {
		t.Fatalf("testkit: postgres: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		defer cancel()
		if err := srv.dropDatabase(ctx, name); err != nil {
			t.Errorf("testkit: postgres: %v", err)
		}
	})
	return srv.url(name)
}

// Main runs the package's tests, then stops the private PostgreSQL cluster if
// Postgres started one, removes its directory and exits with the tests' code.
// Call it from TestMain in every package that uses Postgres:
//
//	func TestMain(m *testing.M) { testkit.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit: it runs the tests, stops the private cluster
// and returns the exit code, for a TestMain with more to clean up.
func Run(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	srv := shared.srv
	shared.srv, shared.err = nil, errors.New("testkit: Postgres called after Main finished")
	shared.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		if err := srv.close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
		cancel()
	}
	return code
}

// sharedServer returns the process's server, setting it up on first use. A
// failed setup is remembered, so every test fails fast with the same error.
func sharedServer() (*pgServer, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil || shared.err != nil {
		return shared.srv, shared.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	if u := os.Getenv(DatabaseURLEnv); u != "" {
		shared.srv, shared.err = openServer(ctx, u)
	} else {
		shared.srv, shared.err = startServer(ctx)
	}
	return shared.srv, shared.err
}

// pgServer is a PostgreSQL server that test databases are made on.
type pgServer struct {
	adminURL string
	admin    *pgxpool.Pool
	url      func(dbname string) string
	cluster  *pgcluster.Cluster // nil for an external server
}

// clusterDirPrefix starts the names of private cluster directories in
// os.TempDir(); the owning process's pid follows.
const clusterDirPrefix = "gatehouse-pg-"

// startServer starts a private cluster under os.TempDir().
func startServer(ctx context.Context) (*pgServer, error) {
	removeStaleClusters()
	dir, err := os.MkdirTemp(os.TempDir(), clusterDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, err
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	srv, err := newServer(ctx, cluster.URL("postgres"), cluster.URL)
	if err != nil {
		cluster.Stop(ctx)
		os.RemoveAll(dir)
		return nil, err
	}
	srv.cluster = cluster
	return srv, nil
}

// removeStaleClusters deletes the cluster directories of test processes that
// died without Main cleaning up (or whose package lacks Main). Directories of
// live processes, and of servers still running, are left alone.
func removeStaleClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), clusterDirPrefix+"*-*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.Split(strings.TrimPrefix(filepath.Base(dir), clusterDirPrefix), "-")[0])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			if pm, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0]); err == nil && processAlive(pm) {
				continue // still shutting down after its owner died
			}
		}
		os.RemoveAll(dir)
	}
}

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// openServer uses the existing server at adminURL.
func openServer(ctx context.Context, adminURL string) (*pgServer, error) {
	return newServer(ctx, adminURL, func(dbname string) string { return withDatabase(adminURL, dbname) })
}

// newServer connects to the admin database and makes sure the template exists.
func newServer(ctx context.Context, adminURL string, dbURL func(string) string) (*pgServer, error) {
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, errors.New("cannot parse the admin database URL")
	}
	cfg.MaxConns = 4
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	srv := &pgServer{adminURL: adminURL, admin: admin, url: dbURL}
	if err := srv.createTemplate(ctx); err != nil {
		admin.Close()
		return nil, err
	}
	return srv, nil
}

// createTemplate creates the empty template database unless it exists; test
// processes sharing an external server may race to create it.
func (s *pgServer) createTemplate(ctx context.Context) error {
	_, err := s.admin.Exec(ctx, "CREATE DATABASE "+templateDB+" TEMPLATE template0 IS_TEMPLATE true ALLOW_CONNECTIONS false")
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505")) {
		return fmt.Errorf("create template database: %w", err)
	}
	return nil
}

// createDatabase copies the template into a new database with a random name.
func (s *pgServer) createDatabase(ctx context.Context) (string, error) {
	name := "t_" + hex.EncodeToString(randomBytes(8))
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+templateDB); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// dropDatabase drops a test database, disconnecting any client left on it.
func (s *pgServer) dropDatabase(ctx context.Context, name string) error {
	if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// close disconnects and, for a private cluster, stops it and removes its files.
func (s *pgServer) close(ctx context.Context) error {
	s.admin.Close()
	if s.cluster == nil {
		return nil
	}
	err := s.cluster.Stop(ctx)
	if rmErr := os.RemoveAll(s.cluster.Dir()); rmErr != nil {
		err = errors.Join(err, rmErr)
	}
	if err != nil {
		return fmt.Errorf("testkit: postgres: shut down private cluster: %w", err)
	}
	return nil
}

// withDatabase returns connString (URL or keyword/value form) naming dbname
// as its database instead.
func withDatabase(connString, dbname string) string {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		if u, err := url.Parse(connString); err == nil {
			u.Path, u.RawPath = "/"+dbname, ""
			q := u.Query()
			q.Del("dbname") // it would override the path
			u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
			return u.String()
		}
	}
	// In keyword/value form a later setting overrides an earlier one.
	return connString + " dbname=" + dbname
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails; see crypto/rand.Read
	return b
}

// Schema connects to a fresh database (Postgres) in schema, with the
// service's migrations applied: what a service's read-model tests start
// from. The pool closes when the test ends.
func Schema(t testing.TB, schema string, migrations fs.FS) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	pool, err := pg.Connect(ctx, Postgres(t), schema)
	if err != nil {
		t.Fatalf("testkit: schema %s: %v", schema, err)
	}
	t.Cleanup(pool.Close)
	if err := pg.Migrate(ctx, pool, migrations); err != nil {
		t.Fatalf("testkit: schema %s: %v", schema, err)
	}
	return pool
}

// SchemaBefore is Schema migrated only as far as the migration named first
// (not included): a schema as a release before it left it, for a test of
// what that migration does to existing rows.
func SchemaBefore(t testing.TB, schema string, migrations fs.FS, first string) *pgxpool.Pool {
	t.Helper()
	names, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		t.Fatalf("testkit: schema %s: %v", schema, err)
	}
	old := fstest.MapFS{}
	for _, name := range names {
		if name >= first {
			break
		}
		b, err := fs.ReadFile(migrations, name)
		if err != nil {
			t.Fatalf("testkit: schema %s: %v", schema, err)
		}
		old[name] = &fstest.MapFile{Data: b}
	}
	if !slices.Contains(names, first) || len(old) == 0 {
		t.Fatalf("testkit: schema %s: no migration %q after the first among %v", schema, first, names)
	}
	return Schema(t, schema, old)
}
