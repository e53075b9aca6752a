package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
)

// Reactor makes side effects from a stream's events: it sends the email a
// verification asks for, tells the homeserver about a new user, ends the
// sessions of a deactivated user. It is a projection's sibling, with what a
// side effect needs instead of a transaction:
//
//   - One leader. Like a projection, each reactor is run by one replica at a
//     time (a PostgreSQL advisory lock); the leader gives up as soon as the
//     connection holding the lock breaks.
//   - In order, one at a time, never skipping. Handle is called for each
//     event in stream order, outside any database transaction, so slow I/O
//     holds no lock. When it fails, the same event is tried again with
//     exponential backoff (RetryMin to RetryMax) and nothing behind it moves.
//   - A checkpoint advanced only after Handle succeeded: a row of
//     projection_checkpoints like a projection's, announced the same way, so
//     WaitFor, ListProjections and RebuildProjection treat both alike. A crash
//     between a side effect and its checkpoint repeats that event: Handle must
//     be idempotent, and should decide from the log (not from memory) whether
//     a side effect is still due.
//   - Rewind. A rebuild sets the checkpoint back to zero (running Reset, when
//     set, in the same transaction): the leader notices and replays the
//     stream through Handle.
//
// Handle returns nil for events that need nothing, and for a change refused
// for good (after logging it): a reactor never drops an event by itself.
type Reactor struct {
	// Name is unique among the service's projections and reactors.
	Name string
	// Subjects it consumes, for example "accounts.user.*".
	Subjects []string
	// Source is the stream the events come from when it is not the service's
	// own: another service's stream, followed read-only (eventlog.Follow).
	Source *eventlog.Log
	// Handle makes the side effects of one event. Events of types this binary
	// does not know arrive with a nil Event.
	Handle func(ctx context.Context, rec eventlog.Record) error
	// HandleBatch, optional, makes the side effects of a run of events at
	// once instead of Handle on each: for side effects that can be
	// pipelined (appends to another stream, eventlog.Log.AppendEach), where
	// one round trip per event would be the limit in a bulk of events (an
	// import). It gets up to Batch consecutive events Relevant accepts, in
	// stream order, as they arrive while more are pending (a single event
	// once the reactor has caught up); on failure the whole run is tried
	// again, so it must be idempotent for every event of it, and a crash
	// repeats the run. The checkpoint moves past a run once it succeeded.
	HandleBatch func(ctx context.Context, recs []eventlog.Record) error
	// Batch is how many events HandleBatch gets at most (DefaultBatch when zero).
	Batch int
	// Relevant, optional, tells from an event alone whether Handle has
	// anything to do with it. Events it rejects skip Handle, and the
	// checkpoint moves over them lazily — once the reactor has caught up
	// with the stream, or every lazyEvents events or lazyInterval — instead
	// of one transaction per event: a bulk of events that need nothing (an
	// import) costs little. A crash replays those events through Relevant
	// only.
	Relevant func(rec eventlog.Record) bool
	// Ignores, optional, are event types Handle has nothing to do with
	// (Relevant rejects them too, when set): they are not even decoded, and
	// skip Handle as those Relevant rejects do.
	Ignores []proto.Message
	// Reset, optional, forgets what the reactor keeps in its own tables before
	// a replay. Side effects already made are not undone.
	Reset func(ctx context.Context, tx pgx.Tx) error
	// RetryMin and RetryMax bound the pause between attempts at one event
	// (DefaultRetryMin and DefaultRetryMax when zero).
	RetryMin, RetryMax time.Duration
}

// Default pauses between attempts at one event.
const (
	DefaultRetryMin = 250 * time.Millisecond
	DefaultRetryMax = 30 * time.Second
)

// How far the checkpoint of a reactor may lag behind events Relevant
// rejected, while more are pending.
const (
	lazyEvents   = 1000
	lazyInterval = time.Second
)

func (r Reactor) validate() error {
	switch {
	case !validName.MatchString(r.Name):
		return fmt.Errorf("reactor: invalid name %q", r.Name)
	case len(r.Subjects) == 0:
		return fmt.Errorf("reactor %s: no subjects", r.Name)
	case r.Handle == nil && r.HandleBatch == nil:
		return fmt.Errorf("reactor %s: Handle or HandleBatch is required", r.Name)
	}
	return nil
}

