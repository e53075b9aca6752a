package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Record is an event read back from the stream.
type Record struct {
	// Seq is the event's stream sequence: its position in the service's log.
	Seq uint64
	// Subject is the aggregate subject the event was stored under.
	Subject string
	// Envelope is the stored envelope.
	Envelope *eventsv1.Envelope
	// Event is the decoded payload; nil when this binary does not know the event type,
	// so older binaries skip events added by newer ones.
	Event proto.Message
	// Pending is, for a record a consumer delivered (Read, projections),
	// how many events matching its filter the stream held after it then (0:
	// it was the newest); 0 for records loaded otherwise.
	Pending uint64
	// Expired is set on the marker JetStream leaves on an aggregate's subject
	// when the aggregate's last event expired (a stream with Bounds): the
	// aggregate is gone. Its Envelope names only the aggregate and the time;
	// Event is nil, so a consumer that does not look (eventlog.Unhandled)
	// skips it.
	Expired bool
	// Skipped is set on an event its consumer said it does nothing with
	// (Decoding): it was not decoded, and only Seq, Subject and Pending are
	// set.
	Skipped bool
}

// ID is the event's id.
func (r Record) ID() string { return r.Envelope.GetId() }

// Aggregate names the aggregate the event belongs to.
func (r Record) Aggregate() Ref {
	return Ref{Type: r.Envelope.GetAggregateType(), ID: r.Envelope.GetAggregateId()}
}

// OccurredAt is when the event was decided.
func (r Record) OccurredAt() time.Time { return r.Envelope.GetOccurredAt().AsTime() }

// Type is the event's protobuf full name, for example "gatehouse.events.v1.UserLocked".
func (r Record) Type() string {
	name := r.Envelope.GetPayload().GetTypeUrl()
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[i+1:]
		}
	}
	return name
}

// Decode turns a stored message body into a Record.
func Decode(seq uint64, subject string, data []byte) (Record, error) {
	env := &eventsv1.Envelope{}
	if err := proto.Unmarshal(data, env); err != nil {
		return Record{}, fmt.Errorf("eventlog: decode envelope at seq %d: %w", seq, err)
	}
	rec := Record{Seq: seq, Subject: subject, Envelope: env}
	if env.GetPayload() == nil {
		return Record{}, fmt.Errorf("eventlog: event at seq %d has no payload", seq)
	}
	ev, err := env.GetPayload().UnmarshalNew()
	switch {
	case errors.Is(err, protoregistry.NotFound):
		// Unknown type: leave Event nil.
	case err != nil:
		return Record{}, fmt.Errorf("eventlog: decode %s at seq %d: %w", rec.Type(), seq, err)
	default:
		rec.Event = ev
	}
	return rec, nil
}

// DecodeMsg decodes a message delivered by a consumer.
func DecodeMsg(msg jetstream.Msg) (Record, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return Record{}, fmt.Errorf("eventlog: message metadata: %w", err)
	}
	if isMarker(msg.Headers(), msg.Data()) {
		return marker(meta.Sequence.Stream, msg.Subject(), meta.Timestamp), nil
	}
	rec, err := Decode(meta.Sequence.Stream, msg.Subject(), msg.Data())
	rec.Pending = meta.NumPending
	return rec, err
}

// isMarker reports whether a message is a subject delete marker: headers
// only, naming why the subject was emptied.
func isMarker(h nats.Header, data []byte) bool {
	return len(data) == 0 && h.Get(jetstream.MarkerReasonHeader) != ""
}

// marker is the Record of a subject delete marker.
func marker(seq uint64, subject string, at time.Time) Record {
	env := &eventsv1.Envelope{OccurredAt: timestamppb.New(at)}
	if toks := strings.SplitN(subject, ".", 3); len(toks) == 3 {
		env.AggregateType, env.AggregateId = toks[1], toks[2]
	}
	return Record{Seq: seq, Subject: subject, Envelope: env, Expired: true}
}

// DirectBatch is the most messages one direct-get read asks JetStream for:
// a batch of an aggregate's events (Load), or of personal keys.
const DirectBatch = 256

// ConnOptions are options every NATS connection the event log reads through
// needs. Each direct-get read receives its reply on a synchronous
// subscription of its own, whose channel nats.go sizes for 65,536 messages
// unless told otherwise: 512 KiB allocated and cleared on every Load (every
// refresh of a token, every command on an aggregate), where a reply holds at
// most DirectBatch messages and its end marker.
func ConnOptions() []nats.Option { return []nats.Option{nats.SyncQueueLen(4 * DirectBatch)} }

// readAttempt bounds one attempt to read an aggregate (Load).
const readAttempt = 2 * time.Second

