// Package telemetry sets up OpenTelemetry tracing and metrics for one process
// without touching otel's global providers: the *Telemetry value is passed to
// whatever needs it (grpcx, httpx, the NATS event store). InstallGlobal is
// the one explicit opt-in for libraries that only know the globals.
//
// Metrics are exported through a Prometheus registry private to the
// Telemetry, served by MetricsHandler, and, when asked, pushed with OTLP.
// Traces go nowhere ("none": spans are still made, recording nothing, so
// trace ids reach logs and other services), to a writer as JSON ("stdout"), or to an OpenTelemetry
// collector with OTLP over gRPC or HTTP ("otlp").
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// The trace exporters Setup knows.
const (
	TracesNone   = "none"
	TracesStdout = "stdout"
	TracesOTLP   = "otlp"
)

// The metric exporters Setup knows.
const (
	MetricsPrometheus = "prometheus"
	MetricsOTLP       = "otlp"
	MetricsBoth       = "both"
)

// Options configures Setup.
type Options struct {
	// ServiceName is the service.name resource attribute, e.g. "gatehouse".
	ServiceName string
	// Version is the service.version resource attribute.
	Version string
	// Traces is the trace exporter: "none" (or empty), "stdout" or "otlp".
	Traces string
	// Metrics is where metrics go: "prometheus" (or empty: MetricsHandler),
	// "otlp" (pushed) or "both".
	Metrics string
	// OTLP configures the "otlp" exporters.
	OTLP OTLP
	// SampleRatio is the share of new root traces sampled, 0..1; a sampled
	// parent is always followed.
	SampleRatio float64
	// TraceWriter receives the "stdout" exporter's JSON; nil means os.Stdout.
	TraceWriter io.Writer
	// Logger reports setup and shutdown; nil means slog.Default().
	Logger *slog.Logger
	// SpanProcessors receive every span besides the exporter (tests: a
	// tracetest.SpanRecorder sees whole traces in memory).
	SpanProcessors []sdktrace.SpanProcessor
	// MetricReaders read the metrics besides Prometheus and OTLP (tests: an
	// sdkmetric.ManualReader).
	MetricReaders []sdkmetric.Reader
}

// Telemetry holds one process's tracer and meter providers.
type Telemetry struct {
	tracer *sdktrace.TracerProvider
	// idOnly, when no span goes anywhere (traces none, no span processor),
	// makes the spans instead of tracer: ids without recording.
	idOnly     *idOnlyProvider
	meter      *sdkmetric.MeterProvider
	registry   *prometheus.Registry
	propagator propagation.TextMapPropagator
	logger     *slog.Logger
}

// Setup builds the providers described by opts. Call Shutdown when done.
func Setup(ctx context.Context, opts Options) (*Telemetry, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var attrs []attribute.KeyValue
	if opts.ServiceName != "" {
		attrs = append(attrs, attribute.String("service.name", opts.ServiceName))
	}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}

	traceOpts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.SampleRatio))),
	}
	switch opts.Traces {
	case "", TracesNone:
	case TracesStdout:
		w := opts.TraceWriter
		if w == nil {
			w = os.Stdout
		}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, fmt.Errorf("telemetry: stdout trace exporter: %w", err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(exp))
	case TracesOTLP:
		exp, err := opts.OTLP.traceExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(exp))
	default:
		return nil, fmt.Errorf("telemetry: unknown trace exporter %q (want %s, %s or %s)", opts.Traces, TracesNone, TracesStdout, TracesOTLP)
	}
	for _, p := range opts.SpanProcessors {
		traceOpts = append(traceOpts, sdktrace.WithSpanProcessor(p))
	}
	meterOpts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	for _, r := range opts.MetricReaders {
		meterOpts = append(meterOpts, sdkmetric.WithReader(r))
	}
	switch opts.Metrics {
	case "", MetricsPrometheus, MetricsOTLP, MetricsBoth:
	default:
		return nil, fmt.Errorf("telemetry: unknown metrics exporter %q (want %s, %s or %s)", opts.Metrics, MetricsPrometheus, MetricsOTLP, MetricsBoth)
	}
	if opts.Metrics == MetricsOTLP || opts.Metrics == MetricsBoth {
		reader, err := opts.OTLP.metricReader(ctx)
		if err != nil {
			return nil, err
		}
		meterOpts = append(meterOpts, sdkmetric.WithReader(reader))
	}

	registry := prometheus.NewRegistry()
	if err := registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("telemetry: go collector: %w", err)
	}
	if err := registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("telemetry: process collector: %w", err)
	}
	if opts.Metrics != MetricsOTLP {
		exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		meterOpts = append(meterOpts, sdkmetric.WithReader(exporter))
	}

	t := &Telemetry{
		tracer:   sdktrace.NewTracerProvider(traceOpts...),
		meter:    sdkmetric.NewMeterProvider(meterOpts...),
		registry: registry,
		propagator: propagation.NewCompositeTextMapPropagator(
			propagation.TraceContext{}, propagation.Baggage{},
		),
		logger: logger,
	}
	if (opts.Traces == "" || opts.Traces == TracesNone) && len(opts.SpanProcessors) == 0 {
		t.idOnly = &idOnlyProvider{ratio: opts.SampleRatio}
	}
	logger.DebugContext(ctx, "telemetry ready", "service", opts.ServiceName,
		"traces", opts.Traces, "sample_ratio", opts.SampleRatio)
	return t, nil
}

// TracerProvider returns the provider of tracers; a nil Telemetry's makes
// spans that record nothing.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t == nil {
		return tracenoop.NewTracerProvider()
	}
	if t.idOnly != nil {
		return t.idOnly
	}
	return t.tracer
}

// MeterProvider returns the provider of meters; a nil Telemetry's measures
// nothing.
func (t *Telemetry) MeterProvider() metric.MeterProvider {
	if t == nil {
		return metricnoop.NewMeterProvider()
	}
	return t.meter
}

// Propagator returns the W3C trace-context and baggage propagator; a nil
// Telemetry's carries nothing.
func (t *Telemetry) Propagator() propagation.TextMapPropagator {
	if t == nil {
		return propagation.NewCompositeTextMapPropagator()
	}
	return t.propagator
}

// MetricsHandler serves the Telemetry's metrics in the Prometheus format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(t.logger.Handler(), slog.LevelError),
	})
}

// InstallGlobal makes t's providers and propagator otel's globals, for
// libraries that only know those. Nothing in Gatehouse needs it.
func (t *Telemetry) InstallGlobal() {
	otel.SetTracerProvider(t.TracerProvider())
	otel.SetMeterProvider(t.meter)
	otel.SetTextMapPropagator(t.propagator)
}

// Shutdown flushes pending spans and stops both providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(
		wrapErr("trace provider", t.tracer.Shutdown(ctx)),
		wrapErr("meter provider", t.meter.Shutdown(ctx)),
	)
}

// wrapErr prefixes a non-nil err with what failed.
func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("telemetry: shut down %s: %w", what, err)
}