// decoding is what the reactor decodes: all but Ignores.
func (r Reactor) decoding() eventlog.Decoding {
	if len(r.Ignores) == 0 {
		return nil
	}
	return eventlog.Except(eventlog.TypesOf(r.Ignores...))
}

// reactorRunner runs one reactor: it waits to be its leader, then reacts.
type reactorRunner struct {
	pool     *pgxpool.Pool
	log      *eventlog.Log
	listener *Listener
	r        Reactor
	logger   *slog.Logger
	tracer   trace.Tracer // a span of each attempt at an event
}

func newReactorRunner(pool *pgxpool.Pool, log *eventlog.Log, listener *Listener, r Reactor, logger *slog.Logger, tracer trace.Tracer) (*reactorRunner, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if r.RetryMin <= 0 {
		r.RetryMin = DefaultRetryMin
	}
	if r.RetryMax < r.RetryMin {
		r.RetryMax = max(DefaultRetryMax, r.RetryMin)
	}
	return &reactorRunner{pool: pool, log: log, listener: listener, r: r, logger: logger.With("reactor", r.Name), tracer: tracer}, nil
}

// errSkipped means an undecodable message was stepped over: go on at once.
var errSkipped = errors.New("undecodable message skipped")

// Run reacts until ctx ends. It returns nil on cancellation and recovers from
// every other failure by starting over from the checkpoint.
func (rr *reactorRunner) Run(ctx context.Context) error {
	var wait restarts
	for {
		began := time.Now()
		err := lead(ctx, rr.pool, rr.r.Name, rr.react)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, errRewound):
			rr.logger.Info("checkpoint rewound; replaying from it")
			wait.reset()
			continue
		case errors.Is(err, errSkipped):
			continue
		}
		backoff := wait.after(time.Since(began))
		if isStreamNotFound(err) {
			rr.logger.Info("waiting for the reactor's stream to exist", "err", err, "backoff", backoff)
		} else {
			rr.logger.Error("reactor stopped; restarting from its checkpoint", "err", err, "backoff", backoff)
		}
		if !sleep(ctx, backoff) {
			return nil
		}
	}
}

// react follows the stream from just after the checkpoint as the leader.
func (rr *reactorRunner) react(ctx context.Context) error {
	name := rr.r.Name
	if _, err := rr.pool.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return fmt.Errorf("ensure checkpoint: %w", err)
	}
	// A projection of the same name on the service's own stream (what a
	// reactor was before it became one, like notify's delivery) left a
	// durable consumer behind: remove it. (Never on another service's stream,
	// whose consumers are not ours to touch.)
	if rr.r.Source == nil {
		if err := rr.log.JetStream().DeleteConsumer(ctx, rr.log.Stream(), "projection_"+name); err != nil &&
			!errors.Is(err, jetstream.ErrConsumerNotFound) && !isStreamNotFound(err) {
			rr.logger.Debug("could not remove an old projection consumer", "err", err)
		}
	}
	seen := rr.listener.snapshot(name) // before the checkpoint is read: no rewind slips in between
	start, err := Checkpoint(ctx, rr.pool, name)
	if err != nil {
		return err
	}
	var checkpoint atomic.Uint64
	checkpoint.Store(start)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var advancing sync.Mutex // from writing the checkpoint row to storing it in checkpoint
	go rr.listener.watchRewind(ctx, rr.pool, name, seen, checkpoint.Load, &advancing, cancel)

	rr.logger.Debug("leading reactor", "checkpoint", start)
	lastAdvance := time.Now()
	// run holds the events of a HandleBatch run not handled yet.
	var run []eventlog.Record
	// through handles the run, then moves the checkpoint to seq.
	through := func(seq uint64) error {
		if len(run) > 0 {
			if err := rr.handleRun(ctx, run); err != nil {
				return err
			}
			run = run[:0]
		}
		lastAdvance = time.Now()
		advancing.Lock()
		defer advancing.Unlock()
		if err := rr.advance(ctx, checkpoint.Load(), seq); err != nil {
			return err
		}
		checkpoint.Store(seq)
		return nil
	}
	err = rr.log.Read(ctx, start+1, rr.r.Subjects, func(rec eventlog.Record) error {
		cp := checkpoint.Load()
		if rec.Seq <= cp {
			return nil
		}
		relevant := !rec.Skipped && (rr.r.Relevant == nil || rec.Event == nil || rr.r.Relevant(rec))
		switch {
		case relevant && rr.r.HandleBatch != nil:
			run = append(run, rec)
			if rec.Pending > 0 && len(run) < rr.batch() && time.Since(lastAdvance) < lazyInterval {
				return nil // with the events that follow
			}
		case relevant:
			if err := rr.handle(ctx, rec); err != nil {
				return err
			}
		case len(run) == 0 && rec.Pending > 0 && rec.Seq-cp < lazyEvents && time.Since(lastAdvance) < lazyInterval:
			return nil // over it later, with the events that follow
		case len(run) > 0 && rec.Pending > 0 && len(run) < rr.batch() && time.Since(lastAdvance) < lazyInterval:
			return nil // after the run, with the events that follow
		}
		return through(rec.Seq)
	}, eventlog.WithDecoding(rr.r.decoding()))
	var undecodable *eventlog.UndecodableError
	if errors.As(err, &undecodable) {
		rr.logger.Error("undecodable event skipped", "seq", undecodable.Seq, "err", undecodable.Err)
		if err := through(undecodable.Seq); err != nil {
			return err
		}
		return errSkipped
	}
	return err
}

