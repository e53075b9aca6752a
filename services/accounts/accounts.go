// Package accounts is the accounts service: it owns users — registration,
// passwords, email addresses, locking, deactivation, display names, links to
// upstream identity providers (whose protocol it runs itself, upstream.go) —
// their browser sessions, and the audit log.
//
// Commands are decided on the aggregates' histories (users, email claims,
// browser sessions, registrations) and appended to the ACCOUNTS stream;
// queries read the users, user_emails, browser_sessions and audit_entries
// projections, which the service keeps in its own PostgreSQL schema. A
// command returns once its own projection has applied it, so a client reads
// its writes. Email addresses are proved by the notify service's
// confirmations, which the service projects from the NOTIFY stream
// (verifications.go).
package accounts

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"

	"gatehouse.dev/platform/activity"
	"gatehouse.dev/platform/audittrail"
	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/host"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/ratelimit"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/telemetry"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/factors"
	"gatehouse.dev/services/accounts/internal/password"
	"gatehouse.dev/services/accounts/internal/upstream"
	"gatehouse.dev/services/accounts/migrations"
)

// Schema is the PostgreSQL schema holding the service's read models. The
// service's stream is eventsv1.Accounts (ACCOUNTS, subjects accounts.>).
const Schema = "accounts"

// Config is what the service needs to know about the deployment.
type Config struct {
	// ServerName is the Matrix server name; it bounds usernames' length.
	ServerName string
	// Password hashing parameters.
	Passwords password.Params
	// BcryptPepper is Synapse's password pepper, for the bcrypt hashes
	// imported from it (passwords.bcrypt_pepper); empty: none.
	BcryptPepper string
	// Replicas of the event stream in a JetStream cluster.
	Replicas int
	// AuditRetention is how long audit entries are kept, in the AUDIT
	// stream and the audit read model; 0: for ever.
	AuditRetention time.Duration
	// ActivityFlushInterval is how often browser session activity is
	// written; DefaultActivityFlushInterval when zero.
	ActivityFlushInterval time.Duration
	// EndedSessionRetention is how long a browser session stays listed once
	// it can no longer be used (browser_retention.go); 720h when zero.
	EndedSessionRetention time.Duration
	// EndedTokenSessionRetention is how long a user's ended token session
	// stays in the read model of users' sessions: as long as TOKEN keeps it;
	// 0, for ever.
	EndedTokenSessionRetention time.Duration
	// Clock replaces time.Now for events and session lifetimes (tests); nil
	// means time.Now.
	Clock func() time.Time
	// RegistrationTTL is how long a self-service registration waits for its
	// address to be proved (30 minutes when zero); its RegistrationStarted
	// event expires RegistrationKeep (10 minutes when zero, none when
	// negative) after that.
	RegistrationTTL, RegistrationKeep time.Duration
	// PublicURL is Gatehouse's public URL (ending in "/"): upstream
	// providers send the browser back to PublicURL + "upstream/callback/<id>".
	PublicURL string
	// Upstream are the upstream identity providers (upstream.providers).
	Upstream []config.UpstreamProvider
	// ServiceName names the deployment to authenticators (the WebAuthn
	// relying party's name, the TOTP issuer); "Gatehouse" when empty.
	ServiceName string
	// SecondFactor is the server's second-factor policy
	// (account.second_factor); optional when empty.
	SecondFactor factors.Policy
	// StepUpWindow is how recent an authentication a sensitive action
	// needs (account.step_up_window); 5 minutes when zero.
	StepUpWindow time.Duration
	// SecondFactorLimit limits wrong second-factor codes per account
	// (rate_limits.second_factor); the default when zero.
	SecondFactorLimit ratelimit.Rule
}

// Deps are the service's connections.
type Deps struct {
	// Pool connects to the service's own schema (see pg.Connect with Schema).
	Pool      *pgxpool.Pool
	JetStream jetstream.JetStream
	Logger    *slog.Logger
	// Propagator carries trace context into event headers; may be nil.
	Propagator propagation.TextMapPropagator
	// Telemetry traces and measures the service (its log, projections and
	// sign-ins); nil: none.
	Telemetry *telemetry.Telemetry
	// Keyring seals the service's keys and the personal keys.
	Keyring *sealed.Keyring
	// Personal holds the personal keys that seal personal data; nil opens
	// one on JetStream with Keyring.
	Personal *personal.Store
	// HTTPClient calls the upstream identity providers; nil: a client with
	// a 10-second timeout.
	HTTPClient *http.Client
	// Limiter counts the rate limits (shared by replicas); nil counts in
	// this process only.
	Limiter *ratelimit.Limiter
}