// Load returns every event of one aggregate in order, and its version: the
// sequence of its last event, or 0 when it has none. Pass the version to
// ExpectVersion when appending the events a command decides on this history.
// An aggregate that expired has no events; its version is then the sequence
// of the marker its expiry left, so a writer that read it before cannot write.
func (l *Log) Load(ctx context.Context, ref Ref) ([]Record, uint64, error) {
	if !ref.valid() {
		return nil, 0, fmt.Errorf("eventlog: invalid aggregate reference %q/%q", ref.Type, ref.ID)
	}
	subject := l.Subject(ref)
	// A replicated stream whose leader was just elected (or moved) may have
	// nobody answering reads for a moment, and a cluster under load leaves
	// some requests unanswered (EnsureStream): each read is bounded, and
	// asked again it is answered.
	for wait := 25 * time.Millisecond; ; wait *= 2 {
		attempt, cancel := context.WithTimeout(ctx, readAttempt)
		records, version, err := l.load(attempt, subject)
		cancel()
		unanswered := errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
			errors.Is(err, context.DeadlineExceeded)
		if !unanswered || ctx.Err() != nil || wait > time.Second {
			return records, version, err
		}
		select {
		case <-ctx.Done():
			return nil, 0, err
		case <-time.After(wait):
		}
	}
}

// load reads an aggregate's events once (Load).
func (l *Log) load(ctx context.Context, subject string) ([]Record, uint64, error) {
	var (
		records []Record
		next    uint64 = 1
		version uint64
	)
	for {
		msgs, err := jetstreamext.GetBatch(ctx, l.js, l.stream, DirectBatch,
			jetstreamext.GetBatchSubject(subject), jetstreamext.GetBatchSeq(next))
		if err != nil {
			return nil, 0, fmt.Errorf("eventlog: load %s: %w", subject, err)
		}
		n := 0
		for msg, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return nil, 0, fmt.Errorf("eventlog: load %s: %w", subject, err)
			}
			next, version = msg.Sequence+1, msg.Sequence
			n++
			if isMarker(msg.Header, msg.Data) {
				continue
			}
			rec, err := Decode(msg.Sequence, msg.Subject, msg.Data)
			if err != nil {
				return nil, 0, err
			}
			records = append(records, rec)
		}
		if n < DirectBatch {
			break
		}
	}
	if l.replicated(ctx) { // a replica may lag behind the acknowledged events (leader.go)
		newer, last, err := l.leaderRecords(ctx, subject, next)
		if err != nil {
			return nil, 0, err
		}
		records = append(records, newer...)
		version = max(version, last)
	}
	return records, version, nil
}

// Usage is how many bytes the stream holds and the most it may hold (0:
// unbounded).
func (l *Log) Usage(ctx context.Context) (used, limit uint64, err error) {
	st, err := l.handle(ctx)
	if err != nil {
		return 0, 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("eventlog: stream %s info: %w", l.stream, err)
	}
	return info.State.Bytes, uint64(max(info.Config.MaxBytes, 0)), nil
}

// Version returns the sequence of an aggregate's last event, 0 when it has none,
// without loading its history.
func (l *Log) Version(ctx context.Context, ref Ref) (uint64, error) {
	if !ref.valid() {
		return 0, fmt.Errorf("eventlog: invalid aggregate reference %q/%q", ref.Type, ref.ID)
	}
	st, err := l.handle(ctx)
	if err != nil {
		return 0, err
	}
	msg, err := st.GetLastMsgForSubject(ctx, l.Subject(ref))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("eventlog: version of %s: %w", l.Subject(ref), err)
	}
	return msg.Sequence, nil
}

// LastSeq is the sequence of the newest event in the stream (0 when empty).
func (l *Log) LastSeq(ctx context.Context) (uint64, error) {
	st, err := l.handle(ctx)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("eventlog: stream %s info: %w", l.stream, err)
	}
	return info.State.LastSeq, nil
}

// LastSeqOf is the sequence of the newest event on any of the subjects, which
// may hold wildcards (0 when none has events).
func (l *Log) LastSeqOf(ctx context.Context, subjects ...string) (uint64, error) {
	st, err := l.handle(ctx)
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, subj := range subjects {
		msg, err := st.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("eventlog: last event of %s: %w", subj, err)
		}
		last = max(last, msg.Sequence)
	}
	return last, nil
}

// FirstAfter is when the oldest event after stream sequence seq on any of
// the subjects (which may hold wildcards) was stored, and whether there is
// one: how long a follower whose checkpoint is seq has left it waiting.
func (l *Log) FirstAfter(ctx context.Context, seq uint64, subjects ...string) (time.Time, bool, error) {
	st, err := l.handle(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	var first time.Time
	for _, subj := range subjects {
		msg, err := st.GetMsg(ctx, seq+1, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return time.Time{}, false, fmt.Errorf("eventlog: first event of %s after %d: %w", subj, seq, err)
		}
		if first.IsZero() || msg.Time.Before(first) {
			first = msg.Time
		}
	}
	return first, !first.IsZero(), nil
}

// ErrUnhandled reports an event of a type that a consumer (a projection, a
// reactor, a tail) does not handle although this binary knows the type.
var ErrUnhandled = errors.New("event type not handled")

// Unhandled is what a consumer's type switch returns in its default case. An
// event of a type this binary does not know (rec.Event is nil: a newer binary
// wrote it) is skipped: nil. An event of a known type is an error wrapping
// ErrUnhandled: the consumer forgot to say what it does with the type, which
// the guard tests (platform/projection/conformance) report before a release.
func Unhandled(rec Record) error {
	if rec.Event == nil {
		return nil
	}
	return fmt.Errorf("eventlog: %s at seq %d: %w", rec.Type(), rec.Seq, ErrUnhandled)
}
