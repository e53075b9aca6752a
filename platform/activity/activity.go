// Package activity notes in memory when things (sessions) were last used, so
// that hot paths — authenticating a browser, introspecting a token — never
// write; a service flushes the notes as one event per interval.
//
// Notes not flushed before a crash are lost: activity is an approximation.
package activity

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Note is the latest use of one thing.
type Note struct {
	At time.Time
	// IP is the address it was used from; "" when the use did not say.
	IP string
	// Owner is whose thing it is (a session's user id), so that the flush
	// can seal the address under the owner's personal key; "" for nobody.
	Owner string
}

// Recorder holds the notes not yet written. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	pending map[string]Note
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{pending: map[string]Note{}} }

// Touch notes that id, owner's, was used at at, from ip ("" when unknown).
func (r *Recorder) Touch(id, owner, ip string, at time.Time) {
	if id == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.noteLocked(id, Note{At: at, IP: ip, Owner: owner})
}

// noteLocked keeps the later of two notes; a later note without an address
// keeps the earlier address.
func (r *Recorder) noteLocked(id string, n Note) {
	old, ok := r.pending[id]
	switch {
	case !ok:
	case n.At.Before(old.At):
		n, old = old, n
		fallthrough
	default:
		if n.IP == "" {
			n.IP = old.IP
		}
		if n.Owner == "" {
			n.Owner = old.Owner
		}
	}
	r.pending[id] = n
}

// Last returns the latest unwritten note of id.
func (r *Recorder) Last(id string) (Note, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.pending[id]
	return n, ok
}

// Flush takes every note and writes them in chunks of at most chunk notes,
// ids in order. When write fails, the notes not written are put back for the
// next flush (newer notes taken since win) and the error is returned.
func (r *Recorder) Flush(ctx context.Context, chunk int, write func(ctx context.Context, ids []string, notes map[string]Note) error) error {
	r.mu.Lock()
	notes := r.pending
	r.pending = map[string]Note{}
	r.mu.Unlock()
	ids := make([]string, 0, len(notes))
	for id := range notes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for part := range slices.Chunk(ids, max(chunk, 1)) {
		if err := write(ctx, part, notes); err != nil {
			r.mu.Lock()
			for id, n := range notes {
				r.noteLocked(id, n)
			}
			r.mu.Unlock()
			return err
		}
		for _, id := range part {
			delete(notes, id)
		}
	}
	return nil
}

// Run calls flush every interval until ctx ends, then once more with at most
// final to finish, so a clean shutdown loses nothing.
func Run(ctx context.Context, every, final time.Duration, flush func(context.Context)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			flush(ctx)
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), final)
			defer cancel()
			flush(last)
			return
		}
	}
}
