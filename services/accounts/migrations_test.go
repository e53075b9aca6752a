package accounts_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	"gatehouse.dev/services/accounts"
	"gatehouse.dev/services/accounts/migrations"
)

// A schema from before user_emails gains a row for every user's address
// when the service migrates it, as the projection would have written.
func TestUserEmailsMigrationBackfills(t *testing.T) {
	ctx := context.Background()
	pool := testkit.SchemaBefore(t, accounts.Schema, migrations.FS, "0003_user_emails.sql")
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := pool.Exec(ctx, `INSERT INTO users (id, username, email, created_at, updated_at, version) VALUES
		('01J00000000000000000000001', 'alice', 'alice@example.org', $1, $1, 3),
		('01J00000000000000000000002', 'bob', '', $1, $1, 6)`, created); err != nil {
		t.Fatal(err)
	}

	if _, err := accounts.New(ctx, accounts.Config{ServerName: "example.org", Passwords: cheap},
		accounts.Deps{Pool: pool, JetStream: testkit.NATS(t), Logger: slog.New(slog.DiscardHandler), Keyring: sealed.NewRandomKeyring()}); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT email, user_id, is_primary, added_at FROM user_emails ORDER BY email`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int
	for rows.Next() {
		var (
			email, userID string
			primary       bool
			added         time.Time
		)
		if err := rows.Scan(&email, &userID, &primary, &added); err != nil {
			t.Fatal(err)
		}
		if email != "alice@example.org" || userID != "01J00000000000000000000001" || !primary || !added.Equal(created) {
			t.Errorf("row %s %s %v %v", email, userID, primary, added)
		}
		n++
	}
	if rows.Err() != nil || n != 1 {
		t.Fatalf("%d rows, %v", n, rows.Err())
	}
}

// Addresses that existed before they had ids get, from migration 0009, the
// very ids the users projection gives them (ids.Derive), so a rebuild
// changes none; locks and deactivations get a time.
func TestEmailIDsMigrationMatchesTheProjection(t *testing.T) {
	ctx := context.Background()
	pool := testkit.SchemaBefore(t, accounts.Schema, migrations.FS, "0009_personal_data.sql")
	added := []time.Time{time.Date(2026, 1, 2, 3, 4, 5, 678_912_000, time.UTC), time.Date(1999, 12, 31, 23, 59, 59, 999_000, time.UTC)}
	if _, err := pool.Exec(ctx, `INSERT INTO users (id, username, locked, created_at, updated_at, version) VALUES
		('01J00000000000000000000001', 'alice', true, $1, $1, 3)`, added[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO user_emails (email, user_id, is_primary, added_at) VALUES
		('alice@example.org', '01J00000000000000000000001', true, $1), ('a+2@example.net', '01J00000000000000000000001', false, $2)`, added[0], added[1]); err != nil {
		t.Fatal(err)
	}
	if err := pg.Migrate(ctx, pool, migrations.FS); err != nil {
		t.Fatal(err)
	}
	for i, email := range []string{"alice@example.org", "a+2@example.net"} {
		var got string
		if err := pool.QueryRow(ctx, `SELECT email_id FROM user_emails WHERE email = $1`, email).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := accounts.EmailID(added[i], "01J00000000000000000000001", email); got != want {
			t.Errorf("%s: migrated id %s, the projection's %s", email, got, want)
		}
	}
	var lockedAt *time.Time
	if err := pool.QueryRow(ctx, `SELECT locked_at FROM users`).Scan(&lockedAt); err != nil || lockedAt == nil {
		t.Fatalf("locked_at %v, %v", lockedAt, err)
	}
}
