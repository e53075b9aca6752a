// Package grpcx is the gRPC plumbing of Gatehouse's services: a server whose
// handlers simply return errs values, a way to serve it until a context ends,
// and a client connection that turns statuses back into errs values.
//
// Every call is authenticated (auth.go): services and the admin CLI with a
// credential derived from the internal secret or a client certificate, the
// homeserver with matrix.secret; and every method names in its proto
// definition which callers may call it. TLS, with client certificates, comes
// from configuration.
package grpcx

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/telemetry"
)

// MaxRecvMsgSize bounds a message the server accepts: 4 MiB.
const MaxRecvMsgSize = 4 << 20

// streamWorkers is the least number of goroutines kept to run calls.
const streamWorkers = 256

// ServerOptions configures NewServer.
type ServerOptions struct {
	// Logger logs calls (debug), internal errors and panics; nil means slog.Default().
	Logger *slog.Logger
	// Telemetry traces and measures calls; nil disables both.
	Telemetry *telemetry.Telemetry
	// Health, when not nil, is registered as the grpc.health.v1 service.
	Health *health.Server
	// Auth authenticates and authorizes every call but health checks; nil
	// refuses them all.
	Auth *Auth
	// TLS, when not nil, serves over TLS (and verifies client certificates
	// when it has ClientCAs).
	TLS *tls.Config
	// Deadline is given to calls whose client sent none; zero leaves them
	// without one. A client's own deadline is kept (the admin CLI's long
	// operations set theirs).
	Deadline time.Duration
}

// NewServer returns a gRPC server whose handlers may return *errs.Error
// values: the interceptors authenticate every call and check it against the
// method's access option (health checks excepted; reflection needs any valid
// credential), recover panics into Internal errors (logging the stack), turn
// returned errors into statuses with errs.ToStatus (logging internal causes,
// which clients never see), and log each call at debug level. The health
// service (when given) and reflection are registered.
func NewServer(opts ServerOptions) *grpc.Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	auth := opts.Auth
	if auth == nil {
		auth = &Auth{}
	}
	unary := []grpc.UnaryServerInterceptor{unaryInterceptor(logger), deadlineUnary(opts.Deadline), authUnary(auth)}
	stream := []grpc.StreamServerInterceptor{streamInterceptor(logger), authStream(auth)}
	// Outermost: the span and the measure see the status the caller gets.
	if st, err := newServerTelemetry(opts.Telemetry); err != nil {
		logger.Error("grpc server telemetry", "err", err)
	} else if st != nil {
		unary = append([]grpc.UnaryServerInterceptor{st.unary}, unary...)
		stream = append([]grpc.StreamServerInterceptor{st.stream}, stream...)
	}
	serverOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		// Calls run on long-lived workers (a new goroutine only when all are
		// busy): a fresh goroutine per call grew its stack through the
		// interceptors and telemetry every time, a fifth of the CPU of an
		// introspection. As many as the calls a busy homeserver keeps in
		// flight: a worker is busy while its call waits for a core.
		grpc.NumStreamWorkers(uint32(max(streamWorkers, 16*runtime.GOMAXPROCS(0)))),
		// Idle connections keep no write buffer of their own.
		grpc.SharedWriteBuffer(true),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: 15 * time.Minute,
			// Recycle connections so clients re-resolve and spread over new replicas.
			MaxConnectionAge:      5 * time.Minute,
			MaxConnectionAgeGrace: 30 * time.Second,
			Time:                  time.Minute,
			Timeout:               20 * time.Second,
		}),
	}
	if opts.TLS != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	srv := grpc.NewServer(serverOpts...)
	if opts.Health != nil {
		healthgrpc.RegisterHealthServer(srv, opts.Health)
	}
	reflection.Register(srv)
	return srv
}

// deadlineUnary gives unary calls without a deadline one of d.
func deadlineUnary(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := ctx.Deadline(); ok || d <= 0 {
			return handler(ctx, req)
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return handler(ctx, req)
	}
}

// unaryInterceptor recovers, converts and logs unary calls.
func unaryInterceptor(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		var resp any
		err := recovering(ctx, logger, info.FullMethod, func() (err error) {
			resp, err = handler(ctx, req)
			return err
		})
		return resp, finish(ctx, logger, info.FullMethod, start, err)
	}
}

// streamInterceptor recovers, converts and logs streaming calls.
func streamInterceptor(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		start := time.Now()
		err := recovering(ctx, logger, info.FullMethod, func() error {
			return handler(srv, ss)
		})
		return finish(ctx, logger, info.FullMethod, start, err)
	}
}

// recovering runs call, turning a panic into an internal error after logging
// it with its stack.
func recovering(ctx context.Context, logger *slog.Logger, method string, call func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			logger.ErrorContext(ctx, "grpc handler panicked",
				"method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = errs.Internalf("panic in %s: %v", method, r)
		}
	}()
	return call()
}

// finish converts err into the status the client gets and logs the call:
// at error level with the internal cause when the error is internal, else at
// debug level.
func finish(ctx context.Context, logger *slog.Logger, method string, start time.Time, err error) error {
	st := errs.ToStatus(err)
	level := slog.LevelDebug
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", st.Code().String()),
		slog.Duration("duration", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		if errs.KindOf(err) == errs.KindInternal {
			level = slog.LevelError
		}
	}
	logger.LogAttrs(ctx, level, "grpc call", attrs...)
	return st.Err()
}
