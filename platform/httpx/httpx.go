// Package httpx is the HTTP plumbing of Gatehouse: security headers, body
// limits, tracing, a server with every timeout set that stops gracefully, and
// the operations endpoints (/health, /ready, /metrics).
package httpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"gatehouse.dev/platform/telemetry"
)

// DefaultCSP is the Content-Security-Policy of responses whose handler sets none.
const DefaultCSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// The limits of the server Serve runs.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
	// ShutdownTimeout bounds how long a graceful shutdown waits for requests in flight.
	ShutdownTimeout = 10 * time.Second
)

// SecurityHeaders sets nosniff, no-referrer, DENY framing and DefaultCSP on
// every response, and HSTS on those to requests that came over TLS. The
// headers are set before next runs, so a handler replaces any of them with
// Header().Set (not Add). Behind a TLS-terminating proxy the request is not
// TLS here, so the proxy should send HSTS itself.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header(), r)
		next.ServeHTTP(w, r)
	})
}

// setSecurityHeaders sets the headers of SecurityHeaders on h.
func setSecurityHeaders(h http.Header, r *http.Request) {
	// Canonical keys, and values shared by every response (their length is
	// their capacity, so Add copies rather than writing into them): no
	// allocation per request.
	h["X-Content-Type-Options"] = nosniff
	h["Referrer-Policy"] = noReferrer
	h["X-Frame-Options"] = deny
	if h.Get("Content-Security-Policy") == "" {
		h["Content-Security-Policy"] = defaultCSP
	}
	if r.TLS != nil {
		h["Strict-Transport-Security"] = hsts
	}
}

// The values SecurityHeaders sets.
var (
	nosniff    = []string{"nosniff"}
	noReferrer = []string{"no-referrer"}
	deny       = []string{"DENY"}
	defaultCSP = []string{DefaultCSP}
	hsts       = []string{"max-age=63072000; includeSubDomains"}
)

// LimitBody caps request bodies at max bytes: reading past it fails with an
// *http.MaxBytesError, and the connection is closed after the response.
func LimitBody(next http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}

// Deadline gives every request a server-side deadline of d: the work it
// causes (projection waits, gRPC calls, NATS publishes, homeserver calls)
// ends with the request's context, which also ends when the client goes
// away. A handler that runs out of time answers 503 through its error path.
func Deadline(next http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Instrument traces and measures next as the operation name. Requests are
// treated as coming from the public internet: an incoming trace context
// becomes a link of a new trace, so callers cannot pick trace ids or force
// sampling. Spans record the route a request matched ("/recover/{ticket}"),
// never its path, which may carry a secret, and so does the request's
// measure (http.server.request.duration by method, route and status, as
// OpenTelemetry's semantic conventions name them). A nil t returns next
// unchanged.
//
// It does what otelhttp's handler did at a fraction of its cost, on the hot
// paths (an introspection answered from memory: a fifth of the CPU): no
// trace headers parsed when there are none, no wrapping of the response
// beyond its status, and each route and status's attribute set made once.
func Instrument(next http.Handler, t *telemetry.Telemetry, name string) http.Handler {
	if t == nil {
		return next
	}
	duration, err := t.MeterProvider().Meter(instrumentScope).Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	if err != nil {
		slog.Default().Error("http server telemetry", "err", err) // the instrument returned still works
	}
	return &instrumented{next: next, name: name, tracer: t.TracerProvider().Tracer(instrumentScope), propagator: t.Propagator(),
		duration: duration, sets: map[requestKey][]metric.RecordOption{}}
}

// Edge is what the public listener does to every request besides tracing
// it: SecurityHeaders, LimitBody, Deadline and the values Context adds (the
// client's address).
type Edge struct {
	// Timeout is each request's deadline (Deadline); 0: none.
	Timeout time.Duration
	// MaxBody caps request bodies (LimitBody); 0: no cap.
	MaxBody int64
	// Context adds values to a request's context, e.g. clientaddr's
	// Resolver.WithAddr; nil adds none.
	Context func(context.Context, *http.Request) context.Context
}

// Public serves mux as the public listener: Instrument's traces and
// measures (none with a nil t) and the Edge's headers, body limit, deadline
// and context values, in one handler that derives each request's context
// once — one copy of the request where a chain of middleware makes one each,
// which is most of the HTTP edge's cost on the hot paths (introspection).
func Public(mux *http.ServeMux, t *telemetry.Telemetry, name string, e Edge) http.Handler {
	in, ok := Instrument(mux, t, name).(*instrumented)
	if !ok {
		return &edge{mux: mux, e: e}
	}
	in.edge, in.mux = &e, mux
	return in
}

// edge is a Public handler without telemetry.
type edge struct {
	mux *http.ServeMux
	e   Edge
}

func (h *edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	inner, cancel := h.e.request(w, r, r.Context())
	defer cancel()
	defer keepMultipartForm(r, inner)
	h.mux.ServeHTTP(w, inner)
}

// keepMultipartForm gives r the multipart form read from its copy inner:
// net/http removes a form's temporary files from the request it made, not
// from a copy.
func keepMultipartForm(r, inner *http.Request) {
	if inner.MultipartForm != nil {
		r.MultipartForm = inner.MultipartForm
	}
}

// request is r with the Edge applied, its context derived from ctx; cancel
// releases the deadline's resources.
func (e *Edge) request(w http.ResponseWriter, r *http.Request, ctx context.Context) (_ *http.Request, cancel context.CancelFunc) {
	setSecurityHeaders(w.Header(), r)
	if e.Context != nil {
		ctx = e.Context(ctx, r)
	}
	cancel = func() {}
	if e.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
	}
	inner := r.WithContext(ctx)
	if e.MaxBody > 0 {
		inner.Body = http.MaxBytesReader(w, inner.Body, e.MaxBody)
	}
	return inner, cancel
}

