package grpcx

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"gatehouse.dev/platform/telemetry"
)

// serverTelemetry traces and measures the calls a server answers, as
// OpenTelemetry's semantic conventions for RPC say (the span
// "pkg.Service/Method" of kind server, in the caller's trace; the histogram
// rpc.server.call.duration by rpc.method and rpc.response.status_code), at
// a fraction of otelgrpc's server handler's cost: that one copied every
// call's metadata, and made and hashed its attribute sets on every call —
// a third of the CPU of an introspection. Here a call reads the trace
// headers only, and each method and status has its attribute set made once.
type serverTelemetry struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	duration   metric.Float64Histogram
	sets       sync.Map // callKey → metric.MeasurementOption
}

// callKey is what a call's measure is labelled with.
type callKey struct {
	method string
	code   codes.Code
}

// telemetryScope is the instrumentation scope of the server's spans and measures.
const telemetryScope = "gatehouse.dev/platform/grpcx"

// newServerTelemetry returns the server's instrumentation; nil with no telemetry.
func newServerTelemetry(t *telemetry.Telemetry) (*serverTelemetry, error) {
	if t == nil {
		return nil, nil
	}
	d, err := t.MeterProvider().Meter(telemetryScope).Float64Histogram("rpc.server.call.duration", metric.WithUnit("s"),
		metric.WithDescription("Measures the duration of inbound remote procedure calls."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	if err != nil {
		return nil, err
	}
	return &serverTelemetry{tracer: t.TracerProvider().Tracer(telemetryScope), propagator: t.Propagator(), duration: d}, nil
}

// unary traces and measures unary calls.
func (st *serverTelemetry) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, span, began := st.begin(ctx, info.FullMethod)
	resp, err := handler(ctx, req)
	st.end(ctx, span, info.FullMethod, began, err)
	return resp, err
}

// stream traces and measures streaming calls.
func (st *serverTelemetry) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, span, began := st.begin(ss.Context(), info.FullMethod)
	err := handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
	st.end(ctx, span, info.FullMethod, began, err)
	return err
}

// begin starts a call's span, a child of the caller's when it sent one.
func (st *serverTelemetry) begin(ctx context.Context, fullMethod string) (context.Context, trace.Span, time.Time) {
	began := time.Now()
	ctx = st.propagator.Extract(ctx, incomingCarrier{ctx})
	ctx, span := st.tracer.Start(ctx, strings.TrimPrefix(fullMethod, "/"), trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("rpc.system.name", "grpc"), attribute.String("rpc.method", strings.TrimPrefix(fullMethod, "/")))
	}
	return ctx, span, began
}

// end ends a call's span and records its duration.
func (st *serverTelemetry) end(ctx context.Context, span trace.Span, fullMethod string, began time.Time, err error) {
	code := status.Code(err)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("rpc.response.status_code", codeName(code)))
		if serverFault(code) {
			span.SetStatus(otelcodes.Error, status.Convert(err).Message())
		}
		span.End()
	}
	st.duration.Record(ctx, time.Since(began).Seconds(), st.attrs(fullMethod, code))
}

// attrs is the attribute set of a call's measure, made once per method and status.
func (st *serverTelemetry) attrs(fullMethod string, code codes.Code) metric.MeasurementOption {
	key := callKey{fullMethod, code}
	if o, ok := st.sets.Load(key); ok {
		return o.(metric.MeasurementOption)
	}
	kvs := []attribute.KeyValue{
		attribute.String("rpc.system.name", "grpc"),
		attribute.String("rpc.method", strings.TrimPrefix(fullMethod, "/")),
		attribute.String("rpc.response.status_code", codeName(code)),
	}
	if serverFault(code) {
		kvs = append(kvs, attribute.String("error.type", codeName(code)))
	}
	o, _ := st.sets.LoadOrStore(key, metric.WithAttributeSet(attribute.NewSet(kvs...)))
	return o.(metric.MeasurementOption)
}

// serverFault reports whether a status is the server's failure (semantic
// conventions: these codes mark a server's span and measure as errors).
func serverFault(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// codeName is a status code as the conventions write it: OK, UNAVAILABLE, ...
func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "CODE(" + strconv.Itoa(int(c)) + ")"
}

// codeNames are the names of the status codes, by code.
var codeNames = [...]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
	codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE",
	codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE",
	codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
}

// incomingCarrier reads a call's trace headers from its metadata one key at
// a time (metadata.FromIncomingContext would copy all of them).
type incomingCarrier struct{ ctx context.Context }

// Get returns the first value of key.
func (c incomingCarrier) Get(key string) string {
	if v := metadata.ValueFromIncomingContext(c.ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set does nothing: incoming metadata is read only.
func (incomingCarrier) Set(string, string) {}

// Keys lists the metadata's keys.
func (c incomingCarrier) Keys() []string {
	md, _ := metadata.FromIncomingContext(c.ctx)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}
