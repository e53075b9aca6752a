package eventlog_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/telemetry"
	"gatehouse.dev/platform/testkit"
)

// An append is a producer span carrying the event's id, type, subject and
// stream; a tail's handling of the event is a consumer span in the same
// trace, child of the append's. Appends are timed by outcome and a lost race
// is counted as a conflict.
func TestAppendIsTracedAndMeasured(t *testing.T) {
	ctx := context.Background()
	spans := tracetest.NewInMemoryExporter()
	reader := sdkmetric.NewManualReader()
	tel, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "test", SampleRatio: 1, Metrics: telemetry.MetricsPrometheus,
		SpanProcessors: []sdktrace.SpanProcessor{sdktrace.NewSimpleSpanProcessor(spans)}, MetricReaders: []sdkmetric.Reader{reader}})
	if err != nil {
		t.Fatal(err)
	}
	js := testkit.NATS(t)
	l, err := eventlog.Open(ctx, js, eventlog.StreamConfig{Name: "TEST", Prefix: "test"}, eventlog.WithTelemetry(tel))
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan eventlog.Record, 1)
	tail := l.Tail(eventlog.TailConfig{Name: "names", Subjects: []string{"test.>"}, Handle: func(r eventlog.Record) error {
		handled <- r
		return nil
	}}, slog.New(slog.DiscardHandler))
	tailCtx, stop := context.WithCancel(ctx)
	defer stop()
	go tail.Run(tailCtx)
	catchUp(t, tail) // "now" is resolved: the append below comes after it

	reqCtx, req := tel.TracerProvider().Tracer("test").Start(ctx, "request")
	ref := userRef()
	w := renamed(ref, "Alice")
	w.Expect = eventlog.ExpectNew()
	if _, err := l.Append(reqCtx, w); err != nil {
		t.Fatal(err)
	}
	req.End()
	if _, err := l.Append(ctx, w); !eventlog.IsConflict(err) { // expects a new aggregate again: a lost race
		t.Fatalf("second append: %v, want a conflict", err)
	}
	var rec eventlog.Record
	select {
	case rec = <-handled:
	case <-time.After(20 * time.Second):
		t.Fatal("the tail did not handle the event in 20 s")
	}
	stop()

	var appendSpan, tailSpan tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		switch {
		case s.SpanKind == trace.SpanKindProducer && s.SpanContext.TraceID() == req.SpanContext().TraceID():
			appendSpan = s
		case s.SpanKind == trace.SpanKindConsumer:
			tailSpan = s
		}
	}
	if appendSpan.Parent.SpanID() != req.SpanContext().SpanID() {
		t.Fatalf("the append's span is not a child of the request's: %+v", appendSpan)
	}
	if tailSpan.Parent.SpanID() != appendSpan.SpanContext.SpanID() || tailSpan.SpanContext.TraceID() != req.SpanContext().TraceID() {
		t.Fatalf("the tail's span is not a child of the append's: %+v", tailSpan)
	}
	for _, s := range []tracetest.SpanStub{appendSpan, tailSpan} {
		want := map[attribute.Key]string{eventlog.AttrEventID: rec.ID(), eventlog.AttrStream: "TEST",
			"messaging.destination.name": rec.Subject, eventlog.AttrEventType: "gatehouse.events.v1.DisplayNameSet"}
		for _, kv := range s.Attributes {
			if v, ok := want[kv.Key]; ok && kv.Value.Emit() == v {
				delete(want, kv.Key)
			}
		}
		if len(want) > 0 {
			t.Errorf("span %q lacks %v: %v", s.Name, want, s.Attributes)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					got[m.Name] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					o, _ := p.Attributes.Value("outcome")
					got[m.Name+"/"+o.AsString()] += int64(p.Count)
				}
			}
		}
	}
	for name, want := range map[string]int64{
		"gatehouse.eventlog.append.conflicts": 1, "gatehouse.eventlog.events.appended": 1,
		"gatehouse.eventlog.append.duration/ok": 1, "gatehouse.eventlog.append.duration/conflict": 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %d, want %d (all: %v)", name, got[name], want, got)
		}
	}
}
