package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Published is the outcome of one write of AppendEach.
type Published struct {
	// Seq is the event's stream sequence (also when it was stored before).
	Seq uint64
	// Duplicate: the event was stored already, by an earlier attempt whose
	// acknowledgement was lost or by an earlier run writing the same event
	// (same id, the aggregate ending with it).
	Duplicate bool
	// Err is nil, a *ConflictError (the write's expectation failed and its
	// aggregate does not end with this very event), or what else went wrong.
	Err error
}

// eachWindow is how many publishes AppendEach keeps in flight at most: far
// below the JetStream context's limit of pending asynchronous publishes
// (4000 by default), so concurrent calls do not stall one another.
const eachWindow = 512

// AppendEach stores many writes, each on its own — not atomically, unlike
// Append — pipelining the publishes (JetStream asynchronous publishes, at
// most eachWindow in flight): far faster than one round trip per event, for
// bulk work such as an import. Each write keeps its expectation, and the
// outcome of each is in the result, in order; writes to one aggregate are
// stored in order only if their expectations chain (a write expecting the
// version another one in the same call produces fails instead). Give events
// ids to make a run again idempotent: a write whose aggregate already ends
// with its event (same id) is reported Duplicate, not a conflict. err is
// for what stops the whole call (an event the contract refuses, ctx); a
// write that was not published then has Err set.
func (l *Log) AppendEach(ctx context.Context, writes []Write) ([]Published, error) {
	if l.readOnly {
		return nil, fmt.Errorf("eventlog: %s is followed, not owned: it cannot be appended to", l.stream)
	}
	msgs := make([]*nats.Msg, len(writes))
	for i := range writes {
		m, err := l.message(ctx, &writes[i])
		if err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	out := make([]Published, len(writes))
	futures := make([]jetstream.PubAckFuture, len(writes))
	next := 0 // the oldest publish not awaited yet
	await := func(i int) {
		f := futures[i]
		select {
		case ack := <-f.Ok():
			out[i] = Published{Seq: ack.Sequence, Duplicate: ack.Duplicate}
		case err := <-f.Err():
			out[i].Err = classify(err)
		case <-ctx.Done():
			out[i].Err = ctx.Err()
		}
	}
	var stop error
	for i, m := range msgs {
		if i-next >= eachWindow {
			await(next)
			next++
		}
		f, err := l.js.PublishMsgAsync(m)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			// Others are publishing too: wait for all of ours, then go on.
			for ; next < i; next++ {
				await(next)
			}
			f, err = l.js.PublishMsgAsync(m)
		}
		if err != nil {
			stop = fmt.Errorf("eventlog: append to %s: %w", m.Subject, err)
			for j := i; j < len(msgs); j++ {
				out[j].Err = stop
			}
			break
		}
		futures[i] = f
	}
	for ; next < len(msgs) && futures[next] != nil; next++ {
		await(next)
	}
	for i := range out {
		if !IsConflict(out[i].Err) {
			if out[i].Err != nil && !errors.Is(out[i].Err, stop) {
				out[i].Err = fmt.Errorf("eventlog: append to %s: %w", msgs[i].Subject, out[i].Err)
			}
			continue
		}
		if stored, ok := l.alreadyStored(ctx, writes[i:i+1]); ok {
			out[i] = Published{Seq: stored.Seqs[0], Duplicate: true}
		}
	}
	if stop == nil {
		stop = ctx.Err()
	}
	return out, stop
}

// FirstID returns the id of an aggregate's first event, "" when it has none:
// whether an aggregate was started by a given event, however many followed.
func (l *Log) FirstID(ctx context.Context, ref Ref) (string, error) {
	if !ref.valid() {
		return "", fmt.Errorf("eventlog: invalid aggregate reference %q/%q", ref.Type, ref.ID)
	}
	st, err := l.handle(ctx)
	if err != nil {
		return "", err
	}
	msg, err := st.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(l.Subject(ref)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("eventlog: first event of %s: %w", l.Subject(ref), err)
	}
	rec, err := Decode(msg.Sequence, msg.Subject, msg.Data)
	if err != nil {
		return "", err
	}
	return rec.ID(), nil
}

// lastOfEachBatch is how many messages one fetch of LastOfEach asks for.
const lastOfEachBatch = 256

// LastOfEach calls fn with the last event of each aggregate whose subject
// matches filter (for example "token.session.*"), in stream order, as the
// stream holds them when it starts: a pass over every live aggregate, such
// as writing a snapshot of each before a stream starts keeping only the last
// message of each subject. Expiry markers are skipped.
func (l *Log) LastOfEach(ctx context.Context, filter string, fn func(Record) error) error {
	st, err := l.handle(ctx)
	if err != nil {
		return err
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("eventlog: last of each %s: %w", filter, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("eventlog: last of each %s: %w", filter, err)
	}
	for pending := info.NumPending; pending > 0; {
		batch, err := cons.Fetch(lastOfEachBatch, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("eventlog: last of each %s: %w", filter, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if meta, err := msg.Metadata(); err == nil {
				pending = meta.NumPending
			}
			rec, err := DecodeMsg(msg)
			if err != nil {
				return err
			}
			if rec.Expired {
				continue
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("eventlog: last of each %s: %w", filter, err)
		}
		if n == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}
