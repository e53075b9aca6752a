package synapse_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/migrate/synapse"
	"gatehouse.dev/migrate/synapse/synapsetest"
)

// checksums returns an md5 of every table's rows in the public schema.
func checksums(t *testing.T, dbURL string) map[string]string {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, table := range tables {
		var sum string
		q := "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') || count(*) FROM " +
			pgx.Identifier{table}.Sanitize() + " t"
		if err := conn.QueryRow(ctx, q).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		out[table] = sum
	}
	return out
}

// A migration's read (EXCLUSIVE locks) and a check leave every table of the
// Synapse database exactly as it was.
func TestReadingChangesNothing(t *testing.T) {
	dbURL, _ := generate(t, synapsetest.Options{Users: 300})
	before := checksums(t, dbURL)
	if len(before) < 10 {
		t.Fatalf("only %d tables", len(before))
	}
	for _, mode := range []synapse.Mode{synapse.ModeMigrate, synapse.ModeDryRun, synapse.ModeCheck} {
		src, err := synapse.Open(testCtx(t), dbURL, synapse.Options{ServerName: "example.org", Mode: mode})
		if err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		readAll(t, src)
		if _, err := synapse.Check(testCtx(t), src, synapse.CheckInput{ServerName: "example.org"}); err != nil {
			t.Fatalf("%v: check: %v", mode, err)
		}
		if err := src.Close(testCtx(t)); err != nil {
			t.Fatalf("%v: close: %v", mode, err)
		}
	}
	after := checksums(t, dbURL)
	for table, sum := range before {
		if after[table] != sum {
			t.Errorf("table %s changed", table)
		}
	}
}

// createReader creates a role that may only SELECT the Synapse tables and
// returns dbURL connecting as it; the role is dropped when the test ends.
func createReader(t *testing.T, dbURL string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	role := "synapse_reader_" + hex.EncodeToString(b)
	exec(t, dbURL,
		"CREATE ROLE "+role+" LOGIN",
		"GRANT USAGE ON SCHEMA public TO "+role,
		"GRANT SELECT ON ALL TABLES IN SCHEMA public TO "+role)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dbURL)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(context.Background())
		for _, s := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := conn.Exec(context.Background(), s); err != nil {
				t.Errorf("%s: %v", s, err)
			}
		}
	})
	return withUser(t, dbURL, role)
}

// A role that may only SELECT can check and dry-run everything (the probe
// then says it may not lock), but a migration, which must keep Synapse out
// with EXCLUSIVE locks, is refused with a message naming the privilege.
func TestSelectOnlyRole(t *testing.T) {
	dbURL, ds := generate(t, synapsetest.Options{Users: 200})
	reader := createReader(t, dbURL)
	for _, mode := range []synapse.Mode{synapse.ModeCheck, synapse.ModeDryRun} {
		src := open(t, reader, synapse.Options{ServerName: "example.org", Mode: mode})
		if src.Info.Probe != synapse.ProbeDenied {
			t.Errorf("%v: probe %v, want denied", mode, src.Info.Probe)
		}
		all := readAll(t, src)
		if got := all.stats["users"].Emitted; got != ds.Expect.Emitted["users"] {
			t.Errorf("%v: %d users read, want %d", mode, got, ds.Expect.Emitted["users"])
		}
		report, err := synapse.Check(testCtx(t), src, synapse.CheckInput{ServerName: "example.org"})
		if err != nil {
			t.Fatalf("%v: check: %v", mode, err)
		}
		if f := report.Find(synapse.CodeLockNotPermitted); f == nil || f.Severity != synapse.SeverityWarning {
			t.Errorf("%v: no %s warning: %+v", mode, synapse.CodeLockNotPermitted, report.Findings)
		}
	}
	_, err := synapse.Open(testCtx(t), reader, synapse.Options{ServerName: "example.org", Mode: synapse.ModeMigrate})
	if err == nil || !strings.Contains(err.Error(), "UPDATE") {
		t.Fatalf("migrate as a SELECT-only role: %v", err)
	}
}

