package token

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// BenchmarkExpireSessions times the sweep that ends sessions nothing can use
// (client_credentials sessions whose token expired): GATEHOUSE_BENCH_SESSIONS
// of them (5,000 by default) are started, then one replica sweeps; on a
// second set two replicas sweep at once, as two replicas whose timers meet
// would; on a third, the same two through pg.Alone, as Run has them. A
// deployment issuing client_credentials tokens at r per second must end r
// sessions a second: it prints sessions ended a second. Run with
// -benchtime 1x (make bench).
func BenchmarkExpireSessions(b *testing.B) {
	n := testkit.Count(b, "GATEHOUSE_BENCH_SESSIONS", 5000)
	ctx := context.Background()
	e := newLockEnv(b)
	r := e.replicaWith(b, func(c *Config) { c.CompactSessions = true })
	other := e.replicaWith(b, func(c *Config) { c.CompactSessions = true })
	for b.Loop() {
		for _, mode := range []struct {
			name, metric string
			sweepers     []*replica
			alone        bool
		}{
			{"one replica", "1-replica", []*replica{r}, false},
			{"two replicas at once", "2-at-once", []*replica{r, other}, false},
			{"two replicas, one at a time as Run has them (pg.Alone)", "2-alone", []*replica{r, other}, true},
		} {
			startClientSessions(ctx, b, r, n)
			later := time.Now().Add(r.svc.cfg.AccessTTL + 2*expireGrace)
			began, cpu := time.Now(), processCPU(b)
			counts := make([]int64, len(mode.sweepers))
			var wg sync.WaitGroup
			for i, s := range mode.sweepers {
				job := func(ctx context.Context) (int64, error) {
					n, err := s.svc.expireSessions(ctx, later)
					return int64(n), err
				}
				if mode.alone {
					job = pg.Alone(s.svc.pool, "expire-sessions", job)
				}
				wg.Go(func() {
					c, err := job(ctx)
					if err != nil {
						b.Error(err)
					}
					counts[i] = c
				})
			}
			wg.Wait()
			took, spent := time.Since(began), processCPU(b)-cpu
			var ended int64
			for _, c := range counts {
				ended += c
			}
			if ended != int64(n) {
				b.Fatalf("%s: ended %v sessions of %d", mode.name, counts, n)
			}
			fmt.Printf("expiry sweep, %s: %d sessions ended in %s, %.0f sessions/s; %.0f µs of CPU per session (the replicas and NATS; PostgreSQL not counted)\n",
				mode.name, n, took.Round(time.Millisecond), float64(n)/took.Seconds(), float64(spent.Microseconds())/float64(n))
			b.ReportMetric(float64(n)/took.Seconds(), "sessions/s("+mode.metric+")")
		}
	}
}

// processCPU is the CPU time this process has used (user and system).
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// startClientSessions starts n client_credentials sessions on r, 16 at a
// time, and waits until the read model has them.
func startClientSessions(ctx context.Context, b *testing.B, r *replica, n int) {
	b.Helper()
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range work {
				id := ids.New()
				ev := &eventsv1.SessionStarted{SessionId: id, Kind: "client_credentials", ClientId: "the-client", Tokens: r.svc.mint(id, false).issued}
				if err := r.svc.start(ctx, ev, "client:the-client"); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if err := r.svc.projections.WaitFor(ctx, sessionsProjection, lastSeq(ctx, b, r)); err != nil {
		b.Fatal(err)
	}
}
