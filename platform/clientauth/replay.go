package clientauth

import (
	"context"
	"sync"
	"time"
)

// sweepEvery is how often MemoryReplay drops expired entries.
const sweepEvery = time.Minute

// MemoryReplay is a Replay held in memory, for tests and single-process
// deployments. It is safe for concurrent use.
type MemoryReplay struct {
	now func() time.Time

	mu        sync.Mutex
	until     map[replayKey]time.Time // guarded by mu
	nextSweep time.Time               // guarded by mu
}

// replayKey identifies one assertion: jti is unique only per client.
type replayKey struct {
	clientID, jti string
}

// NewMemoryReplay returns an empty MemoryReplay on the system clock.
func NewMemoryReplay() *MemoryReplay { return NewMemoryReplayWithClock(time.Now) }

// NewMemoryReplayWithClock returns an empty MemoryReplay on the given clock.
func NewMemoryReplayWithClock(now func() time.Time) *MemoryReplay {
	return &MemoryReplay{now: now, until: make(map[replayKey]time.Time)}
}

// Seen records (clientID, jti) until the given time and reports whether it
// was already recorded and not yet expired.
func (m *MemoryReplay) Seen(ctx context.Context, clientID, jti string, until time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := m.now()
	key := replayKey{clientID, jti}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if t, ok := m.until[key]; ok && now.Before(t) {
		return true, nil
	}
	m.until[key] = until
	return false, nil
}

// Len returns the number of entries held, expired ones not yet swept included.
func (m *MemoryReplay) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.until)
}

// sweep drops expired entries, at most once per sweepEvery. m.mu must be held.
func (m *MemoryReplay) sweep(now time.Time) {
	if now.Before(m.nextSweep) {
		return
	}
	for k, t := range m.until {
		if !now.Before(t) {
			delete(m.until, k)
		}
	}
	m.nextSweep = now.Add(sweepEvery)
}