// Service is the accounts service.
type Service struct {
	cfg         Config
	pool        *pgxpool.Pool
	log         *eventlog.Log
	notify      *eventlog.Log // the notify service's stream, followed (verifications.go)
	auditLog    *eventlog.Log // the AUDIT stream, of which the service writes audit.accounts.* (audit_stream.go)
	projections *projection.Set
	hasher      *password.Hasher
	logger      *slog.Logger
	clock       func() time.Time
	activity    *activity.Recorder
	flushEvery  time.Duration
	keyring     *sealed.Keyring // seals the service's keys
	personal    *personal.Store // seals personal data and password hashes (personal.go, passwords.go)
	proofKey    []byte          // MACs authentication proofs (proofs.go)
	claimKey    []byte          // keys email claims (personal.go)
	upstream    *upstream.Set   // the upstream identity providers (upstream.go)
	ticketKey   []byte          // seals upstream tickets, derived from proofKey
	measures    *measures       // counts sign-ins and registrations (metrics.go)
	webauthn    *webauthn.WebAuthn
	recoveryKey []byte // keys recovery codes' hashes, derived from claimKey (factors.go)
	ceremonyKey []byte // seals WebAuthn ceremonies and TOTP enrolments, derived from proofKey
	limiter     *ratelimit.Limiter
}

// New migrates the service's schema, opens its stream and prepares its projections.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	if cfg.ServerName == "" {
		return nil, fmt.Errorf("accounts: server name is required")
	}
	if err := cfg.Passwords.Validate(); err != nil {
		return nil, fmt.Errorf("accounts: password hashing parameters: %w", err)
	}
	if deps.Keyring == nil {
		return nil, fmt.Errorf("accounts: no keyring to seal password hashes")
	}
	if len(cfg.Upstream) > 0 && !strings.HasSuffix(cfg.PublicURL, "/") {
		return nil, fmt.Errorf("accounts: the public URL %q must end in / (upstream providers send people back there)", cfg.PublicURL)
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = "Gatehouse"
	}
	if cfg.SecondFactor == "" {
		cfg.SecondFactor = factors.Optional
	}
	if cfg.StepUpWindow <= 0 {
		cfg.StepUpWindow = 5 * time.Minute
	}
	if cfg.SecondFactorLimit == (ratelimit.Rule{}) {
		cfg.SecondFactorLimit = ratelimit.DefaultRules().SecondFactor
	}
	if deps.Limiter == nil {
		deps.Limiter = ratelimit.New(ratelimit.Options{Logger: deps.Logger})
	}
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = "http://localhost/"
	}
	wa, err := newWebAuthn(publicURL, cfg.ServiceName)
	if err != nil {
		return nil, err
	}
	providers, err := upstream.New(cfg.Upstream, cfg.PublicURL, deps.HTTPClient)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	if err := pg.Migrate(ctx, deps.Pool, migrations.FS); err != nil {
		return nil, fmt.Errorf("accounts: migrate: %w", err)
	}
	opts := []eventlog.Option{eventlog.WithPropagator(deps.Propagator), eventlog.WithTelemetry(deps.Telemetry)}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	} else {
		opts = append(opts, eventlog.WithClock(clock))
	}
	flushEvery := cfg.ActivityFlushInterval
	if flushEvery <= 0 {
		flushEvery = DefaultActivityFlushInterval
	}
	log, err := eventlog.Open(ctx, deps.JetStream, eventlog.StreamOf(eventsv1.Accounts, cfg.Replicas), opts...)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	notify, err := eventlog.Follow(deps.JetStream, eventlog.StreamOf(eventsv1.NotifyPending, 0), eventlog.WithTelemetry(deps.Telemetry))
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	token, err := eventlog.Follow(deps.JetStream, eventlog.StreamOf(eventsv1.Token, 0), eventlog.WithTelemetry(deps.Telemetry))
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	auditLog, err := audittrail.Open(ctx, deps.JetStream, cfg.Replicas, cfg.AuditRetention, opts...)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	store := deps.Personal
	if store == nil {
		if store, err = personal.Open(ctx, deps.JetStream, deps.Keyring, personal.Config{Replicas: cfg.Replicas}); err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
	}
	s := &Service{
		cfg:        cfg,
		pool:       deps.Pool,
		log:        log,
		notify:     notify,
		auditLog:   auditLog,
		hasher:     password.New(cfg.Passwords).WithBcryptPepper(cfg.BcryptPepper),
		logger:     deps.Logger,
		clock:      clock,
		activity:   activity.New(),
		flushEvery: flushEvery,
		keyring:    deps.Keyring,
		personal:   store,
		upstream:   providers,
		webauthn:   wa,
		limiter:    deps.Limiter,
	}
	if err := s.loadProofKey(ctx); err != nil {
		return nil, err
	}
	if s.measures, err = newMeasures(deps.Telemetry); err != nil {
		return nil, err
	}
	if err := s.loadClaimKey(ctx); err != nil {
		return nil, err
	}
	s.projections, err = projection.NewSet(ctx, deps.Pool, log, deps.Logger,
		s.usersReadModel(), s.auditReactor(), s.auditReadModel(), s.sessionsReadModel(), regTokensReadModel(), s.verificationsReadModel(notify),
		s.passkeysReadModel(), s.erasureReactor(), tokenSessionsReadModel(token))
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	if err := s.deriveTicketKey(); err != nil {
		return nil, err
	}
	if err := s.deriveFactorKeys(); err != nil {
		return nil, err
	}
	return s, nil
}

