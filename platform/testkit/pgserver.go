package testkit

import (
	"context"
	"os"
	"testing"

	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/pgcluster"
)

// PostgresServer is a real PostgreSQL server of one test's own, which the
// test may stop and start again, as an external database that goes away and
// comes back (the shared cluster of Postgres must never be stopped).
type PostgresServer struct {
	dir     string
	cluster *pgcluster.Cluster
}

// StartPostgres starts a private cluster in a directory of its own (unix
// socket only) with a database named "gatehouse", stopped and removed when
// the test ends.
func StartPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	dir, err := os.MkdirTemp("", clusterDirPrefix+"own-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil { // the cluster's unprivileged owner traverses it
		t.Fatal(err)
	}
	s := &PostgresServer{dir: dir}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
		defer cancel()
		if s.cluster != nil {
			s.cluster.Stop(ctx)
		}
		os.RemoveAll(dir)
	})
	s.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	if err := pg.CreateDatabase(ctx, s.cluster.URL("postgres"), "gatehouse"); err != nil {
		t.Fatal(err)
	}
	return s
}

// URL is the connection URL of the "gatehouse" database (the same across
// restarts).
func (s *PostgresServer) URL() string { return s.cluster.URL("gatehouse") }

// Stop shuts the server down cleanly, as when the database goes away.
func (s *PostgresServer) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	if err := s.cluster.Stop(ctx); err != nil {
		t.Fatalf("stop postgres: %v", err)
	}
}

// Start starts the server again on the same data, as when the database comes back.
func (s *PostgresServer) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: s.dir, Fast: true})
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	s.cluster = c
}
