package pg_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

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
	// More than one statement's chunk of old rows, all of them dropped.
	if _, err := pool.Exec(ctx, `INSERT INTO ended SELECT 'older' || g, $1 FROM generate_series(1, $2) g`, cutoff.Add(-2*time.Hour), 2*pg.DropChunk+3); err != nil {
		t.Fatal(err)
	}
	if n, err := pg.DropBefore(ctx, pool, "ended", "ended_at", cutoff); err != nil || n != 2*pg.DropChunk+4 {
		t.Fatalf("dropped %d, %v; want the %d rows before the cutoff", n, err, 2*pg.DropChunk+4)
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

// Alone runs a job on one replica at a time: while one run is under way,
// another (another pool, as another replica) does nothing and reports 0; a
// job of another name runs meanwhile; once the run ends, the next runs. A
// run whose context ends still gives the lock back.
func TestAlone(t *testing.T) {
	ctx := context.Background()
	url := testkit.Postgres(t)
	pools := make([]*pgxpool.Pool, 2)
	for i := range pools {
		pool, err := pg.Connect(ctx, url, "alone")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		pools[i] = pool
	}
	ran := func(context.Context) (int64, error) { return 1, nil }
	inside, release := make(chan struct{}), make(chan struct{})
	held := pg.Alone(pools[0], "sweep", func(context.Context) (int64, error) {
		close(inside)
		<-release
		return 7, nil
	})
	first := make(chan int64)
	go func() {
		n, err := held(ctx)
		if err != nil {
			t.Error(err)
		}
		first <- n
	}()
	<-inside
	for _, tt := range []struct {
		name string
		pool *pgxpool.Pool
		want int64
	}{{"sweep", pools[1], 0}, {"sweep", pools[0], 0}, {"fold", pools[1], 1}} {
		if n, err := pg.Alone(tt.pool, tt.name, ran)(ctx); err != nil || n != tt.want {
			t.Errorf("%s while the first sweep runs: %d, %v; want %d", tt.name, n, err, tt.want)
		}
	}
	close(release)
	if n := <-first; n != 7 {
		t.Fatalf("the first run reported %d, want its job's 7", n)
	}
	if n, err := pg.Alone(pools[1], "sweep", ran)(ctx); err != nil || n != 1 {
		t.Fatalf("after the first run: %d, %v; want the job run", n, err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	if _, err := pg.Alone(pools[0], "sweep", func(ctx context.Context) (int64, error) {
		cancel()
		return 0, ctx.Err()
	})(cancelled); err == nil {
		t.Fatal("a job that failed reported no error")
	}
	if n, err := pg.Alone(pools[1], "sweep", ran)(ctx); err != nil || n != 1 {
		t.Fatalf("after a run whose context ended: %d, %v; want the job run", n, err)
	}
}
