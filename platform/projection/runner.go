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
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/telemetry"
)

// Span attributes of projections and reactors.
const (
	attrProjection = attribute.Key("gatehouse.projection")
	attrBatch      = attribute.Key("messaging.batch.message_count")
	attrAttempt    = attribute.Key("gatehouse.attempt")
)

// DefaultBatch is how many events one transaction applies at most.
const DefaultBatch = 256

// errRewound means the checkpoint moved under the runner (a rebuild, or a
// second leader after a network split): consumption restarts from the checkpoint.
var errRewound = errors.New("checkpoint changed by someone else")

// Runner runs one projection: it waits to be its leader, then applies events.
type Runner struct {
	pool     *pgxpool.Pool
	log      *eventlog.Log
	listener *Listener
	proj     Projection
	logger   *slog.Logger
	batch    int
	decoding eventlog.Decoding // what it decodes: all but the projection's Ignores

	// afterCommit, when set, runs after a batch commits and before it is
	// acknowledged; returning an error abandons the batch unacknowledged (tests
	// use it to crash at the worst moment).
	afterCommit func(lastSeq uint64) error

	// tracer makes a span of each event applied (a child of its append's),
	// unless quiet: its spans would record nothing.
	tracer trace.Tracer
	quiet  bool

	schemaOnce sync.Mutex
	schemaName string // the service's schema, read once (schema)
	// hold, when set, keeps a build from swapping until it is closed (HoldSwap).
	hold atomic.Pointer[chan struct{}]
}

// RunnerOption configures a Runner.
type RunnerOption func(*Runner)

// WithBatch sets how many events one transaction applies at most.
func WithBatch(n int) RunnerOption { return func(r *Runner) { r.batch = max(n, 1) } }

// WithAfterCommit installs a hook between a batch's commit and its ack (tests).
func WithAfterCommit(fn func(lastSeq uint64) error) RunnerOption {
	return func(r *Runner) { r.afterCommit = fn }
}

// WithTracer makes a span of each event applied, in the trace of the
// request that appended it (eventlog.StartSpan).
func WithTracer(t trace.Tracer) RunnerOption { return func(r *Runner) { r.tracer = t } }

// NewRunner returns a Runner for p. The listener tells it about rebuilds.
func NewRunner(pool *pgxpool.Pool, log *eventlog.Log, listener *Listener, p Projection, logger *slog.Logger, opts ...RunnerOption) (*Runner, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	r := &Runner{pool: pool, log: log, listener: listener, proj: p, logger: logger.With("projection", p.Name), batch: p.batch(), decoding: p.decoding(),
		tracer: tracenoop.NewTracerProvider().Tracer("")}
	for _, o := range opts {
		o(r)
	}
	r.quiet = telemetry.RecordsNothing(r.tracer)
	return r, nil
}

// Projection is the projection the runner applies.
func (r *Runner) Projection() Projection { return r.proj }

// Run applies events until ctx ends. It returns nil on cancellation and
// recovers from every other failure by starting over from the checkpoint.
func (r *Runner) Run(ctx context.Context) error {
	var wait restarts
	for {
		began := time.Now()
		err := r.lead(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errRewound) {
			r.logger.Info("checkpoint moved by a rebuild or a reset; resuming from it")
			wait.reset()
			continue
		}
		if errors.Is(err, errDeliveryLost) {
			r.logger.Warn("resuming from the checkpoint", "err", err)
			wait.reset()
			continue
		}
		backoff := wait.after(time.Since(began))
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			// Another service's stream that its owner has not created yet.
			r.logger.Info("waiting for the projection's stream to exist", "err", err, "backoff", backoff)
		} else {
			r.logger.Error("projection stopped; restarting from checkpoint", "err", err, "backoff", backoff)
		}
		if !sleep(ctx, backoff) {
			return nil
		}
	}
}

// lead becomes the projection's leader; it consumes until an error and
// meanwhile runs the builds the projection is asked for (build.go).
func (r *Runner) lead(ctx context.Context) error {
	return lead(ctx, r.pool, r.proj.Name, func(ctx context.Context) error {
		if err := r.ensureCheckpoint(ctx); err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { r.builds(ctx) })
		err := r.consume(ctx)
		cancel()
		wg.Wait()
		return err
	})
}

// swapHold is the channel a build waits on before swapping, nil when none.
func (r *Runner) swapHold() <-chan struct{} {
	if h := r.hold.Load(); h != nil {
		return *h
	}
	return nil
}

