package pg_test

import (
	"context"
	"testing"
	"time"

	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/testkit"
)

// DropBefore deletes the rows whose time is before the cutoff, keeps the
// others and those without a time, and refuses a column that does not exist
// rather than dropping anything.
func TestDropBefore(t *testing.T) {
	ctx := context.Background()
	pool, err := pg.Connect(ctx, testkit.Postgres(t), "sweep")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	cutoff := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if _, err := pool.Exec(ctx, `CREATE TABLE ended (id text PRIMARY KEY, ended_at timestamptz)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO ended VALUES ('old', $1), ('at', $2), ('new', $3), ('live', NULL)`,
		cutoff.Add(-time.Hour), cutoff, cutoff.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := pg.DropBefore(ctx, pool, "ended", "ended_at", cutoff); err != nil || n != 1 {
		t.Fatalf("dropped %d, %v; want the one row before the cutoff", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ended`).Scan(&left); err != nil || left != 3 {
		t.Fatalf("%d rows left, %v; want 3", left, err)
	}
	if _, err := pg.DropBefore(ctx, pool, "ended", "ended_at; DROP TABLE ended", cutoff.Add(time.Hour*24)); err == nil {
		t.Fatal("a column that does not exist was accepted")
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ended`).Scan(&left); err != nil || left != 3 {
		t.Fatalf("%d rows left after a bad column, %v; want 3", left, err)
	}
}
