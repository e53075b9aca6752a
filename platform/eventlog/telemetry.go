package eventlog

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"gatehouse.dev/platform/telemetry"
)

// Tracing and measuring the log. Every append is a span (producer) carrying
// the stream, the subject, the event types and ids; its context travels in
// the message (the traceparent header and the envelope's trace_parent), so
// whoever handles the event later — a projection, a reactor, a live tail —
// makes its span a child of the append's (StartSpan), and one trace follows a
// request from HTTP through gRPC and NATS to the read model.
//
// Metrics (names as Prometheus shows them):
//
//	gatehouse_eventlog_append_duration_seconds{stream, outcome}  histogram: ok, conflict, error
//	gatehouse_eventlog_append_conflicts_total{stream}            lost races (expected-version failures)
//	gatehouse_eventlog_events_appended_total{stream, event}      events stored, by type

// Span attribute keys of events.
const (
	AttrEventID   = attribute.Key("gatehouse.event.id")
	AttrEventType = attribute.Key("gatehouse.event.type")
	AttrEventSeq  = attribute.Key("gatehouse.event.seq")
	AttrStream    = attribute.Key("gatehouse.stream")
	attrConflict  = attribute.Key("gatehouse.eventlog.conflict")
	attrSubject   = attribute.Key("messaging.destination.name")
	attrSystem    = attribute.Key("messaging.system")
	attrBatch     = attribute.Key("messaging.batch.message_count")
	// labelStream is the stream's label on the metrics ("stream").
	labelStream = attribute.Key("stream")
)

// tracerName is the instrumentation scope of the log's spans and metrics.
const tracerName = "gatehouse.dev/platform/eventlog"

// freshFor is how recent an event must be for its handling to join the
// append's trace; older ones (a replay, a follower catching up after an
// outage) start a trace of their own, linked to the append's.
const freshFor = 5 * time.Minute

// WithTelemetry traces appends and measures them with t (and carries the
// trace context with t's propagator). A nil t does neither.
func WithTelemetry(t *telemetry.Telemetry) Option {
	return func(l *Log) {
		if t == nil {
			return
		}
		l.tel = t
		l.propagator = t.Propagator()
	}
}

// Telemetry is the telemetry the log was opened with (nil: none); the
// projections and reactors of the service trace and measure with it too.
func (l *Log) Telemetry() *telemetry.Telemetry { return l.tel }

// logMetrics are the instruments of one log.
type logMetrics struct {
	duration  metric.Float64Histogram
	conflicts metric.Int64Counter
	appended  metric.Int64Counter
	outcomes  map[string]metric.MeasurementOption // by outcome, with the stream
	stream    metric.MeasurementOption
	byEvent   sync.Map // event type → its metric.MeasurementOption, with the stream
}

// event is the attribute set of events of type full in this log's metrics.
func (m *logMetrics) event(stream, full string) metric.MeasurementOption {
	if o, ok := m.byEvent.Load(full); ok {
		return o.(metric.MeasurementOption)
	}
	o := metric.WithAttributeSet(attribute.NewSet(labelStream.String(stream), attribute.String("event", shortType(full))))
	m.byEvent.Store(full, o)
	return o
}

// instrument prepares the log's tracer and instruments.
func (l *Log) instrument() error {
	l.tracer = l.tel.TracerProvider().Tracer(tracerName)
	meter := l.tel.MeterProvider().Meter(tracerName)
	m := &logMetrics{outcomes: map[string]metric.MeasurementOption{}}
	var errDuration, errConflicts, errAppended error
	m.duration, errDuration = meter.Float64Histogram("gatehouse.eventlog.append.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to append events to the stream, by outcome (ok, conflict, error)."),
		metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets()...))
	m.conflicts, errConflicts = meter.Int64Counter("gatehouse.eventlog.append.conflicts",
		metric.WithDescription("Appends refused because the aggregate changed since it was read (retried by Execute)."))
	m.appended, errAppended = meter.Int64Counter("gatehouse.eventlog.events.appended",
		metric.WithDescription("Events stored in the stream, by event type."))
	if err := errors.Join(errDuration, errConflicts, errAppended); err != nil {
		return err
	}
	for _, o := range []string{"ok", "conflict", "error"} {
		m.outcomes[o] = metric.WithAttributeSet(attribute.NewSet(labelStream.String(l.stream), attribute.String("outcome", o)))
	}
	m.stream = metric.WithAttributeSet(attribute.NewSet(labelStream.String(l.stream)))
	if !l.readOnly {
		m.conflicts.Add(context.Background(), 0, m.stream) // present from the start, so rate() sees the first one
	}
	l.metrics = m
	return nil
}

