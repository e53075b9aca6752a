package accounts

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/migrations"
)

// adminColumns reads the columns 0011_admin_api.sql added and could only
// approximate for rows of earlier versions, one line per row.
const adminColumns = `
	SELECT 'users ' || id || ' ' || coalesce(locked_at::text, '-') || ' ' || coalesce(deactivated_at::text, '-') FROM users
	UNION ALL SELECT 'token ' || token_id || ' ' || coalesce(last_used_at::text, '-') || ' ' || coalesce(revoked_at::text, '-') FROM registration_tokens
	ORDER BY 1`

// An install upgraded from before the admin API: its read models are at
// version 1 and 0011_admin_api.sql filled the new columns as well as SQL
// could (lock times from the last change, token use and revocation times
// from the creation, no sign-in addresses). On start the users and
// registration_tokens projections, at version 2, are rebuilt from the
// stream beside the live ones and swapped in: every value is exact. (The
// audit trail, whose sign-in addresses 0011 could not fill, is now built
// from the AUDIT stream by a projection of its own, from scratch.)
func TestUpgradeMakesTheAdminColumnsExact(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool := testkit.Schema(t, Schema, migrations.FS)
	js := testkit.NATS(t)
	log, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Accounts, 1))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := personal.Open(ctx, js, sealed.NewRandomKeyring(), personal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{personal: keys, claimKey: []byte("0123456789abcdef0123456789abcdef")}
	current := []projection.Projection{s.usersReadModel(), regTokensReadModel()}
	for _, p := range current {
		if p.Version != 2 {
			t.Fatalf("projection %s is at version %d, want 2", p.Name, p.Version)
		}
	}
	run := func(ps []projection.Projection) (*projection.Set, func()) {
		members := make([]projection.Member, len(ps))
		for i, p := range ps {
			members[i] = p
		}
		set, err := projection.NewSet(ctx, pool, log, slog.New(slog.DiscardHandler), members...)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); set.Run(runCtx) }()
		return set, func() { stop(); <-done }
	}
	read := func() string {
		rows, err := pool.Query(ctx, adminColumns)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out := ""
		for _, l := range lines {
			out += l + "\n"
		}
		return out
	}

	// The read models at version 1, built from the history.
	old := make([]projection.Projection, len(current))
	for i, p := range current {
		p.Version = 1
		old[i] = p
	}
	set, stop := run(old)
	for _, e := range s.accountsHistory(t) {
		if _, err := log.Append(ctx, eventlog.Write{Event: e}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range old {
		last, err := log.LastSeqOf(ctx, p.Subjects...)
		if err != nil {
			t.Fatal(err)
		}
		if err := set.WaitFor(ctx, p.Name, last); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	exact := read()
	// What 0011_admin_api.sql left for rows an earlier version wrote.
	if _, err := pool.Exec(ctx, `
		UPDATE users SET locked_at = CASE WHEN locked THEN updated_at END, deactivated_at = CASE WHEN deactivated THEN updated_at END;
		UPDATE registration_tokens SET last_used_at = CASE WHEN uses > 0 THEN created_at END, revoked_at = CASE WHEN revoked THEN created_at END`); err != nil {
		t.Fatal(err)
	}
	if read() == exact {
		t.Fatal("the migration's approximations equal the exact values: the history shows nothing")
	}

	// The upgraded binary.
	set, stop = run(current)
	defer stop()
	deadline := time.Now().Add(time.Minute)
	for _, p := range current {
		for {
			st, err := set.Status(ctx, p.Name)
			if err != nil {
				t.Fatal(err)
			}
			if st.Version == 2 && st.Build == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("projection %s not upgraded: %+v", p.Name, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := read(); got != exact {
		t.Errorf("after the upgrade the admin columns are\n%s\nwant\n%s", got, exact)
	}
}
