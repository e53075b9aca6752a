package host

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/grpcx"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/projection"
	projectionsv1 "gatehouse.dev/proto/gatehouse/projections/v1"
)

// Service is one Gatehouse service hosted in the process.
type Service interface {
	// Name is the service's name: accounts, authorize, token, notify, web or admin.
	Name() string
	// RegisterGRPC registers the service's gRPC APIs.
	RegisterGRPC(grpc.ServiceRegistrar)
	// Run does the service's background work (projections, consumers) until ctx ends.
	Run(ctx context.Context) error
}

// HTTPService is a service with public HTTP routes.
type HTTPService interface {
	Service
	// RegisterHTTP adds the service's routes to the public mux.
	RegisterHTTP(mux *http.ServeMux)
}

// ProjectionService is a service that keeps projections.
type ProjectionService interface {
	Service
	// Projections is the service's projection set.
	Projections() *projection.Set
}

// maxBody bounds public request bodies; OAuth and form posts are small.
const maxBody = 1 << 20

// Serve serves the services until ctx ends: their gRPC APIs (with health,
// reflection and the projections admin API) on the gRPC address, their public
// routes on the HTTP address, and health and metrics on the ops address.
func (rt *Runtime) Serve(ctx context.Context, services ...Service) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Every public request learns its client address once (see clientaddr.Of).
	clients, err := clientaddr.New(rt.Config.HTTP.TrustedProxies, clientaddr.Header(rt.Config.HTTP.ForwardedHeader))
	if err != nil {
		return fmt.Errorf("http.trusted_proxies: %w", err)
	}
	healthSrv := health.NewServer()
	srvOpts := grpcx.ServerOptions{Logger: rt.Logger, Telemetry: rt.Telemetry, Health: healthSrv, Auth: rt.grpcAuth(services),
		Deadline: rt.Config.Timeouts.Request}
	if rt.Config.GRPC.TLS.Enabled() {
		if srvOpts.TLS, err = grpcx.ServerTLS(grpcTLSFiles(rt.Config)); err != nil {
			return err
		}
	}
	srv := grpcx.NewServer(srvOpts)
	mux := http.NewServeMux()
	sets := map[string]*projection.Set{}
	serveHTTP := false
	for _, s := range services {
		s.RegisterGRPC(srv)
		if h, ok := s.(HTTPService); ok {
			h.RegisterHTTP(mux)
			serveHTTP = true
		}
		if p, ok := s.(ProjectionService); ok {
			sets[s.Name()] = p.Projections()
		}
		healthSrv.SetServingStatus("gatehouse."+s.Name(), healthpb.HealthCheckResponse_SERVING)
	}
	projectionsv1.RegisterProjectionsServiceServer(srv, projection.NewAdmin(sets))
	if err := projection.RegisterMetrics(rt.Telemetry.MeterProvider().Meter("gatehouse.dev/platform/projection"), sets); err != nil {
		return err
	}

	checks := []httpx.Check{{Name: "nats", Fn: func(context.Context) error {
		if st := rt.NATS.Status(); st != nats.CONNECTED {
			return fmt.Errorf("nats connection is %s", st)
		}
		return nil
	}}}
	rt.mu.Lock()
	for i, p := range rt.pools {
		checks = append(checks, httpx.Check{Name: fmt.Sprintf("postgres-%d", i), Fn: p.Ping})
	}
	rt.mu.Unlock()
	if err := rt.registerMetrics(rt.Telemetry.MeterProvider().Meter("gatehouse.dev/platform/host"), checks); err != nil {
		return err
	}
	healthChecks := httpx.NewHealth(checks...)
	ops := httpx.OpsMux(healthChecks, rt.Telemetry.MetricsHandler())
	if rt.Config.Ops.Pprof {
		httpx.Profiler(ops)
		runtime.SetMutexProfileFraction(100) // one contended lock in 100 shows in the mutex profile
	}

	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		errList []error
	)
	run := func(what string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errMu.Lock()
				errList = append(errList, fmt.Errorf("%s: %w", what, err))
				errMu.Unlock()
				cancel() // one part failing stops the process, so an orchestrator restarts it
			}
		})
	}
	for _, s := range services {
		run(s.Name(), s.Run)
	}
	run("grpc", func(ctx context.Context) error { return grpcx.Serve(ctx, srv, rt.Config.GRPC.Addr, rt.Logger) })
	if serveHTTP {
		public := httpx.Public(mux, rt.Telemetry, "public", httpx.Edge{Timeout: rt.Config.Timeouts.Request, MaxBody: maxBody, Context: clients.WithAddr})
		run("http", func(ctx context.Context) error { return httpx.Serve(ctx, rt.Config.HTTP.Addr, public, rt.Logger) })
	}
	run("ops", func(ctx context.Context) error { return httpx.Serve(ctx, rt.Config.Ops.Addr, ops, rt.Logger) })
	healthChecks.SetReady(true)
	go func() { <-ctx.Done(); healthChecks.SetReady(false) }() // draining: take us out of load balancing
	rt.Logger.Info("serving", "grpc", rt.Config.GRPC.Addr, "http", rt.Config.HTTP.Addr, "ops", rt.Config.Ops.Addr, "services", len(services))
	wg.Wait()
	return errors.Join(errList...)
}

// grpcAuth is how the gRPC server authenticates callers: credentials derived
// from the internal secret, the homeserver's secret, client certificates,
// browser sessions verified by the accounts service and administrators'
// bearer tokens verified by the token service (itself, when this process
// hosts it; otherwise called as the first service this process hosts that
// holds a credential — never as the admin API, which holds none).
func (rt *Runtime) grpcAuth(services []Service) *grpcx.Auth {
	auth := &grpcx.Auth{InternalSecret: rt.internalSecret, HomeserverSecret: string(rt.Config.Matrix.Secret)}
	self := ""
	for _, s := range services {
		if s.Name() != config.ServiceAdmin {
			self = s.Name()
			break
		}
	}
	if self == "" {
		return auth
	}
	auth.Sessions = lazyVerifier(rt, self, "accounts", grpcx.AccountsSessions)
	auth.Tokens = lazyVerifier(rt, self, "token", grpcx.TokenServiceTokens)
	for _, s := range services {
		if v, ok := s.(interface {
			VerifyAdminToken(context.Context, string) (*caller.TokenSubject, error)
		}); ok {
			auth.Tokens = v.VerifyAdminToken
		}
	}
	return auth
}

// lazyVerifier returns a verifier that dials its service (from self) on first use.
func lazyVerifier[V ~func(context.Context, string) (R, error), R any](rt *Runtime, self, to string, make func(grpc.ClientConnInterface) V) V {
	var (
		once    sync.Once
		verify  V
		dialErr error
	)
	return func(ctx context.Context, secret string) (R, error) {
		once.Do(func() {
			var conn *grpc.ClientConn
			if conn, dialErr = rt.Dial(self, to); dialErr == nil {
				verify = make(conn)
			}
		})
		if dialErr != nil {
			var zero R
			return zero, dialErr
		}
		return verify(ctx, secret)
	}
}
