package projection_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/telemetry"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	projectionsv1 "gatehouse.dev/proto/gatehouse/projections/v1"
)

// readerStats is what a reader polling the read model during a rebuild saw.
type readerStats struct {
	reads   atomic.Int64
	wrong   atomic.Int64 // reads that saw fewer rows or fewer applied events than before
	slowest atomic.Int64 // nanoseconds
	first   atomic.Value // the first wrong read, described
}

// pollReadModel reads the names read model until ctx ends: it must never
// see fewer rows, or fewer events applied, than a read before it did.
func (e *env) pollReadModel(ctx context.Context, stats *readerStats) {
	var rows, applied int64
	for ctx.Err() == nil {
		began := time.Now()
		var n, sum int64
		err := e.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(applied), 0) FROM names`).Scan(&n, &sum)
		if ctx.Err() != nil {
			return
		}
		took := time.Since(began)
		if took.Nanoseconds() > stats.slowest.Load() {
			stats.slowest.Store(took.Nanoseconds())
		}
		stats.reads.Add(1)
		if err != nil || n < rows || sum < applied {
			if stats.wrong.Add(1) == 1 {
				stats.first.Store(fmt.Sprintf("read %d rows, %d applied (err %v) after %d rows, %d applied", n, sum, err, rows, applied))
			}
			continue
		}
		rows, applied = n, sum
	}
}

// A rebuild while events keep coming: readers never see the read model
// shrink or lose applied events, and the rebuilt model, swapped in, holds
// every event exactly once, including those appended during the build.
func TestRebuildBesideTheLiveTables(t *testing.T) {
	e := setup(t)
	set, stop := e.runSet(t, names)
	defer stop()
	last := e.appendNames(t, 10, 300)
	e.waitFor(t, last)

	pollCtx, stopPolling := context.WithCancel(e.ctx)
	var stats readerStats
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { e.pollReadModel(pollCtx, &stats) })
	}
	// Slow enough that readers and writers meet the build many times.
	_, target, err := set.StartRebuild(e.ctx, names.Name, projection.RebuildOptions{MaxRate: 300})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := set.Status(e.ctx, names.Name)
	if st.Build == nil || st.Build.Reason != projection.ReasonRebuild || st.Build.Target != target {
		t.Fatalf("status after asking for a rebuild: %+v", st)
	}
	more := e.appendNames(t, 10, 100) // continues the pattern: 400 events over 10 users
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	cp, err := set.WaitRebuilt(ctx, names.Name, target)
	if err != nil {
		t.Fatal(err)
	}
	stopPolling()
	wg.Wait()
	e.waitFor(t, more)
	if cp < target {
		t.Fatalf("rebuilt up to %d, want at least %d", cp, target)
	}
	if n := stats.wrong.Load(); n > 0 {
		t.Fatalf("%d of %d reads during the rebuild went backwards; first: %v", n, stats.reads.Load(), stats.first.Load())
	}
	t.Logf("%d reads during the rebuild, slowest %v", stats.reads.Load(), time.Duration(stats.slowest.Load()))
	if stats.reads.Load() < 10 {
		t.Fatalf("only %d reads during the rebuild", stats.reads.Load())
	}
	assertAppended(t, e.readModel(t), 10, 300, 100)
}

// assertAppended checks the model after two runs of appendNames (first n,
// then more events, each starting again at user 0).
func assertAppended(t *testing.T, got map[string]row, users, n, more int) {
	t.Helper()
	if len(got) != users {
		t.Fatalf("read model has %d rows, want %d", len(got), users)
	}
	for i := range users {
		id := fmt.Sprintf("u%d", i)
		want := (n-i+users-1)/users + (more-i+users-1)/users
		if r := got[id]; r.applied != want {
			t.Fatalf("%s = %+v, want %d applications", id, r, want)
		}
	}
}

// A leader that goes away during a build hands it over: the next leader
// resumes from the build's position instead of starting again.
func TestRebuildResumesUnderANewLeader(t *testing.T) {
	e := setup(t)
	setA, stopA := e.runSet(t, names)
	last := e.appendNames(t, 5, 400)
	e.waitFor(t, last)
	_, target, err := setA.StartRebuild(e.ctx, names.Name, projection.RebuildOptions{MaxRate: 400})
	if err != nil {
		t.Fatal(err)
	}
	var reached uint64
	if err := waitUntil(20*time.Second, func() bool {
		st, err := setA.Status(e.ctx, names.Name)
		if err == nil && st.Build != nil && st.Build.Position > 100 {
			reached = st.Build.Position
			return true
		}
		return false
	}); err != nil {
		t.Fatal("the build did not get going")
	}
	stopA()
	st, err := setA.Status(e.ctx, names.Name)
	if err != nil || st.Build == nil || st.Build.Position < reached {
		t.Fatalf("after the leader left, the build is %+v (%v), want it at %d or later", st.Build, err, reached)
	}
	resumedFrom := st.Build.Position
	setB, stopB := e.runSet(t, names)
	defer stopB()
	// It never goes back to the start.
	if err := waitUntil(20*time.Second, func() bool {
		st, err := setB.Status(e.ctx, names.Name)
		if err != nil {
			return false
		}
		if st.Build != nil && st.Build.Position < resumedFrom {
			t.Fatalf("the new leader restarted the build: at %d, was %d", st.Build.Position, resumedFrom)
		}
		return st.Build == nil
	}); err != nil {
		t.Fatal("the new leader did not finish the build")
	}
	if cp, err := setB.WaitRebuilt(e.ctx, names.Name, target); err != nil || cp < target {
		t.Fatalf("rebuilt to %d (%v), want %d", cp, err, target)
	}
	assertModel(t, e.readModel(t), 5, 400)
}

// A new version of a read model is built beside the old one: readers keep
// the old shape and rows until the swap, then see the new column filled for
// every row; the checkpoint records the version.
func TestUpgradeToANewVersion(t *testing.T) {
	e := setup(t)
	set, stop := e.runSet(t, names)
	last := e.appendNames(t, 4, 40)
	e.waitFor(t, last)
	stop()

	v2 := names
	v2.Version = 2
	v2.Upgrade = func(ctx context.Context, tx pgx.Tx, from int) error {
		if from != 1 {
			return fmt.Errorf("upgrade from %d", from)
		}
		_, err := tx.Exec(ctx, `ALTER TABLE names ADD COLUMN shout text NOT NULL DEFAULT ''`)
		return err
	}
	v2.Apply = func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
		ev, ok := rec.Event.(*eventsv1.DisplayNameSet)
		if !ok {
			return nil
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO names (user_id, name, applied, last_seq, shout) VALUES ($1, $2, 1, $3, upper($2))
			ON CONFLICT (user_id) DO UPDATE SET name = $2, applied = names.applied + 1, last_seq = $3, shout = upper($2)`,
			ev.GetUserId(), ev.GetDisplayName(), int64(rec.Seq))
		return err
	}
	hasShout := func() bool {
		var ok bool
		if err := e.pool.QueryRow(e.ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'names' AND column_name = 'shout')`).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}

	set, stop = e.runSet(t, v2)
	defer stop()
	release := set.HoldSwap(names.Name)
	if err := waitUntil(20*time.Second, func() bool {
		st, err := set.Status(e.ctx, names.Name)
		return err == nil && st.Build != nil && st.Build.Reason == projection.ReasonUpgrade && st.Build.Position >= last
	}); err != nil {
		t.Fatal("the new version was not built")
	}
	if hasShout() {
		t.Fatal("readers see the new version's column before the swap")
	}
	assertModel(t, e.readModel(t), 4, 40)
	release()
	if err := waitUntil(20*time.Second, func() bool {
		st, err := set.Status(e.ctx, names.Name)
		return err == nil && st.Build == nil && st.Version == 2
	}); err != nil {
		t.Fatal("the new version was not swapped in")
	}
	if !hasShout() {
		t.Fatal("the new version's column is missing after the swap")
	}
	var blank int
	if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM names WHERE shout <> upper(name)`).Scan(&blank); err != nil || blank != 0 {
		t.Fatalf("%d rows without the new column filled (%v)", blank, err)
	}
	assertModel(t, e.readModel(t), 4, 40)
	more := e.appendNames(t, 4, 4)
	e.waitFor(t, more)
	if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM names WHERE shout <> upper(name)`).Scan(&blank); err != nil || blank != 0 {
		t.Fatalf("live events after the swap left %d rows without the new column (%v)", blank, err)
	}
}

// The copies have the live tables' columns, constraints and indexes under
// the same names, foreign keys between them included; after the swap the
// schema is what the migrations made.
func TestRebuildKeepsTheTablesDefinitions(t *testing.T) {
	e := setup(t)
	for _, ddl := range []string{
		`CREATE TABLE parents (id text PRIMARY KEY, label text NOT NULL DEFAULT 'x' CHECK (label <> ''), n int GENERATED ALWAYS AS IDENTITY)`,
		`CREATE UNIQUE INDEX parents_label ON parents (label) WHERE label <> 'x'`,
		`CREATE TABLE children (id text CONSTRAINT children_key PRIMARY KEY, parent text NOT NULL REFERENCES parents (id), UNIQUE (parent, id))`,
		`CREATE INDEX children_parent ON children (parent DESC)`,
	} {
		if _, err := e.pool.Exec(e.ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}
	family := projection.Projection{
		Name: "family", Subjects: []string{"test.user.*"}, Tables: []string{"parents", "children"},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			ev, ok := rec.Event.(*eventsv1.DisplayNameSet)
			if !ok {
				return nil
			}
			if _, err := tx.Exec(ctx, `INSERT INTO parents (id, label) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET label = $2`, ev.GetUserId(), ev.GetDisplayName()); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO children (id, parent) VALUES ($1, $2) ON CONFLICT DO NOTHING`, rec.ID(), ev.GetUserId())
			return err
		},
	}
	catalog := func() string {
		var out []string
		for _, q := range []string{
			`SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = current_schema()::regnamespace AND conrelid <> 0`,
			`SELECT tablename || ' ' || indexname || ' ' || regexp_replace(indexdef, ' ON \S+ ', ' ON ') FROM pg_indexes WHERE schemaname = current_schema()`,
			`SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_identity FROM information_schema.columns WHERE table_schema = current_schema()`,
		} {
			rows, err := e.pool.Query(e.ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, lines...)
		}
		slices.Sort(out)
		return strings.Join(out, "\n")
	}
	before := catalog()
	set, stop := e.runSet(t, family)
	defer stop()
	last := e.appendNames(t, 3, 9)
	if err := set.WaitFor(e.ctx, family.Name, last); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if _, err := set.Rebuild(ctx, family.Name); err != nil {
		t.Fatal(err)
	}
	if after := catalog(); after != before {
		t.Fatalf("the rebuild changed the tables' definitions:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	var parents, children int
	if err := e.pool.QueryRow(e.ctx, `SELECT (SELECT count(*) FROM parents), (SELECT count(*) FROM children)`).Scan(&parents, &children); err != nil || parents != 3 || children != 9 {
		t.Fatalf("after the rebuild: %d parents, %d children (%v); want 3 and 9", parents, children, err)
	}
}

// What a copy cannot reproduce is refused before the live tables are touched,
// and so is an Apply that writes a table the projection did not list.
func TestRebuildRefusesWhatItCannotCopy(t *testing.T) {
	e := setup(t)
	if _, err := e.pool.Exec(e.ctx, `CREATE TABLE counted (id serial PRIMARY KEY, name text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, `CREATE TABLE elsewhere (name text)`); err != nil {
		t.Fatal(err)
	}
	write := func(table string) func(context.Context, pgx.Tx, eventlog.Record) error {
		return func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			_, err := tx.Exec(ctx, `INSERT INTO `+table+` (name) VALUES ('x')`)
			return err
		}
	}
	serial := projection.Projection{Name: "counted", Subjects: []string{"test.user.*"}, Tables: []string{"counted"}, Apply: write("counted")}
	sneaky := projection.Projection{Name: "sneaky", Subjects: []string{"test.user.*"}, Tables: []string{"names"}, Apply: write("elsewhere")}
	set, stop := e.runSet(t, serial, sneaky)
	defer stop()
	last := e.appendNames(t, 1, 2)
	for _, p := range []projection.Projection{serial, sneaky} {
		if err := set.WaitFor(e.ctx, p.Name, last); err != nil {
			t.Fatal(err)
		}
	}
	var elsewhere int
	e.pool.QueryRow(e.ctx, `SELECT count(*) FROM elsewhere`).Scan(&elsewhere)
	for _, p := range []projection.Projection{serial, sneaky} {
		ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
		_, err := set.Rebuild(ctx, p.Name)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("rebuild of %s: %v, want it never to finish", p.Name, err)
		}
	}
	var after int
	e.pool.QueryRow(e.ctx, `SELECT count(*) FROM elsewhere`).Scan(&after)
	if after != elsewhere {
		t.Fatalf("a rebuild wrote %d rows into a live table it does not own", after-elsewhere)
	}
	var counted int
	if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM counted`).Scan(&counted); err != nil || counted != 2 {
		t.Fatalf("the live table holds %d rows (%v), want its 2", counted, err)
	}
}

// A reader holding the tables longer than the swap may wait does not block
// the other readers for long: the swap gives up and tries again, and
// happens once the reader is done.
func TestSwapWaitsForReadersWithoutBlockingThem(t *testing.T) {
	e := setup(t)
	set, stop := e.runSet(t, names)
	defer stop()
	last := e.appendNames(t, 3, 30)
	e.waitFor(t, last)

	long, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := long.Exec(e.ctx, `SELECT count(*) FROM names`); err != nil {
		t.Fatal(err)
	}
	_, target, err := set.StartRebuild(e.ctx, names.Name, projection.RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var slowest time.Duration
	until := time.Now().Add(3 * time.Second)
	for time.Now().Before(until) {
		began := time.Now()
		var n int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM names`).Scan(&n); err != nil || n != 3 {
			t.Fatalf("a reader got %d rows (%v)", n, err)
		}
		slowest = max(slowest, time.Since(began))
		time.Sleep(20 * time.Millisecond)
	}
	if st, _ := set.Status(e.ctx, names.Name); st.Build == nil {
		t.Fatal("the swap happened while a reader held the table")
	}
	long.Rollback(e.ctx)
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	if _, err := set.WaitRebuilt(ctx, names.Name, target); err != nil {
		t.Fatal(err)
	}
	if slowest > 2*time.Second {
		t.Fatalf("a reader waited %v behind the swap", slowest)
	}
	t.Logf("slowest read while the swap waited: %v", slowest)
}

// waitUntil polls ok until it holds or the timeout passes.
func waitUntil(timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// A build's progress is visible while it runs: in the set's status, in the
// admin API (gatehouse projections list) and in the metrics.
func TestBuildProgressIsVisible(t *testing.T) {
	e := setup(t)
	set, stop := e.runSet(t, names)
	defer stop()
	last := e.appendNames(t, 4, 60)
	e.waitFor(t, last)
	tel, err := telemetry.Setup(e.ctx, telemetry.Options{ServiceName: "test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	sets := map[string]*projection.Set{"svc": set}
	if err := projection.RegisterMetrics(tel.MeterProvider().Meter("test"), sets); err != nil {
		t.Fatal(err)
	}
	metrics := func() string {
		rec := httptest.NewRecorder()
		tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	admin := projection.NewAdmin(sets)

	release := set.HoldSwap(names.Name)
	resp, err := admin.RebuildProjection(e.ctx, &projectionsv1.RebuildProjectionRequest{Name: "svc.names", Background: true, MaxEventsPerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTarget() != last || resp.GetProjection().GetState() != "building" {
		t.Fatalf("rebuild answered %v", resp)
	}
	if err := waitUntil(20*time.Second, func() bool {
		st, err := set.Status(e.ctx, names.Name)
		return err == nil && st.Build != nil && st.Build.Position == last
	}); err != nil {
		t.Fatal("the build did not catch up")
	}
	list, err := admin.ListProjections(e.ctx, &projectionsv1.ListProjectionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	p := list.GetProjections()[0]
	if p.GetName() != "svc.names" || p.GetState() != "building" || p.GetBuild().GetPosition() != last || p.GetBuild().GetTarget() != last ||
		p.GetBuild().GetEventsPerSecond() <= 0 || p.GetBuild().GetMaxEventsPerSecond() != 1000 || p.GetBuild().GetReason() != projection.ReasonRebuild ||
		p.GetHead() != last || p.GetCheckpoint() != last || p.GetVersion() != 1 {
		t.Fatalf("projections list shows %v", p)
	}
	m := metrics()
	for _, want := range []string{
		`gatehouse_projection_build_active{otel_scope_name="test",otel_scope_schema_url="",otel_scope_version="",projection="svc.names"} 1`,
		fmt.Sprintf(`gatehouse_projection_build_position{otel_scope_name="test",otel_scope_schema_url="",otel_scope_version="",projection="svc.names"} %d`, last),
		fmt.Sprintf(`gatehouse_projection_checkpoint{otel_scope_name="test",otel_scope_schema_url="",otel_scope_version="",projection="svc.names"} %d`, last),
		`gatehouse_projection_build_rate`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("the metrics lack %s:\n%s", want, grepLines(m, "gatehouse_projection"))
		}
	}
	release()
	if _, err := set.WaitRebuilt(e.ctx, names.Name, last); err != nil {
		t.Fatal(err)
	}
	if m := metrics(); !strings.Contains(m, `projection="svc.names"} 0`) {
		t.Errorf("after the swap the metrics show:\n%s", grepLines(m, "gatehouse_projection_build_active"))
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A schema made by an earlier version (checkpoints without versions, no
// build table) is brought up to date by Setup: every live read model is at
// version 1, and nothing is rebuilt for it.
func TestSetupUpgradesAnOlderSchema(t *testing.T) {
	ctx := context.Background()
	pool, err := pg.Connect(ctx, testkit.Postgres(t), "older")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for _, sql := range []string{
		`CREATE TABLE projection_checkpoints (name text PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO projection_checkpoints (name, last_seq) VALUES ('names', 42)`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // and again, as every start does
		if err := projection.Setup(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	var version int
	var last int64
	if err := pool.QueryRow(ctx, `SELECT version, last_seq FROM projection_checkpoints WHERE name = 'names'`).Scan(&version, &last); err != nil || version != 1 || last != 42 {
		t.Fatalf("after Setup: version %d, checkpoint %d (%v); want 1 and 42", version, last, err)
	}
	var builds int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM projection_builds`).Scan(&builds); err != nil || builds != 0 {
		t.Fatalf("builds: %d (%v)", builds, err)
	}
}

// A read model raised to a new version whose new column a migration added
// to the live tables (filled as well as SQL can, as accounts'
// 0011_admin_api.sql does): on start the leader rebuilds it from the stream
// beside the live one, which keeps answering and keeps being applied (the
// new Apply writes the migrated column), and swaps it in; then every row
// holds the column's exact value, and no reader ever saw a half-built model.
func TestUpgradeFillsAMigratedColumnExactly(t *testing.T) {
	e := setup(t)
	set, stop := e.runSet(t, names)
	last := e.appendNames(t, 4, 40)
	e.waitFor(t, last)
	stop()
	if st, err := set.Status(e.ctx, names.Name); err != nil || st.Version != 1 {
		t.Fatalf("version 1 is live: %+v (%v)", st, err)
	}

	// The migration: the first name each user had; SQL only knows the last.
	if _, err := e.pool.Exec(e.ctx, `ALTER TABLE names ADD COLUMN first_name text;
		UPDATE names SET first_name = name`); err != nil {
		t.Fatal(err)
	}
	v2 := names
	v2.Version = 2
	v2.Apply = func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
		ev, ok := rec.Event.(*eventsv1.DisplayNameSet)
		if !ok {
			return nil
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO names (user_id, name, applied, last_seq, first_name) VALUES ($1, $2, 1, $3, $2)
			ON CONFLICT (user_id) DO UPDATE SET name = $2, applied = names.applied + 1, last_seq = $3`,
			ev.GetUserId(), ev.GetDisplayName(), int64(rec.Seq))
		return err
	}
	firstNames := func() map[string]string {
		rows, err := e.pool.Query(e.ctx, `SELECT user_id, first_name FROM names`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
			var p [2]string
			return p, r.Scan(&p[0], &p[1])
		})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, p := range got {
			m[p[0]] = p[1]
		}
		return m
	}

	set, stop = e.runSet(t, v2)
	defer stop()
	release := set.HoldSwap(names.Name)
	defer release()
	pollCtx, stopPolling := context.WithCancel(e.ctx)
	var stats readerStats
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { e.pollReadModel(pollCtx, &stats) })
	}
	if err := waitUntil(20*time.Second, func() bool {
		st, err := set.Status(e.ctx, names.Name)
		return err == nil && st.Version == 1 && st.Build != nil && st.Build.Reason == projection.ReasonUpgrade &&
			st.Build.Version == 2 && st.Build.Position >= last
	}); err != nil {
		t.Fatal("the new version was not built beside the live one")
	}
	// Events keep coming while the build waits: the live tables (version 1,
	// migrated) take them with the new Apply.
	more := e.appendNames(t, 4, 8)
	e.waitFor(t, more)
	if got := firstNames(); got["u0"] != "name-36" {
		t.Fatalf("before the swap readers see the migration's approximations, got %v", got)
	}
	release()
	if err := waitUntil(20*time.Second, func() bool {
		st, err := set.Status(e.ctx, names.Name)
		return err == nil && st.Build == nil && st.Version == 2 && st.Checkpoint >= more
	}); err != nil {
		t.Fatal("the new version was not swapped in")
	}
	stopPolling()
	wg.Wait()
	if n := stats.wrong.Load(); n > 0 {
		t.Fatalf("%d of %d reads during the upgrade went backwards; first: %v", n, stats.reads.Load(), stats.first.Load())
	}
	if stats.reads.Load() < 10 {
		t.Fatalf("only %d reads during the upgrade", stats.reads.Load())
	}
	got := firstNames()
	for i := range 4 {
		if id, want := fmt.Sprintf("u%d", i), fmt.Sprintf("name-%d", i); got[id] != want {
			t.Errorf("after the upgrade %s's first name is %q, want %q", id, got[id], want)
		}
	}
	assertAppended(t, e.readModel(t), 4, 40, 8)
}

// A projection that never ran starts at its Version: the live runner builds
// it from the stream with this binary's Apply, so no upgrade build runs
// (and none is held up by a swap that is held).
func TestANewProjectionStartsAtItsVersion(t *testing.T) {
	e := setup(t)
	v3 := names
	v3.Version = 3
	set, err := projection.NewSet(e.ctx, e.pool, e.log, slog.New(slog.DiscardHandler), v3)
	if err != nil {
		t.Fatal(err)
	}
	release := set.HoldSwap(names.Name) // an upgrade build would stay visible
	defer release()
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); set.Run(ctx) }()
	defer func() { cancel(); <-done }()
	last := e.appendNames(t, 3, 9)
	waitSet(t, set, names.Name, last)
	// The leader looks for a due build as it starts: watch for one a while.
	for watch := time.Now().Add(300 * time.Millisecond); time.Now().Before(watch); time.Sleep(20 * time.Millisecond) {
		st, err := set.Status(e.ctx, names.Name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Version != 3 || st.Build != nil {
			t.Fatalf("a new projection at version 3: live version %d, build %+v", st.Version, st.Build)
		}
	}
	assertModel(t, e.readModel(t), 3, 9)
}

// A build taken over by a binary whose migration changed the live tables
// (here: a new column its Apply writes) starts again from copies of the
// migrated tables instead of replaying into stale ones.
func TestBuildStartsAgainWhenAMigrationChangedTheLiveTables(t *testing.T) {
	e := setup(t)
	set, stop := e.runSet(t, names)
	last := e.appendNames(t, 4, 40)
	e.waitFor(t, last)
	release := set.HoldSwap(names.Name)
	_, target, err := set.StartRebuild(e.ctx, names.Name, projection.RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitUntil(20*time.Second, func() bool {
		st, err := set.Status(e.ctx, names.Name)
		return err == nil && st.Build != nil && st.Build.Position >= target
	}); err != nil {
		t.Fatal("the rebuild did not catch up")
	}
	stop()
	release()

	if _, err := e.pool.Exec(e.ctx, `ALTER TABLE names ADD COLUMN first_name text NOT NULL DEFAULT ''`); err != nil {
		t.Fatal(err)
	}
	migrated := names
	migrated.Apply = func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
		ev, ok := rec.Event.(*eventsv1.DisplayNameSet)
		if !ok {
			return nil
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO names (user_id, name, applied, last_seq, first_name) VALUES ($1, $2, 1, $3, $2)
			ON CONFLICT (user_id) DO UPDATE SET name = $2, applied = names.applied + 1, last_seq = $3`,
			ev.GetUserId(), ev.GetDisplayName(), int64(rec.Seq))
		return err
	}
	set, stop = e.runSet(t, migrated)
	defer stop()
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	if _, err := set.WaitRebuilt(ctx, names.Name, target); err != nil {
		t.Fatal(err)
	}
	var exact int
	if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM names WHERE first_name = 'name-' || substr(user_id, 2)`).Scan(&exact); err != nil || exact != 4 {
		t.Fatalf("%d of 4 rows rebuilt with the migrated column (%v)", exact, err)
	}
	assertModel(t, e.readModel(t), 4, 40)
}
