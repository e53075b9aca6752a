package web

import (
	"math"
	"sync"
	"time"
)

// limiter is a set of token buckets, one per key (an IP address, an account):
// each holds up to burst tokens and refills at rate tokens a second; an
// attempt takes one. The service uses MAS's defaults: sign-in per IP address
// burst 3, 3 a minute; per account burst 1800, 1800 an hour; registration per
// IP address burst 3, 3 an hour.
//
// Buckets live in this process's memory: each replica counts on its own, and
// a restart forgets them. Addresses are the TCP peer's; behind a proxy they
// are the proxy's, which then shares one bucket among everyone (trusting
// X-Forwarded-For from configured proxies is left for later).
type limiter struct {
	burst float64
	rate  float64 // tokens per second
	mu    sync.Mutex
	b     map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(burst, perSecond float64) *limiter {
	return &limiter{burst: burst, rate: perSecond, b: map[string]*bucket{}}
}

// allow takes a token from key's bucket. When it is empty, it reports false
// and how long until a token is back.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.b[key]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.b[key] = b
	}
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+elapsed*l.rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration(math.Ceil((1-b.tokens)/l.rate)) * time.Second
}

// sweep forgets the buckets that have refilled completely: they are the
// same as no bucket.
func (l *limiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, b := range l.b {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.b, k)
		}
	}
}