// startAppend starts the span of one append.
func (l *Log) startAppend(ctx context.Context, writes []Write) (context.Context, trace.Span) {
	if l.tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	first := writes[0].Event
	attrs := []attribute.KeyValue{
		attrSystem.String("nats"), AttrStream.String(l.stream), attrSubject.String(l.Subject(first.Aggregate)),
	}
	if len(writes) == 1 {
		attrs = append(attrs, AttrEventType.String(typeName(first)))
	} else {
		types := make([]string, len(writes))
		for i, w := range writes {
			types[i] = typeName(w.Event)
		}
		attrs = append(attrs, AttrEventType.StringSlice(types), attrBatch.Int(len(writes)))
	}
	return l.tracer.Start(ctx, "eventlog.append "+l.stream,
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
}

// typeName is an event's protobuf full name ("" without payload).
func typeName(ev Event) string {
	if ev.Payload == nil {
		return ""
	}
	return string(ev.Payload.ProtoReflect().Descriptor().FullName())
}

// endAppend records the outcome of an append on its span and in the metrics.
func (l *Log) endAppend(ctx context.Context, span trace.Span, writes []Write, began time.Time, got Appended, err error) {
	if l.metrics == nil {
		return
	}
	outcome := "ok"
	switch {
	case IsConflict(err):
		outcome = "conflict"
		l.metrics.conflicts.Add(ctx, 1, l.metrics.stream)
		span.SetAttributes(attrConflict.Bool(true))
		span.AddEvent("conflict: the aggregate changed since it was read")
	case err != nil:
		outcome = "error"
		span.RecordError(err)
		span.SetStatus(codes.Error, "append failed")
	}
	l.metrics.duration.Record(ctx, time.Since(began).Seconds(), l.metrics.outcomes[outcome])
	ids := make([]string, len(writes))
	for i, w := range writes {
		ids[i] = w.Event.ID
		if err == nil {
			l.metrics.appended.Add(ctx, 1, l.metrics.event(l.stream, typeName(w.Event)))
		}
	}
	if len(ids) == 1 {
		span.SetAttributes(AttrEventID.String(ids[0]))
	} else {
		span.SetAttributes(AttrEventID.StringSlice(ids))
	}
	if err == nil && len(got.Seqs) > 0 {
		span.SetAttributes(AttrEventSeq.Int64(int64(got.Last())))
	}
	span.End()
}

// shortType is an event type without its package ("UserRegistered").
func shortType(full string) string {
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '.' {
			return full[i+1:]
		}
	}
	return full
}

// StartSpan starts the span of one event's handling by a follower — a
// projection's apply, a reactor's side effect, a live tail's update — named
// name (low cardinality: "projection sessions"). It is a child of the span
// that appended the event (from the envelope's trace parent) when the event
// is recent, and otherwise starts a trace of its own linked to it. The span
// carries the event's id, type, sequence and subject, and attrs.
func StartSpan(ctx context.Context, tracer trace.Tracer, name string, rec Record, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attrSystem.String("nats"), attrSubject.String(rec.Subject),
		AttrEventID.String(rec.ID()), AttrEventType.String(rec.Type()), AttrEventSeq.Int64(int64(rec.Seq)),
	), trace.WithAttributes(attrs...)}
	if parent := rec.SpanContext(); parent.IsValid() {
		if time.Since(rec.OccurredAt()) < freshFor {
			ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
		} else {
			opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: parent}))
		}
	}
	return tracer.Start(ctx, name, opts...)
}

// EndSpan ends a span StartSpan started, recording err.
func EndSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "event not handled")
	}
	span.End()
}

// SpanContext is the span that appended the event (from the envelope's W3C
// trace parent); invalid when it was appended without one.
func (r Record) SpanContext() trace.SpanContext {
	tp := r.Envelope.GetTraceParent()
	if tp == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}
