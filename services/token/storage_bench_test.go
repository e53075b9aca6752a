package token

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// BenchmarkSessionStorage measures what refreshing one session costs on
// disk (issue 16): the TOKEN stream's bytes (JetStream file store) and the
// sessions read model's tables (PostgreSQL, after VACUUM FULL: the live
// data autovacuum keeps a table at) across storageRefreshes refreshes, with
// the history kept and with compact_sessions, and the bytes per active
// session per day at one refresh every 5 minutes through an 8-hour day.
// Before the redesign (main on 2026-12-07, measured on gatehouse serve):
// 824 B (NATS) + 623 B (PostgreSQL) per refresh. Run with -benchtime 1x
// (make bench).
func BenchmarkSessionStorage(b *testing.B) {
	const refreshesPerDay = 8 * 60 / 5
	for b.Loop() {
		fmt.Printf("%-17s per refresh: NATS %6.1f B + PostgreSQL %6.1f B; per active session per day (%d refreshes): %8.1f KiB (issue 16, main before the redesign)\n",
			"before", 824.0, 623.0, refreshesPerDay, (824.0+623.0)*refreshesPerDay/1024)
		for _, mode := range []struct {
			name    string
			compact bool
		}{{"history kept", false}, {"compact_sessions", true}} {
			nats, pg, session := sessionStorage(b, mode.compact)
			fmt.Printf("%-17s per refresh: NATS %6.1f B + PostgreSQL %6.1f B; per active session per day (%d refreshes): %8.1f KiB; one session holds NATS %d B\n",
				mode.name, nats, pg, refreshesPerDay, (nats+pg)*refreshesPerDay/1024, session)
			if mode.compact {
				b.ReportMetric(nats, "NATS-B/refresh")
				b.ReportMetric(pg, "PG-B/refresh")
			}
		}
	}
}

// storageRefreshes is how many times the measured session is refreshed.
const storageRefreshes = 1000

// sessionStorage refreshes one session storageRefreshes times and returns
// the stream's and the tables' growth per refresh, and the bytes the
// session's subject holds at the end.
func sessionStorage(b *testing.B, compact bool) (nats, pg float64, session uint64) {
	ctx := context.Background()
	e := newLockEnv(b)
	r := e.replicaWith(b, func(c *Config) { c.CompactSessions = compact })
	alice := e.newUser(b)
	access, refresh := r.session(b, alice, "oauth")
	st, err := e.js.Stream(ctx, eventsv1.Token.Name)
	if err != nil {
		b.Fatal(err)
	}
	tables := func() int64 {
		if _, err := r.pool.Exec(ctx, `VACUUM FULL tokens, sessions`); err != nil {
			b.Fatal(err)
		}
		var n int64
		if err := r.pool.QueryRow(ctx, `SELECT pg_total_relation_size('tokens') + pg_total_relation_size('sessions')`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	streamBytes := func() uint64 {
		info, err := st.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return info.State.Bytes
	}
	wait := func() {
		seq, err := r.svc.log.LastSeq(ctx)
		if err == nil {
			err = r.svc.projections.WaitFor(ctx, sessionsProjection, seq)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	wait()
	natsBefore, pgBefore := streamBytes(), tables()
	began := time.Now()
	for i := 0; i < storageRefreshes; i++ {
		resp, code := r.oauthRefresh(b, refresh)
		if code != "" {
			b.Fatalf("refresh %d: %s", i, code)
		}
		access, refresh = resp["access_token"].(string), resp["refresh_token"].(string)
	}
	wait()
	took := time.Since(began)
	natsAfter, pgAfter := streamBytes(), tables()
	if !r.introspectHTTP(b, access) {
		b.Fatal("the session's last access token is not active")
	}
	var id string
	if err := r.pool.QueryRow(ctx, `SELECT session_id FROM tokens WHERE token_hash = (SELECT token_hash FROM tokens ORDER BY issued_at DESC LIMIT 1)`).Scan(&id); err != nil {
		b.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(r.svc.log.Subject(sessionRef(id))))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d refreshes in %v (compact %v); %d messages on the session's subject", storageRefreshes, took.Round(time.Millisecond), compact, info.State.Subjects[r.svc.log.Subject(sessionRef(id))])
	msg, err := st.GetLastMsgForSubject(ctx, r.svc.log.Subject(sessionRef(id)))
	if err != nil {
		b.Fatal(err)
	}
	session = uint64(len(msg.Data))
	for k, vs := range msg.Header {
		for _, v := range vs {
			session += uint64(len(k) + len(v) + 4)
		}
	}
	session *= uint64(info.State.Subjects[r.svc.log.Subject(sessionRef(id))])
	return float64(natsAfter-natsBefore) / storageRefreshes, float64(pgAfter-pgBefore) / storageRefreshes, session
}
