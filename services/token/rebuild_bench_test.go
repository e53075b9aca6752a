package token

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gatehouse.dev/platform/testkit"
)

// BenchmarkSessionsRebuild rebuilds the sessions read model (blue/green,
// as `gatehouse projections rebuild` does) from a compacted TOKEN stream of
// GATEHOUSE_BENCH_SESSIONS sessions (3,000 by default), each started and
// refreshed once, so that its one event kept carries its state: what a
// rebuild meets at scale. It prints sessions rebuilt a second. Run with
// -benchtime 1x (make bench).
func BenchmarkSessionsRebuild(b *testing.B) {
	n := testkit.Count(b, "GATEHOUSE_BENCH_SESSIONS", 3000)
	ctx := context.Background()
	e := newLockEnv(b)
	r := e.replicaWith(b, func(c *Config) { c.CompactSessions = true })
	alice := e.newUser(b)
	for range n {
		_, refresh := r.session(b, alice, "oauth")
		if _, code := r.oauthRefresh(b, refresh); code != "" {
			b.Fatalf("refresh: %s", code)
		}
	}
	for b.Loop() {
		began := time.Now()
		if _, err := r.svc.projections.Rebuild(ctx, sessionsProjection); err != nil {
			b.Fatal(err)
		}
		took := time.Since(began)
		fmt.Printf("sessions read model rebuilt from a compacted stream: %d sessions in %s, %.0f sessions/s\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
		b.ReportMetric(float64(n)/took.Seconds(), "sessions/s")
	}
}
