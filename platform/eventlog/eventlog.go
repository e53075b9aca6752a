// Package eventlog stores domain events in NATS JetStream.
//
// Each service owns one stream (for example ACCOUNTS with subjects "accounts.>").
// Each aggregate instance has its own subject, "<prefix>.<aggregate type>.<id>",
// so an append can demand that the aggregate has not changed since the command
// read it (JetStream's expected-last-subject-sequence check). A lost race is a
// *ConflictError, which the command runner retries after reloading.
//
// Every event gets a ULID that is also its JetStream message id, so a retried
// publish inside the stream's duplicate window stores the event once.
//
// A command that must change several aggregates at once (registering a user and
// reserving the username) appends its events as one JetStream atomic batch: all
// are stored, or none.
//
// A stream of short-lived aggregates (StreamConfig.Bounds) is capped in age
// and size: each event carries a TTL (Write.TTL), and when an aggregate's
// last event expires JetStream leaves a marker that consumers receive as a
// Record with Expired set.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/telemetry"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Message headers written with every event.
const (
	// HeaderEventType carries the event's protobuf full name, so consumers can filter without decoding.
	HeaderEventType = "Gatehouse-Event-Type"
	// DefaultDuplicateWindow is how long JetStream remembers message ids.
	DefaultDuplicateWindow = 2 * time.Minute
)

// StreamConfig describes a service's event stream.
type StreamConfig struct {
	// Name of the JetStream stream, for example "ACCOUNTS".
	Name string
	// Prefix of every subject in the stream, for example "accounts".
	Prefix string
	// Replicas of the stream in a JetStream cluster (1 for a single server).
	Replicas int
	// Duplicates is the deduplication window; DefaultDuplicateWindow when zero.
	Duplicates time.Duration
	// Contract, when set, lists the stream's aggregate types and the event
	// types each may hold (eventsv1.Streams): an append of anything else is
	// refused. Streams of the event contract are opened with StreamOf.
	Contract *eventsv1.Stream
	// Bounds, when set, make a stream of short-lived aggregates: its events
	// expire and it holds at most so many bytes. Nil: events are kept forever.
	Bounds *Bounds
	// AllowTTL lets a durable stream take events with a TTL (Write.TTL):
	// the few an anonymous flow writes before it completes. The rest stays
	// for ever. Once allowed, JetStream cannot forbid it again.
	AllowTTL bool
	// LastPerSubject keeps only the last message of each subject (JetStream's
	// MaxMsgsPerSubject 1): for aggregates whose last event holds their
	// whole state. Setting it on a stream that has history drops every
	// subject's older messages at once.
	LastPerSubject bool
	// MaxAge, when positive, removes every event older than this (the
	// AUDIT stream's retention): a durable stream bounded by time, whose
	// events are otherwise kept as long. Zero: kept for ever.
	MaxAge time.Duration
}

// Bounds limit a stream of short-lived aggregates (pending authorization
// requests, device requests, registrations waiting for a code): what never
// completes disappears on its own, and a flood of anonymous requests fills
// this stream only, never the durable ones.
type Bounds struct {
	// MaxAge removes every event older than this (a backstop: each event
	// is appended with a TTL, Write.TTL, ending its aggregate's life).
	MaxAge time.Duration
	// MaxBytes is the most the stream stores; appends beyond are refused.
	MaxBytes int64
	// MarkerTTL is how long the marker JetStream leaves on an aggregate's
	// subject when its last event expires stays (at least 1 s): consumers see
	// it as a Record with Expired set and forget the aggregate.
	MarkerTTL time.Duration
}

// StreamOf is the configuration of a stream of the event contract
// (eventsv1.Accounts, eventsv1.Token, ...), with its name, its prefix and
// the contract's check of every append.
func StreamOf(s eventsv1.Stream, replicas int) StreamConfig {
	return StreamConfig{Name: s.Name, Prefix: s.Prefix, Replicas: replicas, Contract: &s, AllowTTL: s.TTLs}
}

// subjects are what the stream stores: the whole prefix, or only its
// aggregates' subjects when the contract splits the prefix over several
// streams (a service's durable and short-lived aggregates).
func (cfg StreamConfig) subjects() []string {
	if cfg.Contract != nil {
		return cfg.Contract.Filters()
	}
	return []string{cfg.Prefix + ".>"}
}

