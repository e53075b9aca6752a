// Package ratelimit is a set of keyed token buckets held in memory.
//
// Each Rule allows Burst events per Per for each key (an address, a client
// IP), refilling continuously. Buckets live in this process only: with N
// replicas behind a load balancer a key gets up to N times its allowance.
// That is acceptable for its use, slowing down email floods, where the bound
// matters more than its exact value; an exact cluster-wide limit would need
// shared state on every request.
package ratelimit

import (
	"sync"
	"time"
)

// Rule is one limit: Burst events per Per for each key.
type Rule struct {
	Name  string
	Burst int
	Per   time.Duration
}

// rate is the rule's refill in tokens per second.
func (r Rule) rate() float64 { return float64(r.Burst) / r.Per.Seconds() }

// Key names one bucket: a rule and a subject such as an address.
type Key struct {
	Rule    Rule
	Subject string
}

// Limiter holds the buckets of any number of rules.
type Limiter struct {
	mu        sync.Mutex
	buckets   map[bucketKey]*bucket
	lastSweep time.Time
}

type bucketKey struct{ rule, subject string }

type bucket struct {
	tokens float64
	at     time.Time
}

// sweepEvery is how often buckets that have refilled are forgotten.
const sweepEvery = time.Minute

// New returns an empty Limiter.
func New() *Limiter { return &Limiter{buckets: map[bucketKey]*bucket{}} }

// Allow takes one token from every key's bucket at time now, or from none:
// when any bucket is empty it returns false and how long until all of them
// hold a token again. The zero Limiter is ready to use.
func (l *Limiter) Allow(now time.Time, keys ...Key) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[bucketKey]*bucket{}
	}
	l.sweep(now)
	var wait time.Duration
	for _, k := range keys {
		if tokens := l.level(k, now); tokens < 1 {
			wait = max(wait, time.Duration((1-tokens)/k.Rule.rate()*float64(time.Second)))
		}
	}
	if wait > 0 {
		return false, wait
	}
	for _, k := range keys {
		b := l.buckets[bucketKey{k.Rule.Name, k.Subject}]
		b.tokens--
	}
	return true, 0
}

// level refills a key's bucket up to now and returns its tokens.
func (l *Limiter) level(k Key, now time.Time) float64 {
	bk := bucketKey{k.Rule.Name, k.Subject}
	b, ok := l.buckets[bk]
	if !ok {
		b = &bucket{tokens: float64(k.Rule.Burst), at: now}
		l.buckets[bk] = b
	}
	if now.After(b.at) {
		b.tokens = min(float64(k.Rule.Burst), b.tokens+now.Sub(b.at).Seconds()*k.Rule.rate())
		b.at = now
	}
	return b.tokens
}

// sweep forgets buckets untouched for an hour, which bounds memory by the
// keys seen in the last hour. A bucket's rule may refill more slowly than
// that, so a forgotten bucket may come back fuller than it would have been;
// rules here refill within the hour.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < sweepEvery {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.at) >= time.Hour {
			delete(l.buckets, k)
		}
	}
}

// Len is the number of buckets held (tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
