package grpcx_test

import (
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"gatehouse.dev/platform/grpcx"
	"gatehouse.dev/platform/telemetry"
)

// A call is one server span in its caller's trace, and one measure of
// rpc.server.call.duration labelled with its method and status as the
// semantic conventions name them (error.type for the server's faults).
func TestServerTelemetry(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	tel, err := telemetry.Setup(t.Context(), telemetry.Options{Logger: slog.New(slog.DiscardHandler), SampleRatio: 1,
		SpanProcessors: []sdktrace.SpanProcessor{spans}, MetricReaders: []sdkmetric.Reader{reader}})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler), Telemetry: tel,
		Auth: &grpcx.Auth{InternalSecret: []byte("a-secret-of-at-least-thirty-two-bytes")}})
	healthgrpc.RegisterHealthServer(srv, &scripted{deadlines: make(chan time.Duration, 1)})
	client := dial(t, serve(t, srv), grpcx.DialOptions{Telemetry: tel})

	ctx, parent := tel.TracerProvider().Tracer("test").Start(t.Context(), "caller")
	if _, err := client.Check(ctx, &healthgrpc.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Check(ctx, &healthgrpc.HealthCheckRequest{Service: "internal"}); err == nil {
		t.Fatal("the internal failure succeeded")
	}
	parent.End()

	var server []string
	for _, s := range spans.Ended() {
		if s.SpanKind() == trace.SpanKindServer {
			server = append(server, s.Name())
			if s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
				t.Errorf("server span %s is in trace %s, want the caller's %s", s.Name(), s.SpanContext().TraceID(), parent.SpanContext().TraceID())
			}
		}
	}
	if len(server) != 2 || server[0] != "grpc.health.v1.Health/Check" {
		t.Errorf("server spans %v, want two grpc.health.v1.Health/Check", server)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"OK|": false, "INTERNAL|INTERNAL": false}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "rpc.server.call.duration" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				method, _ := dp.Attributes.Value(attribute.Key("rpc.method"))
				code, _ := dp.Attributes.Value(attribute.Key("rpc.response.status_code"))
				errType, _ := dp.Attributes.Value(attribute.Key("error.type"))
				key := code.AsString() + "|" + errType.AsString()
				if _, ok := want[key]; ok && method.AsString() == "grpc.health.v1.Health/Check" && dp.Count == 1 {
					want[key] = true
				}
			}
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no rpc.server.call.duration measure of one Check with status|error.type %s: %+v", k, rm.ScopeMetrics)
		}
	}
}