// jetStreamConfig is the JetStream configuration of the stream.
func (cfg StreamConfig) jetStreamConfig() jetstream.StreamConfig {
	dup := cfg.Duplicates
	if dup == 0 {
		dup = DefaultDuplicateWindow
	}
	sc := jetstream.StreamConfig{
		Name:               cfg.Name,
		Description:        "Gatehouse domain events (" + cfg.Prefix + ")",
		Subjects:           cfg.subjects(),
		Retention:          jetstream.LimitsPolicy,
		Storage:            jetstream.FileStorage,
		Replicas:           max(cfg.Replicas, 1),
		Duplicates:         dup,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		AllowMsgTTL:        cfg.AllowTTL,
	}
	if cfg.LastPerSubject {
		sc.MaxMsgsPerSubject = 1
	}
	if cfg.MaxAge > 0 {
		sc.MaxAge = cfg.MaxAge
		if sc.Duplicates > cfg.MaxAge {
			sc.Duplicates = cfg.MaxAge
		}
	}
	if b := cfg.Bounds; b != nil {
		sc.Description = "Gatehouse short-lived aggregates (" + cfg.Prefix + "), expiring"
		sc.MaxAge = b.MaxAge
		sc.MaxBytes = b.MaxBytes
		sc.Discard = jetstream.DiscardNew
		sc.AllowMsgTTL = true
		sc.SubjectDeleteMarkerTTL = max(b.MarkerTTL, time.Second)
		// Delete markers are rollups, which JetStream refuses beside DenyPurge.
		sc.DenyPurge, sc.AllowRollup = false, true
		if b.MaxAge > 0 && sc.Duplicates > b.MaxAge {
			sc.Duplicates = b.MaxAge
		}
	}
	return sc
}

// validate checks the name and the subject prefix.
func (cfg StreamConfig) validate() error {
	if cfg.Name == "" || cfg.Prefix == "" {
		return errors.New("eventlog: stream name and prefix are required")
	}
	if strings.ContainsAny(cfg.Prefix, ".*> ") {
		return fmt.Errorf("eventlog: prefix %q must be a single subject token", cfg.Prefix)
	}
	return nil
}

// Log appends to and reads from one service's event stream.
type Log struct {
	js jetstream.JetStream
	// st is the stream's handle; a followed log looks it up on first use
	// (under mu), as the stream may not exist yet.
	mu         sync.Mutex
	st         jetstream.Stream
	readOnly   bool
	stream     string
	prefix     string
	contract   *eventsv1.Stream
	propagator propagation.TextMapPropagator
	now        func() time.Time

	// tel, tracer and metrics trace and measure appends (telemetry.go);
	// nil without WithTelemetry.
	tel     *telemetry.Telemetry
	tracer  trace.Tracer
	metrics *logMetrics
}

// Option configures a Log.
type Option func(*Log)

// WithPropagator carries the trace context of appends in message headers;
// a nil propagator carries none.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(l *Log) { l.propagator = p }
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option {
	return func(l *Log) { l.now = now }
}