// instrumentScope is the instrumentation scope of the request spans and measures.
const instrumentScope = "gatehouse.dev/platform/httpx"

// instrumented is a handler Instrument traces and measures.
type instrumented struct {
	next       http.Handler
	name       string
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	duration   metric.Float64Histogram
	// sets are the options of each requestKey's measure, made once.
	setsMu sync.RWMutex
	sets   map[requestKey][]metric.RecordOption
	// edge, for Public: applied to the request in the same copy that
	// carries the span, and mux served directly (its pattern is the route).
	edge *Edge
	mux  *http.ServeMux
}

// serverSpan are the options of a request's span without a link.
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot()}

// requestKey is what a request's measure is labelled with.
type requestKey struct {
	method, route, scheme, version string
	status                         int
}

func (in *instrumented) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	ctx := r.Context()
	opts := serverSpan
	if len(r.Header["Traceparent"]) > 0 || len(r.Header["Baggage"]) > 0 {
		ctx = in.propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && sc.IsRemote() {
			opts = append(slices.Clip(opts), trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	ctx, span := in.tracer.Start(ctx, in.name, opts...)
	sw := &statusWriter{ResponseWriter: w}
	var inner *http.Request
	seen := ""
	if in.edge != nil {
		var cancel context.CancelFunc
		inner, cancel = in.edge.request(sw, r, ctx)
		defer cancel()
	} else {
		inner = r.WithContext(context.WithValue(ctx, routeKey{}, &seen))
	}
	defer keepMultipartForm(r, inner)
	if in.edge != nil {
		in.mux.ServeHTTP(sw, inner)
	} else {
		in.next.ServeHTTP(sw, inner)
	}

	pattern := seen
	if pattern == "" {
		pattern = inner.Pattern
	}
	route := "unmatched"
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		route = pattern[i:] // without the method and host of "GET host/path"
	}
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	method := r.Method
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodOptions, http.MethodConnect, http.MethodTrace:
	default:
		method = "_OTHER" // the conventions' word for any other: a fixed set of labels
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	version := "1.1"
	switch r.ProtoMajor {
	case 2:
		version = "2"
	case 1:
		if r.ProtoMinor == 0 {
			version = "1.0"
		}
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.String("http.request.method", method), attribute.String("url.scheme", scheme),
			attribute.String("url.path", route), attribute.String("http.route", route),
			attribute.Int("http.response.status_code", status), attribute.String("network.protocol.version", version))
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, "")
		}
	}
	span.End()
	in.duration.Record(ctx, time.Since(began).Seconds(), in.attrs(requestKey{method, route, scheme, version, status})...)
}

// attrs are the options of a request's measure, its attribute set, made
// once per key (a slice made once: passing it allocates nothing).
func (in *instrumented) attrs(k requestKey) []metric.RecordOption {
	in.setsMu.RLock()
	o, ok := in.sets[k]
	in.setsMu.RUnlock()
	if ok {
		return o
	}
	kvs := []attribute.KeyValue{
		attribute.String("http.request.method", k.method), attribute.String("http.route", k.route),
		attribute.Int("http.response.status_code", k.status), attribute.String("url.scheme", k.scheme),
		attribute.String("network.protocol.name", "http"), attribute.String("network.protocol.version", k.version),
	}
	if k.status >= http.StatusInternalServerError {
		kvs = append(kvs, attribute.String("error.type", strconv.Itoa(k.status)))
	}
	in.setsMu.Lock()
	defer in.setsMu.Unlock()
	if o, ok := in.sets[k]; ok {
		return o
	}
	o = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
	in.sets[k] = o
	return o
}

// statusWriter notes the status a handler answers with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader notes the first final status.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= http.StatusOK {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write answers 200 unless a status was written.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush flushes the response, when the writer underneath can.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap is the writer underneath, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// routeKey carries, in an instrumented request's context, where Routes
// writes the pattern the request matched (Instrument, further out, sees only
// its own copy of the request).
type routeKey struct{}

// Routes serves mux, telling Instrument (further out, past middleware that
// may copy the request) which of mux's patterns each request matched.
func Routes(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen, ok := r.Context().Value(routeKey{}).(*string); ok {
			_, *seen = mux.Handler(r)
		}
		mux.ServeHTTP(w, r)
	})
}

// Serve listens on addr and serves h until ctx is done, then shuts down
// gracefully (see ServeListener). It returns nil after such a shutdown.
func Serve(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("httpx: listen %s: %w", addr, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger.InfoContext(ctx, "http listening", "addr", lis.Addr().String())
	return ServeListener(ctx, lis, h, logger)
}

// ServeListener serves h on lis with every server timeout set until ctx is
// done, then stops accepting, waits up to ShutdownTimeout for requests in
// flight and closes the rest. It returns nil after such a shutdown, or the
// error that ended serving early; lis is closed either way. Request contexts
// are not derived from ctx, so requests in flight may finish.
func ServeListener(ctx context.Context, lis net.Listener, h http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()

	select {
	case err := <-served:
		return fmt.Errorf("httpx: serve %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		logger.WarnContext(ctx, "http shutdown timed out; closing connections", "addr", lis.Addr().String())
		err = srv.Close()
	}
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("httpx: shut down %s: %w", lis.Addr(), err)
	}
	return nil
}
