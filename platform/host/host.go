// Package host runs Gatehouse services in a process: it connects (or starts)
// NATS and PostgreSQL, sets up logging and telemetry, and serves the services'
// gRPC APIs, public HTTP routes, health and metrics until the context ends.
//
// The all-in-one `gatehouse serve` and every per-service binary use it the
// same way, so a service behaves identically whether it runs alone or with
// the others.
package host

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"

	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/grpcx"
	"gatehouse.dev/platform/natsserver"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/pgcluster"
	"gatehouse.dev/platform/ratelimit"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/secretfile"
	"gatehouse.dev/platform/telemetry"
)

// Runtime is the infrastructure a process's services share.
type Runtime struct {
	Config    config.Config
	Logger    *slog.Logger
	Telemetry *telemetry.Telemetry
	NATS      *nats.Conn
	JetStream jetstream.JetStream
	// Keyring seals the secrets kept in events; nil in a process that runs
	// only the web service, which keeps none.
	Keyring *sealed.Keyring

	stopGC context.CancelFunc // ends adaptGC

	dbURL   string
	natsSrv *natsserver.Server
	cluster *pgcluster.Cluster

	// internalSecret derives the gRPC credentials of services and the admin
	// CLI: configured, or generated under the data dir on a single machine.
	internalSecret []byte
	// clientTLS, when gRPC runs over TLS, is how calls to services connect.
	clientTLS *tls.Config

	mu    sync.Mutex
	pools []*pgxpool.Pool
	conns map[[2]string]*grpc.ClientConn

	limiterOnce sync.Once
	limiter     *ratelimit.Limiter
	limiterErr  error

	personalOnce sync.Once
	personal     *personal.Store
	personalErr  error
}

// Start prepares the runtime: embedded NATS JetStream under the data dir when
// no NATS URL is configured, a private PostgreSQL cluster under the data dir
// when no database URL is configured.
func Start(ctx context.Context, cfg config.Config, name string, logger *slog.Logger) (_ *Runtime, err error) {
	rt := &Runtime{Config: cfg, Logger: logger, conns: map[[2]string]*grpc.ClientConn{}}
	gcCtx, stopGC := context.WithCancel(context.WithoutCancel(ctx))
	rt.stopGC = stopGC
	if base, managed := tuneGC(cfg.Ops.GCPercent, os.LookupEnv, logger); managed {
		go adaptGC(gcCtx, base, cfg.Ops.GCHeadroomMiB, logger)
	}
	defer func() {
		if err != nil {
			rt.Close(context.WithoutCancel(ctx))
		}
	}()
	headers, err := config.ParseHeaders(string(cfg.Telemetry.OTLP.Headers))
	if err != nil {
		return nil, fmt.Errorf("telemetry.otlp.headers: %w", err)
	}
	o := cfg.Telemetry.OTLP
	rt.Telemetry, err = telemetry.Setup(ctx, telemetry.Options{
		ServiceName: name, Traces: cfg.Telemetry.Traces, SampleRatio: cfg.Telemetry.SampleRatio, Logger: logger,
		Metrics: cfg.Telemetry.Metrics,
		OTLP: telemetry.OTLP{Endpoint: o.Endpoint, Protocol: o.Protocol, Headers: headers, Insecure: o.Insecure,
			CAFile: o.CAFile, MetricsInterval: o.MetricsInterval},
	})
	if err != nil {
		return nil, err
	}

	// The data dir must be traversable (not listable) by other users: a private
	// PostgreSQL cluster under it runs as an unprivileged user when we are root.
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if rt.internalSecret, err = InternalSecret(cfg); err != nil {
		return nil, err
	}
	if cfg.GRPC.TLS.Enabled() {
		if rt.clientTLS, err = grpcx.ClientTLS(grpcTLSFiles(cfg)); err != nil {
			return nil, err
		}
	}
	if cfg.SealsSecrets() {
		if rt.Keyring, err = openKeyring(cfg, logger); err != nil {
			return nil, err
		}
	}
	target, err := startNATS(cfg, logger)
	if err != nil {
		return nil, err
	}
	rt.natsSrv = target.srv
	opts := append(target.opts, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second))
	opts = append(opts, eventlog.ConnOptions()...)
	if target.srv != nil {
		// The process's own connection to its embedded server goes without a
		// socket (authenticated all the same): two system calls fewer per
		// publish and per delivery, on every hot path (issue 16).
		opts = append(opts, nats.InProcessServer(target.srv))
	}
	rt.NATS, err = nats.Connect(target.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	rt.JetStream, err = jetstream.New(rt.NATS)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}

	rt.dbURL = cfg.Database.URL
	if rt.dbURL == "" {
		dir, err := filepath.Abs(filepath.Join(cfg.DataDir, "postgres"))
		if err != nil {
			return nil, err
		}
		rt.cluster, err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Logger: logger})
		if err != nil {
			return nil, err
		}
		if err := pg.CreateDatabase(ctx, rt.cluster.URL("postgres"), "gatehouse"); err != nil {
			return nil, err
		}
		rt.dbURL = rt.cluster.URL("gatehouse")
		logger.Info("private PostgreSQL cluster started", "dir", dir)
	}
	return rt, nil
}

// Pool connects to the database with search_path set to a service's schema.
func (rt *Runtime) Pool(ctx context.Context, schema string) (*pgxpool.Pool, error) {
	pool, err := pg.Connect(ctx, rt.dbURL, schema)
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	rt.pools = append(rt.pools, pool)
	rt.mu.Unlock()
	return pool, nil
}

