package device

import (
	"sync"
	"time"
)

// Slack is how much earlier than its interval a poll may arrive without
// being too fast: clients wait the interval between sending, and network
// and scheduling jitter shorten the gap the server sees.
const Slack = time.Second

// maxPaced bounds the polls a Pacer remembers.
const maxPaced = 100_000

// Pacer remembers, in the memory of one replica, when each pending device
// grant was last polled and at what interval it must be polled, to answer
// slow_down (RFC 8628 §3.5: the interval grows by 5 seconds with every
// slow_down, for that and all later requests).
//
// Pacing is flow control, not security (device codes carry ~238 bits), so it
// is not worth an event per poll: that would turn every poll, a read, into a
// replicated append kept forever. The price is that with several replicas
// each paces the polls it sees, so a client spreading too-fast polls over N
// replicas is caught only when two land on the same one.
type Pacer struct {
	mu        sync.Mutex
	entries   map[string]*pace
	lastSweep time.Time
}

type pace struct {
	last     time.Time
	interval time.Duration
	until    time.Time
}

// NewPacer returns an empty Pacer.
func NewPacer() *Pacer { return &Pacer{entries: map[string]*pace{}} }

// Poll records a poll of a pending grant at now and reports whether it came
// too early, and the interval the device must keep from now on (increased
// when it came too early). until is when the grant expires: the Pacer
// forgets it then.
func (p *Pacer) Poll(id string, now, until time.Time) (slowDown bool, interval time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entries[id]
	if !ok {
		if len(p.entries) >= maxPaced || now.Sub(p.lastSweep) > time.Minute {
			p.sweep(now)
		}
		if len(p.entries) >= maxPaced {
			// Only under a flood of live grants: forgetting paces costs
			// nothing but a missed slow_down.
			p.entries = map[string]*pace{}
		}
		p.entries[id] = &pace{last: now, interval: Interval, until: until}
		return false, Interval
	}
	if now.Sub(e.last) < e.interval-Slack {
		e.interval += SlowDownStep
		slowDown = true
	}
	e.last = now
	return slowDown, e.interval
}

// Interval is the interval a grant must currently be polled at.
func (p *Pacer) Interval(id string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.entries[id]; ok {
		return e.interval
	}
	return Interval
}

// Forget drops a grant that no longer needs pacing (answered or used).
func (p *Pacer) Forget(id string) {
	p.mu.Lock()
	delete(p.entries, id)
	p.mu.Unlock()
}

// sweep drops expired grants; p.mu is held.
func (p *Pacer) sweep(now time.Time) {
	p.lastSweep = now
	for id, e := range p.entries {
		if !now.Before(e.until) {
			delete(p.entries, id)
		}
	}
}

// Len is the number of grants remembered (tests).
func (p *Pacer) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}
