package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
)

// Reading a stream live. Read is the one subscription every follower of a
// stream uses: the projection runner's durable consumers aside, reactors
// (platform/projection) and tails read through it. A Tail keeps in-memory
// state on every replica: it follows a stream from a given sequence (or from
// now), in order, re-subscribing from the last event it handled after any
// failure, and can say when it has caught up with what the stream held at a
// given moment.

// UndecodableError reports a stored message that is not an event envelope.
// Read stops at it; its callers log it and resume after it.
type UndecodableError struct {
	Seq uint64
	Err error
}

func (e *UndecodableError) Error() string {
	return fmt.Sprintf("eventlog: undecodable message at seq %d: %v", e.Seq, e.Err)
}

func (e *UndecodableError) Unwrap() error { return e.Err }

// Read delivers the events on subjects (all of the stream when none) from
// stream sequence from (0 or 1: the first) to fn, one at a time, in stream
// order, until ctx ends (it returns ctx's cause), fn returns an error (it
// returns that error), a message cannot be decoded (*UndecodableError) or the
// subscription fails. Gaps and server restarts are repaired by the ordered
// consumer underneath; after any return, a caller resumes from the sequence
// after the last event fn accepted, so no event is ever skipped.
func (l *Log) Read(ctx context.Context, from uint64, subjects []string, fn func(Record) error, opts ...ReadOption) error {
	var o readOptions
	for _, opt := range opts {
		opt(&o)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	c, err := l.js.OrderedConsumer(ctx, l.stream, cfg)
	if err != nil {
		return fmt.Errorf("eventlog: follow %s: %w", l.stream, err)
	}
	msgs, err := c.Messages()
	if err != nil {
		return fmt.Errorf("eventlog: follow %s: %w", l.stream, err)
	}
	defer msgs.Stop()
	stop := context.AfterFunc(ctx, msgs.Stop)
	defer stop()
	for {
		m, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("eventlog: follow %s: %w", l.stream, err)
		}
		rec, err := DecodeMsgFor(m, o.want)
		if err != nil {
			meta, merr := m.Metadata()
			if merr != nil {
				return fmt.Errorf("eventlog: follow %s: %w", l.stream, merr)
			}
			return &UndecodableError{Seq: meta.Sequence.Stream, Err: err}
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// TailConfig says what a Tail follows and what it does with each event.
type TailConfig struct {
	// Name names the tail in logs, for example "token.revocations".
	Name string
	// Subjects filter the stream; none follows all of it.
	Subjects []string
	// From is the stream sequence of the first event to handle. 0 means from
	// now: every event stored after Run began (the stream's last sequence is
	// read when Run starts, so none in between is missed).
	From uint64
	// Handle applies one event to the follower's state. It is called once per
	// event, in stream order, never concurrently. An error is logged and the
	// same event is offered again after a pause: nothing behind it is handled
	// meanwhile, and the tail is not caught up.
	Handle func(Record) error
}

// Tail follows a stream in this process. Create it with Log.Tail and call Run.
type Tail struct {
	log    *Log
	cfg    TailConfig
	logger *slog.Logger

	mu      sync.Mutex
	started bool          // pos is known (From resolved)
	pos     uint64        // the last event handled, or the one before From
	moved   chan struct{} // closed and replaced whenever pos moves or starts
}

// Tail returns a Tail of the log's stream.
func (l *Log) Tail(cfg TailConfig, logger *slog.Logger) *Tail {
	return &Tail{log: l, cfg: cfg, logger: logger.With("tail", cfg.Name), moved: make(chan struct{})}
}

const (
	tailRetryMin = 100 * time.Millisecond
	tailRetryMax = 5 * time.Second
)

// Run follows the stream until ctx ends. It never returns early: a lost
// connection, a stream that does not exist yet or a failing Handle are
// retried, resuming right after the last event handled.
func (t *Tail) Run(ctx context.Context) error {
	backoff := tailRetryMin
	for {
		err := t.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var undecodable *UndecodableError
		switch {
		case errors.As(err, &undecodable):
			// Nothing can ever apply it: say so loudly and go on after it.
			t.logger.Error("undecodable event skipped", "seq", undecodable.Seq, "err", undecodable.Err)
			t.advance(undecodable.Seq)
			continue
		case errors.Is(err, jetstream.ErrStreamNotFound):
			t.logger.Info("waiting for the stream to exist", "stream", t.log.Stream(), "backoff", backoff)
		default:
			t.logger.Warn("tail interrupted; resuming after the last event handled", "err", err, "position", t.Position(), "backoff", backoff)
		}
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(backoff*2, tailRetryMax)
	}
}

// run resolves the starting point once, then reads from just after pos.
func (t *Tail) run(ctx context.Context) error {
	pos, started := t.position()
	if !started {
		from := t.cfg.From
		if from == 0 {
			last, err := t.log.LastSeq(ctx)
			if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				return err
			}
			from = last + 1 // a stream not created yet: everything, once it exists
		}
		t.mu.Lock()
		t.started, t.pos = true, from-1
		t.wakeLocked()
		t.mu.Unlock()
		pos = from - 1
	}
	return t.log.Read(ctx, pos+1, t.cfg.Subjects, func(rec Record) error {
		if rec.Seq <= t.Position() {
			return nil // delivered again after a resubscription
		}
		backoff := tailRetryMin
		for attempt := 1; ; attempt++ {
			err := t.handle(ctx, rec, attempt)
			if err == nil {
				break
			}
			t.logger.Error("event not handled; trying it again", "seq", rec.Seq, "event", rec.Type(), "attempt", attempt, "err", err)
			if !sleep(ctx, backoff) {
				return context.Cause(ctx)
			}
			backoff = min(backoff*2, tailRetryMax)
		}
		t.advance(rec.Seq)
		return nil
	})
}

// handle runs Handle on one event, in a span of the event's trace when the
// log is traced (telemetry.go).
func (t *Tail) handle(ctx context.Context, rec Record, attempt int) error {
	if t.log.tracer == nil {
		return t.cfg.Handle(rec)
	}
	_, span := StartSpan(ctx, t.log.tracer, "tail "+t.cfg.Name, rec,
		attribute.String("gatehouse.tail", t.cfg.Name), attribute.Int("gatehouse.attempt", attempt), AttrStream.String(t.log.stream))
	err := t.cfg.Handle(rec)
	EndSpan(span, err)
	return err
}

func (t *Tail) position() (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos, t.started
}

func (t *Tail) advance(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq > t.pos {
		t.pos = seq
		t.wakeLocked()
	}
}

func (t *Tail) wakeLocked() {
	close(t.moved)
	t.moved = make(chan struct{})
}

// Position is the stream sequence of the last event handled (0 before Run
// has started). Every event on the tail's subjects up to it has been handled.
func (t *Tail) Position() uint64 {
	pos, _ := t.position()
	return pos
}

// WaitFor blocks until the tail has handled every event on its subjects up
// to stream sequence seq, or ctx ends.
func (t *Tail) WaitFor(ctx context.Context, seq uint64) error {
	for {
		t.mu.Lock()
		done, moved := t.started && t.pos >= seq, t.moved
		t.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("eventlog: tail %s waiting for seq %d: %w", t.cfg.Name, seq, context.Cause(ctx))
		case <-moved:
		}
	}
}

// CatchUp reads the sequence of the newest event on the tail's subjects now
// and waits until the tail has handled it: when it returns, the tail's state
// reflects everything the stream held when it was called. It returns that
// sequence. A stream that does not exist yet holds nothing.
func (t *Tail) CatchUp(ctx context.Context) (uint64, error) {
	var (
		last uint64
		err  error
	)
	if len(t.cfg.Subjects) == 0 {
		last, err = t.log.LastSeq(ctx)
	} else {
		last, err = t.log.LastSeqOf(ctx, t.cfg.Subjects...)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		last, err = 0, nil
	}
	if err != nil {
		return 0, err
	}
	return last, t.WaitFor(ctx, last)
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