// Dial returns a client connection from one service (the caller, whose
// credential authenticates every call) to another, at the endpoint the
// configuration names for it (this process's own gRPC address by default).
func (rt *Runtime) Dial(from, to string) (*grpc.ClientConn, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	key := [2]string{from, to}
	if c, ok := rt.conns[key]; ok {
		return c, nil
	}
	cred, err := grpcx.ServiceCredential(rt.internalSecret, from)
	if err != nil {
		return nil, err
	}
	c, err := grpcx.Dial(rt.Config.Endpoint(to), grpcx.DialOptions{Telemetry: rt.Telemetry, Credential: cred, TLS: rt.clientTLS})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", to, err)
	}
	rt.conns[key] = c
	return c, nil
}

// DialForwarding returns a client connection to a service for a caller
// that holds no credential of its own: every call carries the credential its
// context's outgoing metadata gives (the admin API forwards the bearer token
// it was given, grpcx.WithBearer). It is over TLS when gRPC is, without a
// client certificate naming a caller.
func (rt *Runtime) DialForwarding(to string) (*grpc.ClientConn, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	key := [2]string{"", to}
	if c, ok := rt.conns[key]; ok {
		return c, nil
	}
	var tlsCfg *tls.Config
	if rt.clientTLS != nil {
		tlsCfg = rt.clientTLS.Clone()
		tlsCfg.Certificates, tlsCfg.GetClientCertificate = nil, nil // no identity of its own
	}
	c, err := grpcx.Dial(rt.Config.Endpoint(to), grpcx.DialOptions{Telemetry: rt.Telemetry, TLS: tlsCfg})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", to, err)
	}
	rt.conns[key] = c
	return c, nil
}

// Limiter returns the process's rate limiter, whose counts every replica
// shares through the RATELIMITS stream (opened on first use); every service
// of the process uses this one. Its rules come from ratelimit.RulesFrom of
// the configuration's rate_limits.
func (rt *Runtime) Limiter(ctx context.Context) (*ratelimit.Limiter, error) {
	rt.limiterOnce.Do(func() {
		store, err := ratelimit.OpenStore(ctx, rt.JetStream, ratelimit.StoreConfig{Replicas: rt.Config.NATS.Replicas})
		if err != nil {
			rt.limiterErr = err
			return
		}
		rt.limiter = ratelimit.New(ratelimit.Options{Store: store, Logger: rt.Logger, HashKey: rt.rateLimitHashKey(),
			Meter: rt.Telemetry.MeterProvider().Meter("gatehouse.dev/platform/ratelimit"), Rules: ratelimit.RulesFrom(rt.Config.RateLimits).All()})
	})
	return rt.limiter, rt.limiterErr
}

// Personal returns the process's store of personal keys (the PERSONALKEYS
// stream, opened on first use), which every service of the process that
// seals personal data shares, so that an erasure forgets the erased key in
// all of them at once. It needs the keyring: not in a process running only web.
func (rt *Runtime) Personal(ctx context.Context) (*personal.Store, error) {
	rt.personalOnce.Do(func() {
		rt.personal, rt.personalErr = personal.Open(ctx, rt.JetStream, rt.Keyring, personal.Config{Replicas: rt.Config.NATS.Replicas})
	})
	return rt.personal, rt.personalErr
}

// rateLimitHashKey keys the names of rate-limit counts in RATELIMITS (client
// addresses, accounts): derived with HKDF from the internal secret, which
// every process of a deployment shares (the web service included, which has
// no key-encryption key). Nil in a deployment that identifies its services
// by mutual TLS alone: the names are then plain SHA-256.
func (rt *Runtime) rateLimitHashKey() []byte {
	if len(rt.internalSecret) == 0 {
		return nil
	}
	key, err := hkdf.Key(sha256.New, rt.internalSecret, nil, "gatehouse ratelimit names v1", 32)
	if err != nil {
		return nil
	}
	return key
}

// InternalSecret returns the secret the gRPC credentials of services and of
// the admin CLI are derived from: internal.secret, or else the one generated
// under data_dir/secrets on first start of a single-machine deployment.
func InternalSecret(cfg config.Config) ([]byte, error) {
	if s := cfg.Internal.Secret; s != "" {
		return []byte(s), nil
	}
	if cfg.Split() {
		return nil, nil // validated: mutual TLS identifies the services
	}
	secret, err := secretfile.LoadOrCreate(InternalSecretPath(cfg), 32)
	if err != nil {
		return nil, fmt.Errorf("internal secret: %w", err)
	}
	return secret, nil
}

// InternalSecretPath is where a single-machine deployment keeps the internal
// secret it generated.
func InternalSecretPath(cfg config.Config) string {
	return filepath.Join(cfg.DataDir, "secrets", "internal")
}

// grpcTLSFiles are the configured gRPC TLS files.
func grpcTLSFiles(cfg config.Config) grpcx.TLSFiles {
	t := cfg.GRPC.TLS
	return grpcx.TLSFiles{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile}
}

// Close releases everything in reverse order of start.
func (rt *Runtime) Close(ctx context.Context) error {
	var errs []error
	rt.stopGC()
	rt.mu.Lock()
	for _, c := range rt.conns {
		c.Close()
	}
	for _, p := range rt.pools {
		p.Close()
	}
	rt.mu.Unlock()
	if rt.cluster != nil {
		errs = append(errs, rt.cluster.Stop(ctx))
	}
	if rt.NATS != nil {
		rt.NATS.Close()
	}
	if rt.natsSrv != nil {
		rt.natsSrv.Shutdown()
	}
	if rt.Telemetry != nil {
		errs = append(errs, rt.Telemetry.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
