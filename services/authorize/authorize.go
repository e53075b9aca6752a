// Package authorize is the authorize service: OAuth 2.0 / OpenID Connect
// discovery, dynamic client registration (RFC 7591 with MSC2966's rules), and
// the authorization endpoint. Clients and authorization grants are aggregates
// in the AUTHORIZE stream; their read models live in the service's schema.
//
// The browser steps (sign in, consent) belong to the web service, which asks
// this service over gRPC for a grant's details and approves or denies it; the
// token service exchanges codes through the same API.
package authorize

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"

	"gatehouse.dev/platform/clientauth"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/host"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/ratelimit"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/telemetry"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/device"
	"gatehouse.dev/services/authorize/migrations"
)

// Schema is the PostgreSQL schema of the service's read models. The
// service's stream is eventsv1.Authorize (AUTHORIZE, subjects authorize.>).
const Schema = "authorize"

// Config is what the service needs to know about the deployment.
type Config struct {
	// Issuer is the public base URL, ending in "/".
	Issuer string
	// EndedSessionRetention is how long a client's ended session stays in
	// the read model of the clients' sessions: as long as TOKEN keeps it; 0,
	// for ever.
	EndedSessionRetention time.Duration
	// EndedClientSessionRetention is the same for a client's own session
	// (client_credentials), which TOKEN drops sooner; 0: as
	// EndedSessionRetention.
	EndedClientSessionRetention time.Duration
	// GrantTTL is how long a person has to sign in and consent.
	GrantTTL time.Duration
	// CodeTTL is how long an authorization code may wait for its exchange (at most 10 minutes).
	CodeTTL time.Duration
	// DeviceTTL is how long a device code and its user code are valid.
	DeviceTTL time.Duration
	// ClientTTL is how long a dynamically registered client is kept until a
	// person approves it for the first time.
	ClientTTL time.Duration
	// Keep is how long a flow's events stay in AUTHORIZE_PENDING after it
	// can no longer complete; negative: none.
	Keep time.Duration
	// PendingMaxBytes caps AUTHORIZE_PENDING.
	PendingMaxBytes int64
	// AllowInsecureClients relaxes the https rules of client registration (development only).
	AllowInsecureClients bool
	// Replicas of the event stream.
	Replicas int
	// StaticClients are registered at start.
	StaticClients []StaticClient
	// SigningAlgorithms are the ID-token signing algorithms discovery announces.
	SigningAlgorithms []string
	// Limits are the rate limits (rate_limits): this service applies
	// ClientRegistration, Authorization and DeviceAuthorization per client
	// address. Zero means the defaults.
	Limits ratelimit.Rules
}

// Deps are the service's connections.
type Deps struct {
	Pool       *pgxpool.Pool
	JetStream  jetstream.JetStream
	Logger     *slog.Logger
	Propagator propagation.TextMapPropagator
	// Telemetry traces and measures the service (its log, projections and
	// reactors); nil: none.
	Telemetry *telemetry.Telemetry
	// Limiter counts the rate limits, shared with every replica; nil counts
	// in this process only.
	Limiter *ratelimit.Limiter
	// Keyring seals the client-secret key the service keeps in its stream.
	Keyring *sealed.Keyring
}

// Service is the authorize service.
type Service struct {
	cfg    Config
	issuer *url.URL
	pool   *pgxpool.Pool
	log    *eventlog.Log
	// pending is AUTHORIZE_PENDING: grants, device grants and clients not
	// approved yet, which expire (pending.go).
	pending     *eventlog.Log
	room        *room
	projections *projection.Set
	logger      *slog.Logger
	now         func() time.Time
	// secretKey derives client secrets (see clientSecret).
	secretKey []byte
	// devicePacer answers slow_down to devices polling too fast (this replica's view).
	devicePacer *device.Pacer
	// clientAuth authenticates the clients of the device authorization endpoint.
	clientAuth *clientauth.Authenticator[*client]
	// limiter counts the anonymous endpoints' rate limits (limits.go).
	limiter *ratelimit.Limiter
}

