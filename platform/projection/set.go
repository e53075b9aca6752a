package projection

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/eventlog"
)

// Set is the projections of one service: their runners, the listener that
// follows their checkpoints, and the operations on them.
type Set struct {
	pool     *pgxpool.Pool
	log      *eventlog.Log
	listener *Listener
	runners  map[string]*Runner
	order    []string
}

// NewSet prepares the projections of a service whose read models live in
// pool's schema and whose events are in log.
func NewSet(ctx context.Context, pool *pgxpool.Pool, log *eventlog.Log, logger *slog.Logger, projections ...Projection) (*Set, error) {
	if err := Setup(ctx, pool); err != nil {
		return nil, err
	}
	s := &Set{pool: pool, log: log, listener: NewListener(pool, logger), runners: map[string]*Runner{}}
	for _, p := range projections {
		if _, dup := s.runners[p.Name]; dup {
			return nil, fmt.Errorf("projection %s registered twice", p.Name)
		}
		source := log
		if p.Source != nil {
			source = p.Source
		}
		r, err := NewRunner(pool, source, s.listener, p, logger)
		if err != nil {
			return nil, err
		}
		s.runners[p.Name] = r
		s.order = append(s.order, p.Name)
	}
	return s, nil
}

// Run runs the listener and every runner until ctx ends.
func (s *Set) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.listener.Run(ctx) })
	for _, name := range s.order {
		r := s.runners[name]
		wg.Go(func() { r.Run(ctx) })
	}
	wg.Wait()
	return nil
}

// WaitFor blocks until projection name has applied the event at seq.
func (s *Set) WaitFor(ctx context.Context, name string, seq uint64) error {
	return s.listener.WaitFor(ctx, name, seq)
}

// Stream is the name of the service's own stream.
func (s *Set) Stream() string { return s.log.Stream() }

// StreamOf is the name of the stream one projection consumes.
func (s *Set) StreamOf(name string) string {
	if r, ok := s.runners[name]; ok {
		return r.log.Stream()
	}
	return s.log.Stream()
}

// Names lists the projections in registration order.
func (s *Set) Names() []string { return append([]string(nil), s.order...) }

// Checkpoint returns a projection's checkpoint.
func (s *Set) Checkpoint(ctx context.Context, name string) (uint64, error) {
	if _, ok := s.runners[name]; !ok {
		return 0, fmt.Errorf("projection %s: %w", name, ErrUnknown)
	}
	return Checkpoint(ctx, s.pool, name)
}

// Rebuild empties a projection and waits until the leader has replayed every
// event that was in the stream when the rebuild started. It returns the
// checkpoint reached.
func (s *Set) Rebuild(ctx context.Context, name string) (uint64, error) {
	r, ok := s.runners[name]
	if !ok {
		return 0, fmt.Errorf("projection %s: %w", name, ErrUnknown)
	}
	target, err := r.log.LastSeqOf(ctx, r.proj.Subjects...)
	if err != nil {
		return 0, err
	}
	if err := Reset(ctx, s.pool, r.proj); err != nil {
		return 0, err
	}
	if err := s.listener.WaitFor(ctx, name, target); err != nil {
		return 0, err
	}
	return Checkpoint(ctx, s.pool, name)
}
