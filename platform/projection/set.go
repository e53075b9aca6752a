package projection

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/eventlog"
)

// Kinds of members, as ListProjections names them.
const (
	KindProjection = "projection"
	KindReactor    = "reactor"
)

// Member is what a Set runs: a Projection or a Reactor.
type Member interface {
	follower(s *Set, logger *slog.Logger) (follower, error)
}

// follower is a member as the set runs it.
type follower interface {
	Run(ctx context.Context) error
	about() about
}

// about is what the set knows of a member.
type about struct {
	name, kind string
	log        *eventlog.Log
	subjects   []string
	reset      func(ctx context.Context, tx pgx.Tx) error
}

func (p Projection) follower(s *Set, logger *slog.Logger) (follower, error) {
	return NewRunner(s.pool, s.source(p.Source), s.listener, p, logger)
}

func (r *Runner) about() about {
	return about{name: r.proj.Name, kind: KindProjection, log: r.log, subjects: r.proj.Subjects, reset: r.proj.Reset}
}

func (r Reactor) follower(s *Set, logger *slog.Logger) (follower, error) {
	return newReactorRunner(s.pool, s.source(r.Source), s.listener, r, logger)
}

func (rr *reactorRunner) about() about {
	return about{name: rr.r.Name, kind: KindReactor, log: rr.log, subjects: rr.r.Subjects, reset: rr.r.Reset}
}

// Set is the projections and reactors of one service: their runners, the
// listener that follows their checkpoints, and the operations on them.
type Set struct {
	pool     *pgxpool.Pool
	log      *eventlog.Log
	listener *Listener
	members  map[string]follower
	order    []string
}

// NewSet prepares the projections and reactors of a service whose read
// models live in pool's schema and whose events are in log.
func NewSet(ctx context.Context, pool *pgxpool.Pool, log *eventlog.Log, logger *slog.Logger, members ...Member) (*Set, error) {
	if err := Setup(ctx, pool); err != nil {
		return nil, err
	}
	s := &Set{pool: pool, log: log, listener: NewListener(pool, logger), members: map[string]follower{}}
	for _, m := range members {
		f, err := m.follower(s, logger)
		if err != nil {
			return nil, err
		}
		name := f.about().name
		if _, dup := s.members[name]; dup {
			return nil, fmt.Errorf("projection %s registered twice", name)
		}
		s.members[name] = f
		s.order = append(s.order, name)
	}
	return s, nil
}

// source is the log a member reads: its own Source, or the service's stream.
func (s *Set) source(l *eventlog.Log) *eventlog.Log {
	if l != nil {
		return l
	}
	return s.log
}

// Run runs the listener and every member until ctx ends.
func (s *Set) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.listener.Run(ctx) })
	for _, name := range s.order {
		m := s.members[name]
		wg.Go(func() { m.Run(ctx) })
	}
	wg.Wait()
	return nil
}

// WaitFor blocks until projection or reactor name has handled the event at seq.
func (s *Set) WaitFor(ctx context.Context, name string, seq uint64) error {
	return s.listener.WaitFor(ctx, name, seq)
}

// Stream is the name of the service's own stream.
func (s *Set) Stream() string { return s.log.Stream() }

// StreamOf is the name of the stream one member consumes.
func (s *Set) StreamOf(name string) string {
	if m, ok := s.members[name]; ok {
		return m.about().log.Stream()
	}
	return s.log.Stream()
}

// KindOf says whether name is a projection or a reactor ("" when unknown).
func (s *Set) KindOf(name string) string {
	if m, ok := s.members[name]; ok {
		return m.about().kind
	}
	return ""
}

// Names lists the projections and reactors in registration order.
func (s *Set) Names() []string { return append([]string(nil), s.order...) }

// Checkpoint returns a member's checkpoint.
func (s *Set) Checkpoint(ctx context.Context, name string) (uint64, error) {
	if _, ok := s.members[name]; !ok {
		return 0, fmt.Errorf("projection %s: %w", name, ErrUnknown)
	}
	return Checkpoint(ctx, s.pool, name)
}

// Rebuild empties a projection (or rewinds a reactor) and waits until its
// leader has replayed every event that was in the stream when the rebuild
// started. It returns the checkpoint reached.
func (s *Set) Rebuild(ctx context.Context, name string) (uint64, error) {
	m, ok := s.members[name]
	if !ok {
		return 0, fmt.Errorf("projection %s: %w", name, ErrUnknown)
	}
	a := m.about()
	target, err := a.log.LastSeqOf(ctx, a.subjects...)
	if err != nil {
		return 0, err
	}
	if err := rewind(ctx, s.pool, a.name, a.reset); err != nil {
		return 0, err
	}
	if err := s.listener.WaitFor(ctx, name, target); err != nil {
		return 0, err
	}
	return Checkpoint(ctx, s.pool, name)
}
