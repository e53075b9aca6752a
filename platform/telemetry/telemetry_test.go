package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"gatehouse.dev/platform/telemetry"
)

// setup returns a Telemetry shut down when the test ends.
func setup(t *testing.T, opts telemetry.Options) *telemetry.Telemetry {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tel, err := telemetry.Setup(t.Context(), opts)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tel
}

func TestNATSPropagation(t *testing.T) {
	tel := setup(t, telemetry.Options{ServiceName: "test", SampleRatio: 1})
	ctx, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "publish")
	defer span.End()
	member, err := baggage.NewMember("client_id", "c1")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx = baggage.ContextWithBaggage(ctx, bag)

	msg := nats.NewMsg("events.test")
	telemetry.InjectNATS(ctx, tel.Propagator(), msg.Header)
	if msg.Header.Get("traceparent") == "" {
		t.Fatalf("no traceparent in header %v", msg.Header)
	}

	got := telemetry.ExtractNATS(context.Background(), tel.Propagator(), msg.Header)
	remote := trace.SpanContextFromContext(got)
	want := span.SpanContext()
	if remote.TraceID() != want.TraceID() || remote.SpanID() != want.SpanID() {
		t.Errorf("extracted trace %s/%s, want %s/%s", remote.TraceID(), remote.SpanID(), want.TraceID(), want.SpanID())
	}
	if !remote.IsRemote() || !remote.IsSampled() {
		t.Errorf("extracted span context remote=%v sampled=%v, want both", remote.IsRemote(), remote.IsSampled())
	}
	if v := baggage.FromContext(got).Member("client_id").Value(); v != "c1" {
		t.Errorf("baggage client_id = %q, want c1", v)
	}

	_, child := tel.TracerProvider().Tracer("test").Start(got, "consume")
	defer child.End()
	if child.SpanContext().TraceID() != want.TraceID() {
		t.Errorf("consumer span is in trace %s, want %s", child.SpanContext().TraceID(), want.TraceID())
	}
}

func TestHeaderCarrier(t *testing.T) {
	h := nats.Header{"b": {"2"}, "a": {"1", "x"}}
	c := telemetry.HeaderCarrier(h)
	c.Set("c", "3")
	if got := strings.Join(c.Keys(), ","); got != "a,b,c" {
		t.Errorf("Keys = %s, want a,b,c", got)
	}
	if got := c.Get("a"); got != "1" {
		t.Errorf("Get(a) = %q, want 1", got)
	}
	if got := h.Get("c"); got != "3" {
		t.Errorf("Set did not write through to the nats.Header: %v", h)
	}
	telemetry.HeaderCarrier(nil).Set("k", "v") // must not panic
}

func TestSamplingRatioZeroStillPropagatesIDs(t *testing.T) {
	tel := setup(t, telemetry.Options{SampleRatio: 0})
	_, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "x")
	defer span.End()
	if !span.SpanContext().IsValid() || span.SpanContext().IsSampled() {
		t.Errorf("span context valid=%v sampled=%v, want valid and unsampled",
			span.SpanContext().IsValid(), span.SpanContext().IsSampled())
	}
}

func TestMetricsHandler(t *testing.T) {
	tel := setup(t, telemetry.Options{ServiceName: "test"})
	counter, err := tel.MeterProvider().Meter("gatehouse.dev/test").Int64Counter("logins",
		metric.WithDescription("successful logins"))
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(t.Context(), 3)

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d:\n%s", rec.Code, body)
	}
	for _, want := range []string{"# HELP logins_total successful logins", "logins_total{", "} 3", "go_goroutines", `service_name="test"`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestMetricsAreNotShared(t *testing.T) {
	a := setup(t, telemetry.Options{})
	b := setup(t, telemetry.Options{})
	c, err := a.MeterProvider().Meter("x").Int64Counter("only_in_a")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(t.Context(), 1)
	rec := httptest.NewRecorder()
	b.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if strings.Contains(rec.Body.String(), "only_in_a") {
		t.Error("a counter of one Telemetry shows in another's metrics")
	}
}

func TestStdoutTraces(t *testing.T) {
	var out bytes.Buffer
	tel, err := telemetry.Setup(t.Context(), telemetry.Options{
		ServiceName: "test", Traces: telemetry.TracesStdout, SampleRatio: 1, TraceWriter: &out,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	_, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "exported-span")
	span.End()
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !strings.Contains(out.String(), `"Name":"exported-span"`) {
		t.Errorf("stdout exporter wrote %q, want the span", out.String())
	}
}

func TestSetupRejectsUnknownExporter(t *testing.T) {
	_, err := telemetry.Setup(t.Context(), telemetry.Options{Traces: "jaeger"})
	if err == nil || !strings.Contains(err.Error(), `unknown trace exporter "jaeger"`) {
		t.Errorf("Setup(jaeger) = %v, want unknown exporter error", err)
	}
	_, err = telemetry.Setup(t.Context(), telemetry.Options{Metrics: "statsd"})
	if err == nil || !strings.Contains(err.Error(), `unknown metrics exporter "statsd"`) {
		t.Errorf("Setup(metrics statsd) = %v, want unknown exporter error", err)
	}
}

func TestLoggerAddsTraceIDs(t *testing.T) {
	tel := setup(t, telemetry.Options{SampleRatio: 1})
	var buf bytes.Buffer
	logger, err := telemetry.NewLogger("debug", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tel.TracerProvider().Tracer("test").Start(t.Context(), "op")
	defer span.End()

	logger.With("component", "test").DebugContext(ctx, "inside span")
	logger.InfoContext(t.Context(), "outside span")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	var inside, outside map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &inside); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &outside); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if inside["trace_id"] != sc.TraceID().String() || inside["span_id"] != sc.SpanID().String() {
		t.Errorf("inside span: %v, want trace_id %s span_id %s", inside, sc.TraceID(), sc.SpanID())
	}
	if inside["component"] != "test" {
		t.Errorf("With attributes lost: %v", inside)
	}
	if _, ok := outside["trace_id"]; ok {
		t.Errorf("outside span has a trace_id: %v", outside)
	}
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level, format string
		wantErr       string
		logsDebug     bool
		prefix        string
	}{
		{"debug", "text", "", true, "time="},
		{"info", "json", "", false, "{"},
		{"warn", "text", "", false, "time="},
		{"error", "json", "", false, "{"},
		{"loud", "text", `log level "loud"`, false, ""},
		{"info", "xml", `log format "xml"`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.level+"/"+tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			logger, err := telemetry.NewLogger(tt.level, tt.format, &buf)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewLogger = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			logger.Debug("d")
			if got := buf.Len() > 0; got != tt.logsDebug {
				t.Errorf("debug logged = %v, want %v", got, tt.logsDebug)
			}
			logger.Error("e")
			if !strings.HasPrefix(lastLine(&buf), tt.prefix) {
				t.Errorf("line %q does not start with %q", lastLine(&buf), tt.prefix)
			}
		})
	}
}

// lastLine returns the last non-empty line of r.
func lastLine(r io.Reader) string {
	b, _ := io.ReadAll(r)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