// Run keeps the projections current and writes browser session activity
// until ctx ends; then it writes the activity noted since the last flush. At
// start it brings older data up to date (upgrade.go): personal keys sealed
// under an earlier key-encryption key, users without a personal key, password
// hashes not sealed under their user's personal key, email claims keyed the
// way earlier versions did.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.runActivity(ctx) })
	wg.Go(func() { s.sweepBrowserSessions(ctx) })
	wg.Go(func() { s.sweepTokenSessions(ctx) })
	wg.Go(func() { s.calibratePasswords(ctx) })
	if s.cfg.AuditRetention > 0 {
		wg.Go(func() { audittrail.Sweep(ctx, s.pool, "audit_entries", s.auditRetention(), s.logger) })
	}
	wg.Go(func() {
		if err := s.upgrade(ctx); err != nil && ctx.Err() == nil {
			s.logger.ErrorContext(ctx, "bringing personal data up to date failed; it is tried again at the next start", "err", err)
		}
	})
	err := s.projections.Run(ctx)
	wg.Wait()
	return err
}

// Projections is the service's projection set (for the projections admin API).
func (s *Service) Projections() *projection.Set { return s.projections }

// RegisterGRPC registers gatehouse.accounts.v1.AccountsService on srv.
func (s *Service) RegisterGRPC(srv grpc.ServiceRegistrar) {
	accountsv1.RegisterAccountsServiceServer(srv, &grpcServer{svc: s})
}

// Name is the service's name.
func (s *Service) Name() string { return "accounts" }

// FromRuntime builds the service on a host runtime, from the deployment's configuration.
func FromRuntime(ctx context.Context, rt *host.Runtime) (*Service, error) {
	pool, err := rt.Pool(ctx, Schema)
	if err != nil {
		return nil, err
	}
	store, err := rt.Personal(ctx)
	if err != nil {
		return nil, err
	}
	a := rt.Config.Passwords.Argon2
	limiter, err := rt.Limiter(ctx)
	if err != nil {
		return nil, err
	}
	return New(ctx, Config{
		ServiceName:           rt.Config.Branding.ServiceName,
		SecondFactor:          factors.Policy(rt.Config.Account.SecondFactor),
		StepUpWindow:          rt.Config.Account.StepUpWindow,
		SecondFactorLimit:     ratelimit.RulesFrom(rt.Config.RateLimits).SecondFactor,
		ServerName:            rt.Config.Matrix.ServerName,
		Passwords:             password.Params{MemoryKiB: uint32(a.MemoryKiB), Iterations: uint32(a.Iterations), Parallelism: uint8(a.Parallelism)},
		BcryptPepper:          string(rt.Config.Passwords.BcryptPepper),
		Replicas:              rt.Config.NATS.Replicas,
		AuditRetention:        rt.Config.Audit.Retention,
		PublicURL:             rt.Config.PublicURL,
		Upstream:              rt.Config.Upstream.Providers,
		EndedSessionRetention: rt.Config.OAuth.EndedSessionRetention, EndedTokenSessionRetention: rt.Config.OAuth.EndedTokenSessionsKept(),
	}, Deps{Pool: pool, JetStream: rt.JetStream, Logger: rt.Logger.With("service", "accounts"), Propagator: rt.Telemetry.Propagator(), Telemetry: rt.Telemetry, Keyring: rt.Keyring, Personal: store, Limiter: limiter})
}
