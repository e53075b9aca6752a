package telemetry_test

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"gatehouse.dev/platform/telemetry"
)

// With no exporter, spans record nothing but carry ids: a child is in its
// parent's trace with its sampling decision, a new root is a new trace.
func TestSpansWithoutExporterCarryIDsOnly(t *testing.T) {
	tel := setup(t, telemetry.Options{Traces: telemetry.TracesNone, SampleRatio: 1})
	tracer := tel.TracerProvider().Tracer("test")
	ctx, root := tracer.Start(t.Context(), "root")
	defer root.End()
	rsc := root.SpanContext()
	if !rsc.IsValid() || !rsc.IsSampled() || root.IsRecording() {
		t.Fatalf("root: valid=%v sampled=%v recording=%v, want valid, sampled, not recording", rsc.IsValid(), rsc.IsSampled(), root.IsRecording())
	}
	_, child := tracer.Start(ctx, "child")
	if csc := child.SpanContext(); csc.TraceID() != rsc.TraceID() || csc.SpanID() == rsc.SpanID() || !csc.IsSampled() {
		t.Errorf("child %s/%s sampled=%v, want trace %s, a new span, sampled", csc.TraceID(), csc.SpanID(), csc.IsSampled(), rsc.TraceID())
	}
	_, fresh := tracer.Start(ctx, "public", trace.WithNewRoot())
	if fresh.SpanContext().TraceID() == rsc.TraceID() {
		t.Error("a new root stayed in its parent's trace")
	}

	unsampled := setup(t, telemetry.Options{SampleRatio: 0}).TracerProvider().Tracer("test")
	if _, s := unsampled.Start(t.Context(), "x"); !s.SpanContext().IsValid() || s.SpanContext().IsSampled() {
		t.Errorf("ratio 0: valid=%v sampled=%v, want valid and unsampled", s.SpanContext().IsValid(), s.SpanContext().IsSampled())
	}
	// A sampled parent from elsewhere is followed.
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: rsc.TraceID(), SpanID: rsc.SpanID(), TraceFlags: trace.FlagsSampled, Remote: true})
	if _, s := unsampled.Start(trace.ContextWithRemoteSpanContext(t.Context(), remote), "y"); !s.SpanContext().IsSampled() || s.SpanContext().TraceID() != rsc.TraceID() {
		t.Error("a sampled remote parent was not followed")
	}
}

// RecordsNothing is true for the tracers whose spans only carry ids or do
// nothing, false for one whose spans reach a processor.
func TestRecordsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts telemetry.Options
		want bool
	}{
		{"no exporter", telemetry.Options{Traces: telemetry.TracesNone, SampleRatio: 1}, true},
		{"a span processor", telemetry.Options{SampleRatio: 1, SpanProcessors: []sdktrace.SpanProcessor{tracetest.NewSpanRecorder()}}, false},
	} {
		if got := telemetry.RecordsNothing(setup(t, tc.opts).TracerProvider().Tracer("test")); got != tc.want {
			t.Errorf("%s: RecordsNothing = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !telemetry.RecordsNothing(tracenoop.NewTracerProvider().Tracer("")) {
		t.Error("a no-op tracer records something")
	}
}