// holdUsers starts a transaction that wrote to users and keeps it open, as a
// running Synapse does between its statements; the returned func ends it.
func holdUsers(t *testing.T, dbURL string) (end func()) {
	t.Helper()
	ctx := testCtx(t)
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "synapse_homeserver"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO users (name, creation_ts) VALUES ('@newcomer:example.org', 1700000000)"); err != nil {
		t.Fatal(err)
	}
	done := false
	end = func() {
		if !done {
			done = true
			tx.Rollback(context.Background())
			conn.Close(context.Background())
		}
	}
	t.Cleanup(end)
	return end
}

// A migration started again at once after one was killed finds the killed
// run's session still holding the tables, until the database ends it: it
// waits for that, not for a Synapse (TestLockProbe refuses at once).
func TestMigrationWaitsForAnEarlierRunsSession(t *testing.T) {
	dbURL, _ := generate(t, synapsetest.Options{Users: 30, NoOddities: true})
	ctx := testCtx(t)
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "gatehouse-migrate"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE users IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	const held = 1500 * time.Millisecond
	go func() { time.Sleep(held); tx.Rollback(context.Background()) }()
	start := time.Now()
	src, err := synapse.Open(ctx, dbURL, synapse.Options{ServerName: "example.org", Mode: synapse.ModeMigrate})
	if err != nil {
		t.Fatalf("migrate after an earlier run's session: %v", err)
	}
	src.Close(ctx)
	if waited := time.Since(start); waited < held-100*time.Millisecond {
		t.Fatalf("opened after %s, while the earlier run held the tables for %s", waited, held)
	}
}

// The lock probe tells a running Synapse: a migration refuses to start,
// a check reports it, and other sessions on the database are listed.
func TestLockProbe(t *testing.T) {
	dbURL, _ := generate(t, synapsetest.Options{Users: 30, NoOddities: true})
	end := holdUsers(t, dbURL)

	start := time.Now()
	_, err := synapse.Open(testCtx(t), dbURL, synapse.Options{ServerName: "example.org", Mode: synapse.ModeMigrate})
	if !errors.Is(err, synapse.ErrSynapseRunning) || time.Since(start) > 10*time.Second {
		t.Fatalf("migrate while Synapse writes: %v after %s", err, time.Since(start))
	}
	src := open(t, dbURL, synapse.Options{ServerName: "example.org", Mode: synapse.ModeCheck})
	if src.Info.Probe != synapse.ProbeBusy {
		t.Errorf("probe %v, want busy", src.Info.Probe)
	}
	if !slices.Contains(src.Info.OtherSessions, "synapse_homeserver") {
		t.Errorf("other sessions %v", src.Info.OtherSessions)
	}
	src.Close(testCtx(t))

	end()
	settle(t, dbURL)
	src = open(t, dbURL, synapse.Options{ServerName: "example.org", Mode: synapse.ModeCheck})
	if src.Info.Probe != synapse.ProbeFree || len(src.Info.OtherSessions) != 0 {
		t.Errorf("after Synapse stopped: probe %v, sessions %v", src.Info.Probe, src.Info.OtherSessions)
	}
}

// While a migration reads, Synapse cannot write to the locked tables; while
// a check reads, it can, and the check's snapshot does not move.
func TestLocksHoldSynapseOff(t *testing.T) {
	dbURL, ds := generate(t, synapsetest.Options{Users: 30, NoOddities: true})
	ctx := testCtx(t)
	write := func() error {
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "SET lock_timeout = '300ms'"); err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, "INSERT INTO devices (user_id, device_id) VALUES ('@user0:example.org', 'NEWDEVICE"+time.Now().Format("150405.000000")+"')")
		return err
	}

	src := open(t, dbURL, synapse.Options{ServerName: "example.org", Mode: synapse.ModeMigrate})
	if err := write(); err == nil || !strings.Contains(err.Error(), "55P03") {
		t.Errorf("Synapse wrote during a migration: %v", err)
	}
	src.Close(ctx)

	src = open(t, dbURL, synapse.Options{ServerName: "example.org", Mode: synapse.ModeCheck})
	if _, err := src.Users(ctx, func(synapse.User) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := write(); err != nil {
		t.Fatalf("a check blocked Synapse: %v", err)
	}
	st, err := src.Devices(ctx, func(synapse.Device) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.Emitted != ds.Expect.Emitted["devices"] {
		t.Errorf("the snapshot moved: %d devices, want %d", st.Emitted, ds.Expect.Emitted["devices"])
	}
}
