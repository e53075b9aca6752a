package projection_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// names is a test read model: the display name of each user, and how many events
// were applied to each row, so a double application shows.
var names = projection.Projection{
	Name:     "names",
	Subjects: []string{"test.user.*"},
	Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
		ev, ok := rec.Event.(*eventsv1.DisplayNameSet)
		if !ok {
			return nil
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO names (user_id, name, applied, last_seq) VALUES ($1, $2, 1, $3)
			ON CONFLICT (user_id) DO UPDATE SET name = $2, applied = names.applied + 1, last_seq = $3`,
			ev.GetUserId(), ev.GetDisplayName(), int64(rec.Seq))
		return err
	},
	Tables: []string{"names"},
}

type env struct {
	log      *eventlog.Log
	pool     *pgxpool.Pool
	listener *projection.Listener
	ctx      context.Context
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	js := testkit.NATS(t)
	log, err := eventlog.Open(ctx, js, eventlog.StreamConfig{Name: "TEST", Prefix: "test"})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pg.Connect(ctx, testkit.Postgres(t), "svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := projection.Setup(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE names (user_id text PRIMARY KEY, name text NOT NULL, applied int NOT NULL, last_seq bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	l := projection.NewListener(pool, slog.New(slog.DiscardHandler))
	go l.Run(ctx)
	return &env{log: log, pool: pool, listener: l, ctx: ctx}
}

// start runs a runner until the returned stop function is called.
func (e *env) start(t *testing.T, opts ...projection.RunnerOption) (stop func()) {
	t.Helper()
	r, err := projection.NewRunner(e.pool, e.log, e.listener, names, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	return func() { cancel(); <-done }
}

// appendNames appends n renames spread over users and returns the last sequence.
func (e *env) appendNames(t *testing.T, users, n int) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		id := fmt.Sprintf("u%d", i%users)
		got, err := e.log.Append(e.ctx, eventlog.Write{Event: eventlog.Event{
			Aggregate: eventlog.Ref{Type: "user", ID: id},
			Payload:   &eventsv1.DisplayNameSet{UserId: id, DisplayName: fmt.Sprintf("name-%d", i)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		last = got.Last()
	}
	return last
}

type row struct {
	name    string
	applied int
	seq     int64
}

func (e *env) readModel(t *testing.T) map[string]row {
	t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT user_id, name, applied, last_seq FROM names`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.name, &r.applied, &r.seq); err != nil {
			t.Fatal(err)
		}
		got[id] = r
	}
	return got
}

func (e *env) waitFor(t *testing.T, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	if err := e.listener.WaitFor(ctx, names.Name, seq); err != nil {
		t.Fatal(err)
	}
}

func assertModel(t *testing.T, got map[string]row, users, n int) {
	t.Helper()
	if len(got) != users {
		t.Fatalf("read model has %d rows, want %d", len(got), users)
	}
	for i := range users {
		id := fmt.Sprintf("u%d", i)
		// User i received events i, i+users, i+2*users, ... below n.
		want := (n - i + users - 1) / users
		lastName := fmt.Sprintf("name-%d", i+(want-1)*users)
		if r := got[id]; r.applied != want || r.name != lastName {
			t.Fatalf("%s = %+v, want %d applications ending with %s", id, r, want, lastName)
		}
	}
}

func TestAppliesEveryEventOnce(t *testing.T) {
	e := setup(t)
	stop := e.start(t, projection.WithBatch(16))
	defer stop()
	last := e.appendNames(t, 7, 200)
	e.waitFor(t, last)
	assertModel(t, e.readModel(t), 7, 200)
	if cp, err := projection.Checkpoint(e.ctx, e.pool, names.Name); err != nil || cp != last {
		t.Fatalf("checkpoint = %d, %v; want %d", cp, err, last)
	}
}

// A projection killed after its transaction commits but before it acknowledges
// the batch applies nothing twice when restarted: the read model equals a
// rebuild from scratch.
func TestCrashBetweenCommitAndAck(t *testing.T) {
	e := setup(t)
	last := e.appendNames(t, 5, 120)

	crashed := make(chan uint64, 1)
	var once sync.Once
	stop := e.start(t, projection.WithBatch(32), projection.WithAfterCommit(func(seq uint64) error {
		once.Do(func() { crashed <- seq })
		return errors.New("simulated crash before ack")
	}))
	var at uint64
	select {
	case at = <-crashed:
	case <-time.After(20 * time.Second):
		t.Fatal("projection never committed")
	}
	stop()
	if at == 0 || at >= last {
		t.Fatalf("crash after seq %d: want a crash part-way through %d events", at, last)
	}

	// Restart: a fresh runner, as after a process crash.
	stop = e.start(t, projection.WithBatch(32))
	e.waitFor(t, last)
	stop()
	afterCrash := e.readModel(t)
	assertModel(t, afterCrash, 5, 120)

	// Rebuild from scratch and compare.
	if err := projection.Reset(e.ctx, e.pool, names); err != nil {
		t.Fatal(err)
	}
	stop = e.start(t)
	defer stop()
	e.waitFor(t, last)
	rebuilt := e.readModel(t)
	if fmt.Sprint(rebuilt) != fmt.Sprint(afterCrash) {
		t.Fatalf("after crash %v\nrebuilt %v", afterCrash, rebuilt)
	}
}

// A reset while the leader is running makes it replay from the start.
func TestRebuildWhileRunning(t *testing.T) {
	e := setup(t)
	stop := e.start(t)
	defer stop()
	last := e.appendNames(t, 3, 30)
	e.waitFor(t, last)
	if err := projection.Reset(e.ctx, e.pool, names); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, last)
	assertModel(t, e.readModel(t), 3, 30)
	more := e.appendNames(t, 3, 3)
	e.waitFor(t, more)
}

// Two replicas run the same projection: one leads, and every event is applied once.
func TestTwoReplicasApplyOnce(t *testing.T) {
	e := setup(t)
	stopA := e.start(t, projection.WithBatch(8))
	stopB := e.start(t, projection.WithBatch(8))
	last := e.appendNames(t, 4, 100)
	e.waitFor(t, last)
	assertModel(t, e.readModel(t), 4, 100)

	// The leader goes away; the other takes over.
	stopA()
	defer stopB()
	more := e.appendNames(t, 4, 4)
	e.waitFor(t, more)
	got := e.readModel(t)
	total := 0
	for _, r := range got {
		total += r.applied
	}
	if total != 104 {
		t.Fatalf("applied %d events, want 104", total)
	}
}

func TestWaitForGivesUpWithContext(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
	defer cancel()
	err := e.listener.WaitFor(ctx, names.Name, 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestInvalidProjection(t *testing.T) {
	e := setup(t)
	bad := []projection.Projection{
		{Name: "Bad Name", Subjects: []string{"x"}, Apply: names.Apply, Tables: names.Tables},
		{Name: "nosubjects", Apply: names.Apply, Tables: names.Tables},
		{Name: "noapply", Subjects: []string{"x"}, Tables: names.Tables},
	}
	for _, p := range bad {
		if _, err := projection.NewRunner(e.pool, e.log, e.listener, p, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("NewRunner accepted %q", p.Name)
		}
	}
}
