package token

import (
	"context"
	"testing"
	"time"

	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/testkit"
	"gatehouse.dev/services/token/migrations"
)

// A schema from before sessions.usable_until learns it for the live
// sessions nothing can use once their access token expires, from their
// token rows, as the projection writes it for new ones; every other session
// keeps NULL.
func TestUsableUntilMigrationBackfills(t *testing.T) {
	ctx := context.Background()
	pool := testkit.SchemaBefore(t, Schema, migrations.FS, "0010_sessions_usable_until.sql")
	created := time.Date(2026, 11, 2, 3, 4, 5, 0, time.UTC)
	expires := created.Add(5 * time.Minute)
	for _, s := range []struct{ id, kind, ended string }{
		{"own", "client_credentials", ""}, {"once", "oauth", ""}, {"refreshed", "oauth", ""},
		{"compat", "compat", ""}, {"personal", "personal", ""}, {"ended", "client_credentials", "2026-11-02T03:05:00Z"},
	} {
		var ended any
		if s.ended != "" {
			ended = s.ended
		}
		if _, err := pool.Exec(ctx, `INSERT INTO sessions (session_id, kind, client_id, created_at, ended_at) VALUES ($1, $2, 'c', $3, $4)`,
			s.id, s.kind, created, ended); err != nil {
			t.Fatal(err)
		}
	}
	for _, tok := range []struct {
		hash, session, kind string
		expires             any
	}{
		{"a1", "own", "access_token", expires}, {"a2", "once", "access_token", expires},
		{"a3", "refreshed", "access_token", expires}, {"r3", "refreshed", "refresh_token", nil},
		{"a4", "compat", "access_token", nil}, {"a5", "personal", "access_token", expires}, {"a6", "ended", "access_token", expires},
	} {
		if _, err := pool.Exec(ctx, `INSERT INTO tokens (token_hash, session_id, kind, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
			tok.hash, tok.session, tok.kind, created, tok.expires); err != nil {
			t.Fatal(err)
		}
	}
	if err := pg.Migrate(ctx, pool, migrations.FS); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT session_id, usable_until FROM sessions`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*time.Time{}
	for rows.Next() {
		var id string
		var at *time.Time
		if err := rows.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		got[id] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"own", "once", "refreshed", "compat", "personal", "ended"} {
		at, mortal := got[id], id == "own" || id == "once"
		if (at != nil) != mortal || (mortal && !at.Equal(expires)) {
			t.Errorf("session %s: usable_until %v, want it set to %s: %v", id, at, expires, mortal)
		}
	}
}