// Open creates or updates the stream and returns a Log for it.
// The stream keeps events forever and denies deletes and purges: the log is the
// source of truth and the audit trail. A stream with Bounds keeps its events
// until they expire, and at most Bounds.MaxBytes.
func Open(ctx context.Context, js jetstream.JetStream, cfg StreamConfig, opts ...Option) (*Log, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	stream, err := EnsureStream(ctx, js, cfg.jetStreamConfig())
	if err != nil {
		return nil, fmt.Errorf("eventlog: create stream %s: %w", cfg.Name, err)
	}
	l := &Log{js: js, st: stream, stream: cfg.Name, prefix: cfg.Prefix, contract: cfg.Contract, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	if l.tel != nil {
		if err := l.instrument(); err != nil {
			return nil, fmt.Errorf("eventlog: metrics of %s: %w", cfg.Name, err)
		}
	}
	return l, nil
}

// Follow returns a read-only Log of another service's stream: it loads
// aggregates and feeds projections but never appends, and it neither creates
// nor changes the stream. The stream may not exist yet (its owner has not
// started); reads fail until it does, and projections retry.
func Follow(js jetstream.JetStream, cfg StreamConfig, opts ...Option) (*Log, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := &Log{js: js, stream: cfg.Name, prefix: cfg.Prefix, contract: cfg.Contract, readOnly: true, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	if l.tel != nil {
		if err := l.instrument(); err != nil {
			return nil, fmt.Errorf("eventlog: metrics of %s: %w", cfg.Name, err)
		}
	}
	return l, nil
}

// handle returns the stream's handle, looking it up on first use.
func (l *Log) handle(ctx context.Context) (jetstream.Stream, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		return l.st, nil
	}
	st, err := FindStream(ctx, l.js, l.stream)
	if err != nil {
		return nil, fmt.Errorf("eventlog: stream %s: %w", l.stream, err)
	}
	l.st = st
	return st, nil
}

// Stream is the JetStream stream name.
func (l *Log) Stream() string { return l.stream }

// JetStream is the JetStream context the log uses.
func (l *Log) JetStream() jetstream.JetStream { return l.js }

// Subject is the subject of one aggregate instance.
func (l *Log) Subject(ref Ref) string {
	return l.prefix + "." + ref.Type + "." + ref.ID
}

// Subjects is the wildcard subject of every instance of an aggregate type.
func (l *Log) Subjects(aggregateType string) string {
	return l.prefix + "." + aggregateType + ".*"
}

// Ref names one aggregate instance.
type Ref struct {
	// Type of the aggregate, a single subject token such as "user".
	Type string
	// ID of the instance, a single subject token (ULIDs, hex).
	ID string
}

// valid reports whether the reference forms a safe subject.
func (r Ref) valid() bool {
	return validToken(r.Type) && validToken(r.ID)
}

func validToken(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Event is a domain event to append.
type Event struct {
	// ID is the event's ULID and JetStream message id. Generated when empty;
	// set it yourself to make a retried command idempotent.
	ID string
	// Aggregate the event belongs to.
	Aggregate Ref
	// Actor is who caused the event ("user:<id>", "admin", "system").
	Actor string
	// Payload is the event, a message from gatehouse.events.v1.
	Payload proto.Message
}

// Expect is the concurrency expectation of one write.
type Expect struct {
	seq uint64
	set bool
}

// ExpectVersion demands that the aggregate's last event has this stream sequence
// (0: the aggregate has no events yet).
func ExpectVersion(seq uint64) Expect { return Expect{seq: seq, set: true} }

// ExpectNew demands that the aggregate has no events yet.
func ExpectNew() Expect { return ExpectVersion(0) }

// ExpectAny appends whatever the aggregate's version.
func ExpectAny() Expect { return Expect{} }

// Write is one event with its concurrency expectation.
type Write struct {
	Event  Event
	Expect Expect
	// TTL, on a stream with Bounds, is how long the event is kept (rounded
	// up to whole seconds, at least 1 s): give every event of an aggregate
	// the time left until the aggregate's end, so all expire together.
	TTL time.Duration
}

// ConflictError reports that an aggregate changed after the command read it.
// It is retryable: reload the aggregate and decide again.
type ConflictError struct {
	Err error
}

func (e *ConflictError) Error() string {
	return "eventlog: aggregate changed concurrently: " + e.Err.Error()
}

func (e *ConflictError) Unwrap() error { return e.Err }

// IsConflict reports whether err is a *ConflictError.
func IsConflict(err error) bool {
	var c *ConflictError
	return errors.As(err, &c)
}

// classify turns JetStream's wrong-last-sequence error codes into a *ConflictError.
func classify(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return &ConflictError{Err: err}
		}
	}
	var jsErr jetstream.JetStreamError
	if errors.As(err, &jsErr) && jsErr.APIError() != nil {
		switch jsErr.APIError().ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return &ConflictError{Err: err}
		}
	}
	return err
}

// Appended reports where the events of one Append were stored.
type Appended struct {
	// Seqs holds the stream sequence of each write, in order.
	Seqs []uint64
	// Duplicate is true when JetStream recognised a single event as a retry of one already stored.
	Duplicate bool
}

// Last is the sequence of the last event appended.
func (a Appended) Last() uint64 {
	if len(a.Seqs) == 0 {
		return 0
	}
	return a.Seqs[len(a.Seqs)-1]
}

// Append stores the writes. One write is a plain publish; several are one
// atomic batch. A failed expectation is a *ConflictError. The append is a
// span whose context the messages carry (telemetry.go).
func (l *Log) Append(ctx context.Context, writes ...Write) (got Appended, err error) {
	if len(writes) == 0 {
		return Appended{}, errors.New("eventlog: nothing to append")
	}
	if l.readOnly {
		return Appended{}, fmt.Errorf("eventlog: %s is followed, not owned: it cannot be appended to", l.stream)
	}
	began := time.Now()
	ctx, span := l.startAppend(ctx, writes)
	defer func() { l.endAppend(ctx, span, writes, began, got, err) }()
	return l.append(ctx, writes)
}

