package token

import (
	"context"
	"testing"
	"time"

	"gatehouse.dev/services/token/internal/tokenfmt"
)

// A replica that starts while the sessions read model lags behind the stream
// (its leader is elsewhere and slow, a crash before the last batch, a
// rebuild) still knows every revocation: its index follows the TOKEN stream
// from the read model's checkpoint, not from the moment it started. Here the
// read model is held before a session's end by taking its leadership away.
func TestRevocationKnownWhileTheReadModelLags(t *testing.T) {
	e := newLockEnv(t)
	first := e.replica(t)
	alice := e.newUser(t)
	access, refresh := first.session(t, alice, "oauth")
	var sessionID string
	if err := first.pool.QueryRow(context.Background(), `SELECT session_id FROM tokens WHERE token_hash = $1`, tokenfmt.HashString(access)).Scan(&sessionID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := first.svc.endSession(ctx, sessionID, "revoked", "test"); err != nil {
		t.Fatal(err)
	}
	first.stop()

	// The read model as it was before the end, and nobody to apply it.
	conn, err := first.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended(current_schema() || '.gatehouse.projection.' || $1, 0))`, sessionsProjection); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock_all()`)
	for _, sql := range []string{
		`UPDATE sessions SET ended_at = NULL, end_reason = '' WHERE session_id = '` + sessionID + `'`,
		`UPDATE tokens SET revoked = false WHERE session_id = '` + sessionID + `'`,
		`UPDATE projection_checkpoints SET last_seq = last_seq - 1 WHERE name = 'sessions'`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}

	second := e.replica(t)
	if second.introspectHTTP(t, access) || second.introspectGRPC(t, access) {
		t.Fatal("a replica started while the read model lagged answered a revoked token as active")
	}
	if _, code := second.oauthRefresh(t, refresh); code == "" {
		t.Fatal("a revoked session was refreshed")
	}
}