// ensureCheckpoint creates the projection's checkpoint row when it has none:
// a read model never applied yet is built by the live runner, from the start
// of the stream, with this binary's Apply, so it is of this binary's Version
// and needs no upgrade build. It runs before the builds are looked at.
func (r *Runner) ensureCheckpoint(ctx context.Context) error {
	if _, err := r.pool.Exec(ctx, `INSERT INTO projection_checkpoints (name, version) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		r.proj.Name, r.proj.version()); err != nil {
		return fmt.Errorf("ensure checkpoint: %w", err)
	}
	return nil
}

// consume applies events as the leader, from just after the checkpoint,
// until an error or a rewind.
func (r *Runner) consume(ctx context.Context) error {
	seen := r.listener.snapshot(r.proj.Name) // before the checkpoint is read: no rewind slips in between
	checkpoint, err := Checkpoint(ctx, r.pool, r.proj.Name)
	if err != nil {
		return err
	}
	consumer, err := r.consumer(ctx, checkpoint)
	if err != nil {
		return err
	}

	msgs := make(chan jetstream.Msg, r.batch)
	stop := make(chan struct{})
	cc, err := consumer.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-stop:
		}
	}, jetstream.PullMaxMessages(r.batch), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer func() { close(stop); cc.Stop() }()

	r.logger.Debug("leading projection", "checkpoint", checkpoint)
	var delivery deliveries
	for {
		rewound, next := r.listener.rewound(ctx, r.pool, r.proj.Name, seen, func() uint64 { return checkpoint })
		if rewound {
			return errRewound
		}
		seen = next
		var first jetstream.Msg
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-cc.Closed():
			return errors.New("consumer closed")
		case <-seen.wake:
			continue
		case first = <-msgs:
		}
		if err := delivery.next(first); err != nil {
			return err
		}
		batch := []jetstream.Msg{first}
	drain:
		for len(batch) < r.batch {
			select {
			case m := <-msgs:
				if err := delivery.next(m); err != nil {
					return err
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		checkpoint, err = r.apply(ctx, checkpoint, batch)
		if err != nil {
			return err
		}
		if r.afterCommit != nil {
			if err := r.afterCommit(checkpoint); err != nil {
				return err
			}
		}
		// AckAll: acknowledging the last message acknowledges the whole batch.
		if err := batch[len(batch)-1].Ack(); err != nil {
			r.logger.Warn("ack failed; the batch will be redelivered and skipped", "err", err)
		}
	}
}

// errDeliveryLost means messages the consumer sent never arrived: the
// runner starts again from its checkpoint.
var errDeliveryLost = errors.New("projection: a delivery was lost")

// deliveries checks that a consumer's messages arrive without a gap. A pull
// request answered by a NATS node that then died leaves the messages it sent
// undelivered, and the consumer goes on with the next ones: applied, and
// acknowledged with every earlier one (AckAll), they would leave the lost
// events out for good (found by the node loss drill: sessions missing from a
// read model whose checkpoint had passed them). The consumer numbers every
// delivery, redeliveries included, one after the other.
type deliveries struct{ last uint64 }

// next checks the consumer sequence of the message after the last one.
func (d *deliveries) next(m jetstream.Msg) error {
	meta, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("projection: message metadata: %w", err)
	}
	if d.last != 0 && meta.Sequence.Consumer != d.last+1 {
		return fmt.Errorf("%w: delivery %d after %d", errDeliveryLost, meta.Sequence.Consumer, d.last)
	}
	d.last = meta.Sequence.Consumer
	return nil
}

// pullExpiry bounds each pull request of a leader's consumer. A pull
// request left with a replica that lost the consumer's leadership (a NATS
// node lost, or a consumer just created that had no leader yet) delivers
// nothing until it expires and the client, missing its heartbeats, asks
// again: with jetstream's default of 30 s, a projection stalled that long
// after NATS or PostgreSQL came back (found by the node loss drill,
// e2e/node_loss_test.go); with 5 s, a projection whose consumer was created
// as a fresh cluster settled still missed a write made just after start.
// Heartbeats come every half of it: an idle projection asks once a second.
const pullExpiry = 2 * time.Second

// consumer (re)creates the projection's durable consumer so that it delivers
// from just after the checkpoint.
func (r *Runner) consumer(ctx context.Context, checkpoint uint64) (jetstream.Consumer, error) {
	js := r.log.JetStream()
	durable := "projection_" + r.proj.Name
	if err := js.DeleteConsumer(ctx, r.log.Stream(), durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("reset consumer: %w", err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        durable,
		Description:    "Gatehouse projection " + r.proj.Name,
		FilterSubjects: r.proj.Subjects,
		AckPolicy:      jetstream.AckAllPolicy,
		AckWait:        time.Minute,
		MaxAckPending:  r.batch * 4,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if checkpoint > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = checkpoint + 1
	}
	c, err := js.CreateConsumer(ctx, r.log.Stream(), cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer: %w", err)
	}
	return c, nil
}

// apply applies a batch in one transaction with the checkpoint and returns the
// new checkpoint. Each event applied is a span in its append's trace, ended
// when the transaction is over.
func (r *Runner) apply(ctx context.Context, checkpoint uint64, batch []jetstream.Msg) (uint64, error) {
	next := checkpoint
	var spans []trace.Span
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var stored int64
		if err := tx.QueryRow(ctx, `SELECT last_seq FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, r.proj.Name).Scan(&stored); err != nil {
			return fmt.Errorf("lock checkpoint: %w", err)
		}
		if uint64(stored) != checkpoint {
			return errRewound
		}
		recs := make([]eventlog.Record, 0, len(batch))
		for _, m := range batch {
			rec, err := eventlog.DecodeMsgFor(m, r.decoding)
			if err != nil {
				return err
			}
			if rec.Seq <= next {
				continue // already applied: a redelivery
			}
			if rec.Skipped {
				next = rec.Seq // a type Apply ignores
				continue
			}
			// The span stands for the event's application, which happens with
			// the batch's (ApplyBatch may apply many in one statement). Its
			// context goes nowhere: none when it would record nothing.
			if !r.quiet {
				_, span := eventlog.StartSpan(ctx, r.tracer, "projection "+r.proj.Name, rec,
					attrProjection.String(r.proj.Name), attrBatch.Int(len(batch)), eventlog.AttrStream.String(r.log.Stream()))
				spans = append(spans, span)
			}
			recs = append(recs, rec)
			next = rec.Seq
		}
		if err := r.proj.applyAll(ctx, tx, recs); err != nil {
			return err
		}
		if next == checkpoint {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET last_seq = $2, updated_at = now() WHERE name = $1`, r.proj.Name, int64(next)); err != nil {
			return fmt.Errorf("advance checkpoint: %w", err)
		}
		return notify(ctx, tx, r.proj.Name, fmt.Sprint(next))
	})
	for _, span := range spans {
		eventlog.EndSpan(span, err)
	}
	if err != nil {
		return checkpoint, err
	}
	return next, nil
}