// batch is how many events HandleBatch gets at most.
func (rr *reactorRunner) batch() int {
	if rr.r.Batch > 0 {
		return rr.r.Batch
	}
	return DefaultBatch
}

// handleRun runs HandleBatch on a run until it succeeds or ctx ends.
func (rr *reactorRunner) handleRun(ctx context.Context, run []eventlog.Record) error {
	backoff := rr.r.RetryMin
	for attempt := 1; ; attempt++ {
		err := rr.r.HandleBatch(ctx, run)
		if err == nil {
			if attempt > 1 {
				rr.logger.InfoContext(ctx, "events handled after retries", "events", len(run), "from", run[0].Seq, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if attempt == 1 || backoff == rr.r.RetryMax {
			rr.logger.WarnContext(ctx, "events not handled yet; retrying", "events", len(run), "from", run[0].Seq,
				"attempt", attempt, "retry_in", backoff, "err", err)
		}
		if !sleep(ctx, backoff) {
			return context.Cause(ctx)
		}
		backoff = min(backoff*2, rr.r.RetryMax)
	}
}

// handle runs Handle until it succeeds or ctx ends.
func (rr *reactorRunner) handle(ctx context.Context, rec eventlog.Record) error {
	backoff := rr.r.RetryMin
	for attempt := 1; ; attempt++ {
		hctx, span := eventlog.StartSpan(ctx, rr.tracer, "reactor "+rr.r.Name, rec,
			attrProjection.String(rr.r.Name), attrAttempt.Int(attempt), eventlog.AttrStream.String(rr.log.Stream()))
		err := rr.r.Handle(hctx, rec)
		eventlog.EndSpan(span, err)
		if err == nil {
			if attempt > 1 {
				rr.logger.InfoContext(hctx, "event handled after retries", "event", rec.Type(), "seq", rec.Seq, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if attempt == 1 || backoff == rr.r.RetryMax {
			rr.logger.WarnContext(hctx, "event not handled yet; retrying", "event", rec.Type(), "seq", rec.Seq,
				"attempt", attempt, "retry_in", backoff, "err", err)
		}
		if !sleep(ctx, backoff) {
			return context.Cause(ctx)
		}
		backoff = min(backoff*2, rr.r.RetryMax)
	}
}

// advance moves the checkpoint from prev to seq and announces it; a
// checkpoint that is no longer prev was rewound (or another leader moved it).
func (rr *reactorRunner) advance(ctx context.Context, prev, seq uint64) error {
	return pgx.BeginFunc(ctx, rr.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET last_seq = $2, updated_at = now() WHERE name = $1 AND last_seq = $3`,
			rr.r.Name, int64(seq), int64(prev))
		if err != nil {
			return fmt.Errorf("advance checkpoint: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return errRewound
		}
		return notify(ctx, tx, rr.r.Name, fmt.Sprint(seq))
	})
}

// isStreamNotFound reports a stream that does not exist (yet).
func isStreamNotFound(err error) bool { return errors.Is(err, jetstream.ErrStreamNotFound) }

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
