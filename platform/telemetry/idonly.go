package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// idOnlyProvider makes spans that record nothing but carry trace and span
// ids (and the sampling decision, so that a process exporting traces
// downstream still follows it): what a process that exports no trace needs,
// for the trace ids in its logs and in what it calls. The SDK's provider
// would record every sampled span — its attributes, events, status — only to
// hand it to no processor: on the hot paths (an introspection answered from
// memory) that was a tenth of the process's CPU.
type idOnlyProvider struct {
	embedded.TracerProvider
	ratio float64
}

// Tracer returns the provider's one tracer.
func (p *idOnlyProvider) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return idOnlyTracer{p: p}
}

// idOnlyTracer starts idOnlyProvider's spans.
type idOnlyTracer struct {
	embedded.Tracer
	p *idOnlyProvider
}

// Start returns ctx with a span that records nothing: a child of the span
// in ctx (same trace, same sampling decision), or — with no parent, or
// trace.WithNewRoot — the root of a new trace, sampled at the ratio.
func (t idOnlyTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanContextFromContext(ctx)
	cfg := trace.NewSpanStartConfig(opts...)
	var sc trace.SpanContextConfig
	if parent.IsValid() && !cfg.NewRoot() {
		sc = trace.SpanContextConfig{TraceID: parent.TraceID(), TraceFlags: parent.TraceFlags(), TraceState: parent.TraceState()}
	} else {
		binary.BigEndian.PutUint64(sc.TraceID[:8], rand.Uint64())
		binary.BigEndian.PutUint64(sc.TraceID[8:], rand.Uint64())
		if t.p.ratio >= 1 || (t.p.ratio > 0 && rand.Float64() < t.p.ratio) {
			sc.TraceFlags = trace.FlagsSampled
		}
	}
	for sc.SpanID == (trace.SpanID{}) {
		binary.BigEndian.PutUint64(sc.SpanID[:], rand.Uint64())
	}
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(sc))
	return ctx, trace.SpanFromContext(ctx)
}

// RecordsNothing reports whether a tracer's spans record nothing: they only
// carry ids (no exporter) or are no-ops. A caller that discards a span's
// context (a read model applying a batch of events) need not start one.
func RecordsNothing(t trace.Tracer) bool {
	switch t.(type) {
	case idOnlyTracer, tracenoop.Tracer:
		return true
	}
	return false
}
