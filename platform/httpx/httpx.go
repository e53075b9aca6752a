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
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
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
		h := w.Header()
		// Canonical keys, and values shared by every response (their
		// length is their capacity, so Add copies rather than writing into
		// them): no allocation per request.
		h["X-Content-Type-Options"] = nosniff
		h["Referrer-Policy"] = noReferrer
		h["X-Frame-Options"] = deny
		if h.Get("Content-Security-Policy") == "" {
			h["Content-Security-Policy"] = defaultCSP
		}
		if r.TLS != nil {
			h["Strict-Transport-Security"] = hsts
		}
		next.ServeHTTP(w, r)
	})
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
// never its path, which may carry a secret. A nil t returns next unchanged.
func Instrument(next http.Handler, t *telemetry.Telemetry, name string) http.Handler {
	if t == nil {
		return next
	}
	return otelhttp.NewHandler(routeOnly(next), name,
		otelhttp.WithTracerProvider(t.TracerProvider()),
		otelhttp.WithMeterProvider(t.MeterProvider()),
		otelhttp.WithPropagators(t.Propagator()),
		otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return true }),
	)
}

// routeOnly replaces the path otelhttp records on the request's span with the
// pattern of the http.ServeMux route that served it ("unmatched" when none
// did), so that no recovery ticket or other secret in a path reaches a trace
// exporter, and labels the request's metrics with it (http_route: a fixed
// set). The pattern is the one Routes saw, or else the one the mux set on
// this very request (when no middleware in between copied it).
func routeOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var seen string
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, &seen)))
		pattern := seen
		if pattern == "" {
			pattern = r.Pattern
		}
		route := "unmatched"
		if i := strings.IndexByte(pattern, '/'); i >= 0 {
			route = pattern[i:] // without the method and host of "GET host/path"
		}
		trace.SpanFromContext(r.Context()).SetAttributes(
			attribute.String("url.path", route), attribute.String("http.route", route))
		if l, ok := otelhttp.LabelerFromContext(r.Context()); ok {
			l.Add(attribute.String("http.route", route))
		}
	})
}

// routeKey carries, in an instrumented request's context, where Routes
// writes the pattern the request matched.
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