// append is Append without its span and measures.
func (l *Log) append(ctx context.Context, writes []Write) (Appended, error) {
	msgs := make([]*nats.Msg, len(writes))
	for i := range writes {
		m, err := l.message(ctx, &writes[i])
		if err != nil {
			return Appended{}, err
		}
		msgs[i] = m
	}
	if len(msgs) == 1 {
		ack, err := l.js.PublishMsg(ctx, msgs[0])
		if err != nil {
			err = classify(err)
			if IsConflict(err) {
				if stored, ok := l.alreadyStored(ctx, writes); ok {
					return stored, nil
				}
			}
			return Appended{}, fmt.Errorf("eventlog: append to %s: %w", msgs[0].Subject, err)
		}
		return Appended{Seqs: []uint64{ack.Sequence}, Duplicate: ack.Duplicate}, nil
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, l.js, msgs)
	if err != nil {
		err = classify(err)
		if IsConflict(err) {
			if stored, ok := l.alreadyStored(ctx, writes); ok {
				return stored, nil
			}
		}
		return Appended{}, fmt.Errorf("eventlog: append batch of %d: %w", len(msgs), err)
	}
	// An atomic batch is stored contiguously and acknowledged with its last sequence.
	seqs := make([]uint64, len(msgs))
	for i := range seqs {
		seqs[i] = ack.Sequence - uint64(len(msgs)-1-i)
	}
	return Appended{Seqs: seqs}, nil
}

// alreadyStored recognises a retry whose first attempt was stored but whose
// acknowledgement was lost: JetStream checks expectations before message ids, so
// such a retry fails its expectation. It is a success when every write's
// aggregate ends with the write's own event.
func (l *Log) alreadyStored(ctx context.Context, writes []Write) (Appended, bool) {
	st, err := l.handle(ctx)
	if err != nil {
		return Appended{}, false
	}
	got := Appended{Seqs: make([]uint64, len(writes)), Duplicate: true}
	for i, w := range writes {
		last, err := st.GetLastMsgForSubject(ctx, l.Subject(w.Event.Aggregate))
		if err != nil || last.Header.Get(jetstream.MsgIDHeader) != w.Event.ID {
			return Appended{}, false
		}
		got.Seqs[i] = last.Sequence
	}
	return got, true
}

// allowed checks an event against the stream's contract, when it has one.
func (l *Log) allowed(ev *Event) error {
	if l.contract == nil {
		return nil
	}
	name := ev.Payload.ProtoReflect().Descriptor().FullName()
	a, ok := l.contract.Aggregate(ev.Aggregate.Type)
	if !ok {
		return fmt.Errorf("eventlog: %s has no aggregate type %q in the event contract (proto/gatehouse/events/v1/streams.go)", l.stream, ev.Aggregate.Type)
	}
	if !a.Holds(name) {
		return fmt.Errorf("eventlog: the event contract does not list %s as an event of %s (proto/gatehouse/events/v1/streams.go)", name, a.Subjects())
	}
	return nil
}

// message builds the stream message of one write, filling the event id.
func (l *Log) message(ctx context.Context, w *Write) (*nats.Msg, error) {
	ev := &w.Event
	if !ev.Aggregate.valid() {
		return nil, fmt.Errorf("eventlog: invalid aggregate reference %q/%q", ev.Aggregate.Type, ev.Aggregate.ID)
	}
	if ev.Payload == nil {
		return nil, errors.New("eventlog: event without payload")
	}
	if err := l.allowed(ev); err != nil {
		return nil, err
	}
	if ev.ID == "" {
		ev.ID = ulid.Make().String()
	}
	payload, err := anypb.New(ev.Payload)
	if err != nil {
		return nil, fmt.Errorf("eventlog: pack %T: %w", ev.Payload, err)
	}
	env := &eventsv1.Envelope{
		Id:            ev.ID,
		AggregateType: ev.Aggregate.Type,
		AggregateId:   ev.Aggregate.ID,
		OccurredAt:    timestamppb.New(l.now()),
		Actor:         ev.Actor,
		Payload:       payload,
	}
	msg := nats.NewMsg(l.Subject(ev.Aggregate))
	if l.propagator != nil {
		telemetry.InjectNATS(ctx, l.propagator, msg.Header) // "traceparent", as written
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		env.TraceParent = fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
	}
	msg.Data, err = proto.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("eventlog: marshal envelope: %w", err)
	}
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	msg.Header.Set(HeaderEventType, string(ev.Payload.ProtoReflect().Descriptor().FullName()))
	if w.Expect.set {
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(w.Expect.seq, 10))
	}
	if w.TTL > 0 {
		secs := max((w.TTL+time.Second-1)/time.Second, 1)
		msg.Header.Set(jetstream.MsgTTLHeader, strconv.FormatInt(int64(secs), 10))
	}
	return msg, nil
}
