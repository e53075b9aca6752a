package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

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
	return NewRunner(s.pool, s.source(p.Source), s.listener, p, logger, WithTracer(s.tracer))
}

func (r *Runner) about() about {
	return about{name: r.proj.Name, kind: KindProjection, log: r.log, subjects: r.proj.Subjects, reset: r.proj.truncate}
}

func (r Reactor) follower(s *Set, logger *slog.Logger) (follower, error) {
	return newReactorRunner(s.pool, s.source(r.Source), s.listener, r, logger, s.tracer)
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
	// tracer makes the spans of events applied and handled: the service
	// log's telemetry (eventlog.WithTelemetry), or none.
	tracer trace.Tracer
}

// NewSet prepares the projections and reactors of a service whose read
// models live in pool's schema and whose events are in log. They trace
// with log's telemetry (eventlog.WithTelemetry).
func NewSet(ctx context.Context, pool *pgxpool.Pool, log *eventlog.Log, logger *slog.Logger, members ...Member) (*Set, error) {
	if err := Setup(ctx, pool); err != nil {
		return nil, err
	}
	s := &Set{pool: pool, log: log, listener: NewListener(pool, logger), members: map[string]follower{},
		tracer: log.Telemetry().TracerProvider().Tracer("gatehouse.dev/platform/projection")}
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

// Head is the stream sequence of the newest event a member consumes.
func (s *Set) Head(ctx context.Context, name string) (uint64, error) {
	m, ok := s.members[name]
	if !ok {
		return 0, fmt.Errorf("projection %s: %w", name, ErrUnknown)
	}
	a := m.about()
	head, err := a.log.LastSeqOf(ctx, a.subjects...)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil // another service's stream, not created yet: nothing to follow
	}
	return head, err
}

// Waiting is when the oldest event a member has not handled yet was stored,
// and whether there is one (the member is behind).
func (s *Set) Waiting(ctx context.Context, name string) (time.Time, bool, error) {
	m, ok := s.members[name]
	if !ok {
		return time.Time{}, false, fmt.Errorf("projection %s: %w", name, ErrUnknown)
	}
	checkpoint, err := Checkpoint(ctx, s.pool, name)
	if err != nil {
		return time.Time{}, false, err
	}
	a := m.about()
	at, behind, err := a.log.FirstAfter(ctx, checkpoint, a.subjects...)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return time.Time{}, false, nil
	}
	return at, behind, err
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

// RebuildOptions tune a rebuild.
type RebuildOptions struct {
	// MaxRate caps the build's speed in events per second (0: as fast as it
	// goes), to spare a busy database.
	MaxRate float64
}

// StartRebuild asks for a rebuild and returns at once, with the state of
// the member and the stream sequence the rebuild must reach.
//
// A projection is rebuilt beside its live tables (build.go): readers keep
// the live read model until the rebuilt one swaps in, caught up. A build
// already under way is not restarted; its state is reported. A reactor is
// rewound at once: its leader replays the stream through it.
func (s *Set) StartRebuild(ctx context.Context, name string, opts RebuildOptions) (Status, uint64, error) {
	m, ok := s.members[name]
	if !ok {
		return Status{}, 0, fmt.Errorf("projection %s: %w", name, ErrUnknown)
	}
	a := m.about()
	target, err := a.log.LastSeqOf(ctx, a.subjects...)
	if err != nil {
		return Status{}, 0, err
	}
	if a.kind == KindReactor {
		if err := rewind(ctx, s.pool, a.name, 0, a.reset); err != nil {
			return Status{}, 0, err
		}
	} else {
		r := m.(*Runner)
		schema, err := r.schema(ctx)
		if err != nil {
			return Status{}, 0, err
		}
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			return requestBuild(ctx, tx, schema, name, r.proj.version(), ReasonRebuild, target, opts.MaxRate)
		})
		if err != nil {
			return Status{}, 0, err
		}
		if b, err := loadBuild(ctx, s.pool, schema, name); err == nil && b != nil {
			target = max(target, b.Target)
		}
	}
	st, err := s.Status(ctx, name)
	return st, target, err
}

// Rebuild rebuilds a projection (or replays a reactor) and waits until the
// rebuilt read model is live, caught up with every event that was in the
// stream when the rebuild was asked for. It returns the checkpoint reached.
func (s *Set) Rebuild(ctx context.Context, name string) (uint64, error) {
	_, target, err := s.StartRebuild(ctx, name, RebuildOptions{})
	if err != nil {
		return 0, err
	}
	return s.WaitRebuilt(ctx, name, target)
}

// WaitRebuilt waits until no build of name is under way and its checkpoint
// has reached target, and returns the checkpoint.
func (s *Set) WaitRebuilt(ctx context.Context, name string, target uint64) (uint64, error) {
	if _, ok := s.members[name]; !ok {
		return 0, fmt.Errorf("projection %s: %w", name, ErrUnknown)
	}
	for {
		wake := s.listener.buildWatch(name)
		st, err := s.Status(ctx, name)
		if err != nil {
			return 0, err
		}
		if st.Build == nil {
			if err := s.listener.WaitFor(ctx, name, target); err != nil {
				return 0, err
			}
			if st, err = s.Status(ctx, name); err != nil {
				return 0, err
			}
			if st.Build == nil {
				return st.Checkpoint, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("projection %s: waiting for the rebuild: %w", name, context.Cause(ctx))
		case <-wake:
		case <-time.After(time.Second):
		}
	}
}

// Status reports a member's checkpoint, live version and build under way.
func (s *Set) Status(ctx context.Context, name string) (Status, error) {
	m, ok := s.members[name]
	if !ok {
		return Status{}, fmt.Errorf("projection %s: %w", name, ErrUnknown)
	}
	st := Status{Name: name, Kind: m.about().kind, Version: 1}
	var err error
	if st.Checkpoint, err = Checkpoint(ctx, s.pool, name); err != nil {
		return Status{}, err
	}
	if r, ok := m.(*Runner); ok {
		schema, err := r.schema(ctx)
		if err != nil {
			return Status{}, err
		}
		if st.Version, err = liveVersion(ctx, s.pool, schema, name); err != nil {
			return Status{}, err
		}
		if st.Build, err = loadBuild(ctx, s.pool, schema, name); err != nil {
			return Status{}, err
		}
	}
	return st, nil
}

// HoldSwap keeps a build of projection name in this process from swapping in
// until release is called: the copies are filled and kept caught up, the
// live tables untouched. Tests use it to look at a finished build (and
// its schema, Status.Build.Schema) before readers see it.
func (s *Set) HoldSwap(name string) (release func()) {
	r, ok := s.members[name].(*Runner)
	if !ok {
		return func() {}
	}
	ch := make(chan struct{})
	r.hold.Store(&ch)
	var once sync.Once
	return func() {
		once.Do(func() {
			r.hold.Store(nil)
			close(ch)
		})
	}
}