// New migrates the schema, opens the stream and prepares the projections.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	issuer, err := url.Parse(cfg.Issuer)
	if err != nil || issuer.Scheme == "" || issuer.Host == "" {
		return nil, fmt.Errorf("authorize: issuer %q is not an absolute URL", cfg.Issuer)
	}
	if cfg.GrantTTL <= 0 {
		cfg.GrantTTL = 30 * time.Minute
	}
	if len(cfg.SigningAlgorithms) == 0 {
		cfg.SigningAlgorithms = defaultSigningAlgorithms
	}
	if cfg.CodeTTL <= 0 || cfg.CodeTTL > 10*time.Minute {
		cfg.CodeTTL = 10 * time.Minute
	}
	cfg = cfg.withPendingDefaults()
	if cfg.Limits == (ratelimit.Rules{}) {
		cfg.Limits = ratelimit.DefaultRules()
	}
	if deps.Limiter == nil {
		deps.Limiter = ratelimit.New(ratelimit.Options{Logger: deps.Logger})
	}
	if deps.Keyring == nil {
		return nil, fmt.Errorf("authorize: no keyring to seal the client-secret key")
	}
	if err := pg.Migrate(ctx, deps.Pool, migrations.FS); err != nil {
		return nil, fmt.Errorf("authorize: migrate: %w", err)
	}
	log, err := eventlog.Open(ctx, deps.JetStream, eventlog.StreamOf(eventsv1.Authorize, cfg.Replicas), eventlog.WithPropagator(deps.Propagator), eventlog.WithTelemetry(deps.Telemetry))
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	pending, err := eventlog.Open(ctx, deps.JetStream, cfg.pendingStream(), eventlog.WithPropagator(deps.Propagator), eventlog.WithTelemetry(deps.Telemetry))
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	token, err := eventlog.Follow(deps.JetStream, eventlog.StreamOf(eventsv1.Token, 0), eventlog.WithTelemetry(deps.Telemetry))
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	set, err := projection.NewSet(ctx, deps.Pool, log, deps.Logger,
		clientsReadModel(), pendingClientsReadModel(pending), grantsReadModel(pending, cfg.CodeTTL+cfg.Keep), devicesReadModel(pending, cfg.Keep),
		tokenSessionsReadModel(token))
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	s := &Service{cfg: cfg, issuer: issuer, pool: deps.Pool, log: log, pending: pending, room: newRoom(pending), projections: set,
		logger: deps.Logger, now: time.Now, devicePacer: device.NewPacer(), limiter: deps.Limiter}
	if err := s.loadSecretKey(ctx, deps.Keyring); err != nil {
		return nil, err
	}
	if s.clientAuth, err = s.newClientAuth(); err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	if err := s.syncStaticClients(ctx, cfg.StaticClients); err != nil {
		return nil, err
	}
	return s, nil
}

// FromRuntime builds the service on a host runtime.
func FromRuntime(ctx context.Context, rt *host.Runtime) (*Service, error) {
	pool, err := rt.Pool(ctx, Schema)
	if err != nil {
		return nil, err
	}
	var static []StaticClient
	for _, c := range rt.Config.OAuth.Clients {
		static = append(static, StaticClient{
			ID: c.ClientID, Secret: string(c.ClientSecret), AuthMethod: c.AuthMethod, Name: c.ClientName, URI: c.ClientURI,
			RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes, Scope: c.Scope, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		})
	}
	algs, err := signingAlgorithms(rt.Config.OAuth.SigningKeyFiles)
	if err != nil {
		return nil, err
	}
	limiter, err := rt.Limiter(ctx)
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	p := rt.Config.Pending
	return New(ctx, Config{Issuer: rt.Config.PublicURL, Replicas: rt.Config.NATS.Replicas, StaticClients: static, SigningAlgorithms: algs,
		Limits:   ratelimit.RulesFrom(rt.Config.RateLimits),
		GrantTTL: p.AuthorizationTTL, CodeTTL: p.CodeTTL, DeviceTTL: p.DeviceCodeTTL, ClientTTL: p.ClientTTL, Keep: keepOrNone(p.Keep),
		PendingMaxBytes: p.MaxBytes, EndedSessionRetention: rt.Config.OAuth.EndedTokenSessionsKept(),
		EndedClientSessionRetention: rt.Config.OAuth.EndedClientTokenSessionsKept()},
		Deps{Pool: pool, JetStream: rt.JetStream, Logger: rt.Logger.With("service", "authorize"), Propagator: rt.Telemetry.Propagator(), Telemetry: rt.Telemetry, Limiter: limiter, Keyring: rt.Keyring})
}

// Name is the service's name.
func (s *Service) Name() string { return "authorize" }

// Run keeps the projections current, and drops clients' sessions the TOKEN
// stream no longer keeps, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.sweepTokenSessions(ctx) })
	err := s.projections.Run(ctx)
	wg.Wait()
	return err
}

// Projections is the service's projection set.
func (s *Service) Projections() *projection.Set { return s.projections }

// RegisterGRPC registers gatehouse.authorize.v1.AuthorizeService.
func (s *Service) RegisterGRPC(srv grpc.ServiceRegistrar) {
	authorizev1.RegisterAuthorizeServiceServer(srv, &grpcServer{svc: s})
}

// endpoint is an absolute URL under the issuer.
func (s *Service) endpoint(path string) string {
	return s.issuer.ResolveReference(&url.URL{Path: path}).String()
}
