package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/telemetry"
)

// collector is an OTLP receiver speaking the protocol over gRPC and HTTP, a
// stand-in for an OpenTelemetry Collector: it records the spans, metric names
// and api-key headers it receives.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer

	mu      sync.Mutex
	spans   []string
	metrics []string
	keys    []string
	service []string
}

func (c *collector) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.traces(req, md.Get("api-key"))
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) traces(req *collectortrace.ExportTraceServiceRequest, keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys = append(c.keys, keys...)
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				c.service = append(c.service, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.spans = append(c.spans, sp.GetName())
			}
		}
	}
}

// metricsServer adapts the collector to the metrics service (whose Export
// has the same name as the trace service's).
type metricsServer struct {
	collectormetrics.UnimplementedMetricsServiceServer
	c *collector
}

func (m metricsServer) Export(_ context.Context, req *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, mt := range sm.GetMetrics() {
				m.c.metrics = append(m.c.metrics, mt.GetName())
			}
		}
	}
	return &collectormetrics.ExportMetricsServiceResponse{}, nil
}

func (c *collector) has(list *[]string, want string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range *list {
		if v == want {
			return true
		}
	}
	return false
}

// emit makes a span and a counter through t, then shuts it down, which
// flushes both.
func emit(t *testing.T, tel *telemetry.Telemetry) {
	t.Helper()
	_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "gatehouse-test-span")
	span.End()
	counter, err := tel.MeterProvider().Meter("test").Int64Counter("gatehouse_test_total")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown (flush): %v", err)
	}
}

func TestOTLPExportOverGRPC(t *testing.T) {
	c := &collector{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	collectormetrics.RegisterMetricsServiceServer(srv, metricsServer{c: c})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	tel, err := telemetry.Setup(context.Background(), telemetry.Options{
		ServiceName: "gatehouse-test", Traces: telemetry.TracesOTLP, Metrics: telemetry.MetricsBoth, SampleRatio: 1,
		Logger: slog.New(slog.DiscardHandler),
		OTLP: telemetry.OTLP{Endpoint: lis.Addr().String(), Protocol: telemetry.ProtocolGRPC, Insecure: true,
			Headers: map[string]string{"api-key": "collector-key"}, MetricsInterval: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	emit(t, tel)
	if !c.has(&c.spans, "gatehouse-test-span") || !c.has(&c.service, "gatehouse-test") || !c.has(&c.keys, "collector-key") {
		t.Errorf("collector got spans %v of services %v with keys %v", c.spans, c.service, c.keys)
	}
	if !c.has(&c.metrics, "gatehouse_test_total") {
		t.Errorf("collector got metrics %v", c.metrics)
	}
}

func TestOTLPExportOverHTTP(t *testing.T) {
	c := &collector{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.traces(&req, r.Header.Values("Api-Key"))
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Write(b)
	})
	mux.HandleFunc("POST /v1/metrics", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectormetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		metricsServer{c: c}.Export(r.Context(), &req)
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&collectormetrics.ExportMetricsServiceResponse{})
		w.Write(b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tel, err := telemetry.Setup(context.Background(), telemetry.Options{
		ServiceName: "gatehouse-test", Traces: telemetry.TracesOTLP, Metrics: telemetry.MetricsOTLP, SampleRatio: 1,
		Logger: slog.New(slog.DiscardHandler),
		OTLP: telemetry.OTLP{Endpoint: srv.URL, Protocol: telemetry.ProtocolHTTP, Insecure: true,
			Headers: map[string]string{"api-key": "collector-key"}, MetricsInterval: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	emit(t, tel)
	if !c.has(&c.spans, "gatehouse-test-span") || !c.has(&c.keys, "collector-key") {
		t.Errorf("collector got spans %v with keys %v", c.spans, c.keys)
	}
	if !c.has(&c.metrics, "gatehouse_test_total") {
		t.Errorf("collector got metrics %v", c.metrics)
	}
}

func TestOTLPRefusesUnknownProtocol(t *testing.T) {
	_, err := telemetry.Setup(context.Background(), telemetry.Options{
		Traces: telemetry.TracesOTLP, Logger: slog.New(slog.DiscardHandler), OTLP: telemetry.OTLP{Protocol: "http/json"},
	})
	if err == nil {
		t.Fatal("Setup accepted an unknown OTLP protocol")
	}
}
