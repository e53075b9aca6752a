package compat

import (
	"sync"
	"time"
)

// Rule is one rate limit: up to Burst attempts, refilled continuously at
// Burst per Per.
type Rule struct {
	Name  string
	Burst int
	Per   time.Duration
}

// The password-login limits, MAS's defaults (and the web sign-in's): per
// client address a burst of 3 then 3 a minute; per account a burst of 1800
// then 1800 an hour.
var (
	PerIP      = Rule{Name: "ip", Burst: 3, Per: time.Minute}
	PerAccount = Rule{Name: "account", Burst: 1800, Per: time.Hour}
)

// rate is the refill in attempts per second.
func (r Rule) rate() float64 { return float64(r.Burst) / r.Per.Seconds() }

// Key names one bucket: a rule and what it counts (an address, an account).
type Key struct {
	Rule    Rule
	Subject string
}

// Limiter holds token buckets in this process's memory: each replica counts
// on its own and a restart forgets, so behind N replicas a key gets up to N
// times its allowance. The zero Limiter is ready to use and safe for
// concurrent use.
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

// Allow takes one attempt from every key's bucket, or from none: when one is
// empty it reports false and how long until all of them allow an attempt.
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
		l.buckets[bucketKey{k.Rule.Name, k.Subject}].tokens--
	}
	return true, 0
}

// level refills a key's bucket up to now and returns its attempts left.
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

// sweep forgets, at most once a minute, buckets untouched for an hour: every
// rule here refills within the hour, so they are as good as new.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.at) >= time.Hour {
			delete(l.buckets, k)
		}
	}
}
