// Package token is the token service: the token endpoint (its grants in
// grants.go, one file each), introspection for homeservers (HTTP and gRPC),
// revocation, userinfo, the JSON Web Key Set and the Matrix compatibility
// login API.
//
// Sessions are aggregates in the TOKEN stream: a session starts with its first
// tokens, rotates its refresh token on every use and ends. Tokens are opaque,
// prefixed and carry a MAC, and are stored only as SHA-256 hashes.
// Introspection answers from memory: every replica follows the stream, so a
// session ended anywhere stops working everywhere at once.
package token

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/activity"
	"gatehouse.dev/platform/audittrail"
	"gatehouse.dev/platform/clientauth"
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
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/keys"
	"gatehouse.dev/services/token/internal/provision"
	"gatehouse.dev/services/token/internal/tokenfmt"
	"gatehouse.dev/services/token/migrations"
)

// Schema is the PostgreSQL schema of the service's read models. The
// service's stream is eventsv1.Token (TOKEN, subjects token.>); it follows
// eventsv1.Accounts (ACCOUNTS) read-only for the users' locks, deactivations
// and password resets, and for homeserver provisioning.
const Schema = "token"

// sessionRef is the aggregate of one session.
func sessionRef(id string) eventlog.Ref {
	return eventlog.Ref{Type: eventsv1.TokenSession.Type, ID: id}
}

// Config is what the service needs to know about the deployment.
type Config struct {
	// Issuer is the public base URL, ending in "/".
	Issuer string
	// AccessTTL is the lifetime of access tokens (default 5 minutes).
	AccessTTL time.Duration
	// RefreshReuseGrace is how long after a rotation the rotated-out refresh
	// token is refused without ending the session (a concurrent refresh);
	// after that, its use is a replay and ends the session.
	RefreshReuseGrace time.Duration
	// StepUpWindow is how recent the person's authentication must be for a
	// cross-signing reset (account.step_up_window); zero: no such check.
	StepUpWindow time.Duration
	// MatrixSecret lets the homeserver introspect with "Authorization: Bearer <secret>".
	MatrixSecret string
	// HomeserverURL is where the homeserver's /_synapse/mas/ API is; with
	// MatrixSecret it switches homeserver provisioning on (internal/provision).
	HomeserverURL string
	// ServerName is the homeserver's server name, as in @localpart:server_name
	// (the Matrix compatibility login API).
	ServerName string
	// Replicas of the event stream.
	Replicas int
	// SigningKeys, when set, sign ID tokens instead of the generated keys,
	// which stay published for an hour so tokens they signed still verify.
	SigningKeys *keys.Keyset
	// ActivityFlushInterval is how often session activity (introspections,
	// refreshes) is written; DefaultActivityFlushInterval when zero.
	ActivityFlushInterval time.Duration
	// AdminClients are the clients the client_credentials grant may give
	// admin scopes (urn:synapse:admin:*, urn:mas:admin, urn:gatehouse:admin).
	AdminClients []string
	// CompatAdminScope lets the compat sessions of administrators carry
	// urn:synapse:admin:* (off by default, as in MAS).
	CompatAdminScope bool
	// Limits are the rate limits (rate_limits); the compat password login
	// applies the sign-in ones. Zero means the defaults.
	Limits ratelimit.Rules
	// CompactSessions makes the TOKEN stream keep only the last event of
	// each session, and ended sessions expire (compaction.go).
	CompactSessions bool
	// EndedSessionRetention is how long an ended session stays when
	// compacting; config.DefaultEndedSessionRetention when zero.
	EndedSessionRetention time.Duration
	// AuditRetention is how long audit entries are kept, in the AUDIT
	// stream and the audit read model; 0: for ever.
	AuditRetention time.Duration
	// ActivityRetention is how long an activity batch is kept (a message
	// TTL); idle sessions' activity is folded into their own events before
	// (activity_fold.go). DefaultActivityRetention when zero.
	ActivityRetention time.Duration
	// InactiveSessionExpiry ends a person's OAuth or compat session unused
	// for that long (expiry.go); 0: never.
	InactiveSessionExpiry time.Duration
}

// Deps are the service's connections.
type Deps struct {
	Pool       *pgxpool.Pool
	JetStream  jetstream.JetStream
	Logger     *slog.Logger
	Propagator propagation.TextMapPropagator
	Authorize  authorizev1.AuthorizeServiceClient
	Accounts   accountsv1.AccountsServiceClient
	// Limiter counts the rate limits, shared with every replica; nil counts
	// in this process only.
	Limiter *ratelimit.Limiter
	// Keyring seals the keys the service keeps in its stream.
	Keyring *sealed.Keyring
	// Personal holds the personal keys that seal the addresses and user
	// agents of users' sessions; nil opens one on JetStream with Keyring.
	Personal *personal.Store
	// Telemetry traces and measures the service (its log, projections,
	// reactors, grants and introspections); nil: none.
	Telemetry *telemetry.Telemetry
}

// Service is the token service.
type Service struct {
	cfg         Config
	issuer      *url.URL
	pool        *pgxpool.Pool
	log         *eventlog.Log
	accountsLog *eventlog.Log // the accounts service's stream, followed read-only
	auditLog    *eventlog.Log // the AUDIT stream, of which the service writes audit.token.*
	projections *projection.Set
	index       *index
	keys        *keys.Keyset
	minter      *tokenfmt.Minter
	authorize   authorizev1.AuthorizeServiceClient
	accounts    accountsv1.AccountsServiceClient
	clients     *clientCache
	clientAuth  *clientauth.Authenticator[*client] // clients.go
	compat      compatState                        // the Matrix compatibility login API (compat.go)
	activity    *activity.Recorder                 // session use not yet written (activity.go)
	personal    *personal.Store                    // seals sessions' addresses and user agents
	logger      *slog.Logger
	now         func() time.Time

	// measures count grants, refresh token reuse and introspections (metrics.go).
	measures *measures
	// provisioner keeps the homeserver in step; nil when that is off
	// (internal/provision, homeserver.go).
	provisioner *provision.Provisioner
}

// New migrates the schema, opens the stream, loads (or generates, on first
// start) the signing keys and prepares the projections.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	issuer, err := url.Parse(cfg.Issuer)
	if err != nil || issuer.Scheme == "" || issuer.Host == "" {
		return nil, fmt.Errorf("token: issuer %q is not an absolute URL", cfg.Issuer)
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 5 * time.Minute
	}
	if cfg.ActivityFlushInterval <= 0 {
		cfg.ActivityFlushInterval = DefaultActivityFlushInterval
	}
	if cfg.EndedSessionRetention <= 0 {
		cfg.EndedSessionRetention = config.DefaultEndedSessionRetention
	}
	if cfg.ActivityRetention <= 0 {
		cfg.ActivityRetention = DefaultActivityRetention
	}
	if cfg.Limits == (ratelimit.Rules{}) {
		cfg.Limits = ratelimit.DefaultRules()
	}
	if deps.Limiter == nil {
		deps.Limiter = ratelimit.New(ratelimit.Options{Logger: deps.Logger})
	}
	if deps.Keyring == nil {
		return nil, fmt.Errorf("token: no keyring to seal the service's keys")
	}
	if err := pg.Migrate(ctx, deps.Pool, migrations.FS); err != nil {
		return nil, fmt.Errorf("token: migrate: %w", err)
	}
	if deps.Personal == nil {
		if deps.Personal, err = personal.Open(ctx, deps.JetStream, deps.Keyring, personal.Config{Replicas: cfg.Replicas}); err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
	}
	log, err := openTokenLog(ctx, cfg, deps.JetStream, deps.Personal, deps.Pool, deps.Logger, eventlog.WithPropagator(deps.Propagator), eventlog.WithTelemetry(deps.Telemetry))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	accountsLog, err := eventlog.Follow(deps.JetStream, eventlog.StreamOf(eventsv1.Accounts, 0), eventlog.WithTelemetry(deps.Telemetry))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	auditLog, err := audittrail.Open(ctx, deps.JetStream, cfg.Replicas, cfg.AuditRetention, eventlog.WithPropagator(deps.Propagator), eventlog.WithTelemetry(deps.Telemetry))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	s := &Service{personal: deps.Personal,
		cfg: cfg, issuer: issuer, pool: deps.Pool, log: log, accountsLog: accountsLog, auditLog: auditLog,
		index: newIndex(deps.Pool, log, accountsLog, deps.Logger), activity: activity.New(),
		authorize: deps.Authorize, accounts: deps.Accounts, logger: deps.Logger, now: time.Now,
		compat: compatState{limiter: deps.Limiter},
	}
	s.clients = newClientCache(deps.Authorize)
	if s.clientAuth, err = s.newClientAuth(); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if err := s.loadKeys(ctx, deps.Keyring); err != nil {
		return nil, err
	}
	if s.measures, err = newMeasures(deps.Telemetry); err != nil {
		return nil, err
	}
	if err := s.measures.observeExpiryBacklog(deps.Pool, func() time.Time { return s.now() }); err != nil {
		return nil, err
	}
	if s.provisioner, err = s.newProvisioner(cfg); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	members := append([]projection.Member{s.sessionsReadModel(), s.auditReactor(), s.auditReadModel(), userBlocksReadModel(accountsLog), s.accountChangesReactor(), s.browserLogoutsReactor()},
		s.provisioner.Reactors()...)
	if s.projections, err = projection.NewSet(ctx, deps.Pool, log, deps.Logger, members...); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if cfg.SigningKeys != nil {
		s.keys = s.keys.Rotate(cfg.SigningKeys, s.now().Add(time.Hour))
	}
	return s, nil
}

// keysRef is the aggregate holding the service's keys.
var keysRef = eventlog.Ref{Type: eventsv1.TokenKeys.Type, ID: "current"}

// Names of the secrets of the keys aggregate.
const (
	privateJWKSName = "private_jwks"
	macKeyName      = "token_mac_key"
)

// retireClearKeysFor is how long signing keys that an earlier version kept in
// clear stay published after new keys replace them.
const retireClearKeysFor = time.Hour

// loadKeys reads the keys from the stream, sealed with the keyring,
// generating them on first start (see sealed.KeysAggregate). Signing keys an
// earlier version kept in clear are replaced by new ones (published for
// another hour, so ID tokens they signed still verify); the MAC key is kept,
// sealed, since replacing it would end every session: its secrecy only spares
// lookups of forged or mistyped tokens, which are found by their hash.
func (s *Service) loadKeys(ctx context.Context, ring *sealed.Keyring) error {
	secrets, err := sealed.KeysAggregate{
		Log: s.log, Ref: keysRef, Keyring: ring, Logger: s.logger,
		Generate: func() (sealed.Secrets, error) {
			ks, err := keys.Generate("RS256", "ES256")
			if err != nil {
				return nil, err
			}
			private, err := ks.MarshalPrivate()
			if err != nil {
				return nil, err
			}
			mac := make([]byte, 32)
			rand.Read(mac) // never fails (Go 1.24+)
			s.logger.Info("generated signing keys", "algorithms", ks.Algorithms())
			return sealed.Secrets{privateJWKSName: private, macKeyName: mac}, nil
		},
		Event: func(sealedKeys map[string]*eventsv1.SealedSecret, change eventsv1.SecretChange) proto.Message {
			return &eventsv1.SigningKeysGenerated{
				SealedPrivateJwks: sealedKeys[privateJWKSName], SealedTokenMacKey: sealedKeys[macKeyName], Change: change,
			}
		},
		Read: func(m proto.Message) (sealed.Record, bool) {
			ev, ok := m.(*eventsv1.SigningKeysGenerated)
			switch {
			case !ok:
				return sealed.Record{}, false
			case ev.GetSealedPrivateJwks() == nil:
				return sealed.Record{Clear: sealed.Secrets{privateJWKSName: ev.GetPrivateJwks(), macKeyName: ev.GetTokenMacKey()}}, true
			}
			return sealed.Record{Sealed: map[string]*eventsv1.SealedSecret{
				privateJWKSName: ev.GetSealedPrivateJwks(), macKeyName: ev.GetSealedTokenMacKey(),
			}}, true
		},
		Replace: func(clear sealed.Secrets) (sealed.Secrets, error) {
			old, err := keys.UnmarshalPrivate(clear[privateJWKSName])
			if err != nil {
				return nil, fmt.Errorf("stored keys: %w", err)
			}
			fresh, err := keys.Generate("RS256", "ES256")
			if err != nil {
				return nil, err
			}
			private, err := old.Rotate(fresh, s.now().Add(retireClearKeysFor)).MarshalPrivate()
			if err != nil {
				return nil, err
			}
			return sealed.Secrets{privateJWKSName: private, macKeyName: clear[macKeyName]}, nil
		},
	}.Load(ctx)
	if err != nil {
		return fmt.Errorf("token: keys: %w", err)
	}
	if s.keys, err = keys.UnmarshalPrivate(secrets[privateJWKSName]); err != nil {
		return fmt.Errorf("token: stored keys: %w", err)
	}
	if s.minter, err = tokenfmt.NewMinter([][]byte{secrets[macKeyName]}); err != nil {
		return fmt.Errorf("token: stored MAC key: %w", err)
	}
	return nil
}

// FromRuntime builds the service on a host runtime.
func FromRuntime(ctx context.Context, rt *host.Runtime) (*Service, error) {
	pool, err := rt.Pool(ctx, Schema)
	if err != nil {
		return nil, err
	}
	authConn, err := rt.Dial("token", "authorize")
	if err != nil {
		return nil, err
	}
	accConn, err := rt.Dial("token", "accounts")
	if err != nil {
		return nil, err
	}
	cfg := Config{Issuer: rt.Config.PublicURL, MatrixSecret: string(rt.Config.Matrix.Secret), HomeserverURL: rt.Config.Matrix.HomeserverURL, ServerName: rt.Config.Matrix.ServerName, Replicas: rt.Config.NATS.Replicas,
		AccessTTL: rt.Config.OAuth.AccessTokenTTL, RefreshReuseGrace: rt.Config.OAuth.RefreshReuseGrace,
		StepUpWindow:          rt.Config.Account.StepUpWindow,
		ActivityFlushInterval: rt.Config.OAuth.ActivityFlushInterval, Limits: ratelimit.RulesFrom(rt.Config.RateLimits),
		AdminClients: rt.Config.OAuth.AdminClients, CompatAdminScope: rt.Config.Matrix.CompatAdminScope,
		CompactSessions: rt.Config.OAuth.CompactSessions, EndedSessionRetention: rt.Config.OAuth.EndedSessionRetention,
		AuditRetention: rt.Config.Audit.Retention, ActivityRetention: rt.Config.OAuth.ActivityRetention,
		InactiveSessionExpiry: rt.Config.OAuth.InactiveSessionExpiry}
	if files := rt.Config.OAuth.SigningKeyFiles; len(files) > 0 {
		var pems [][]byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("token: signing key: %w", err)
			}
			pems = append(pems, b)
		}
		if cfg.SigningKeys, err = keys.LoadPEM(pems); err != nil {
			return nil, fmt.Errorf("token: signing keys: %w", err)
		}
	}
	limiter, err := rt.Limiter(ctx)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	store, err := rt.Personal(ctx)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return New(ctx, cfg,
		Deps{Limiter: limiter,
			Pool: pool, JetStream: rt.JetStream, Logger: rt.Logger.With("service", "token"), Propagator: rt.Telemetry.Propagator(), Telemetry: rt.Telemetry,
			Authorize: authorizev1.NewAuthorizeServiceClient(authConn), Accounts: accountsv1.NewAccountsServiceClient(accConn),
			Keyring: rt.Keyring, Personal: store,
		})
}

// Name is the service's name.
func (s *Service) Name() string { return "token" }

// Run keeps the projections, the reactors (homeserver provisioning, sessions
// ended by account changes) and the introspection index current, writes
// session activity and ends the sessions nothing can use any more until ctx
// ends (then once more). The sweeps that load and append per session run on
// one replica at a time (pg.Alone): replicas started together would each
// do all of the work at the same moments.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.projections.Run(ctx) })
	wg.Go(func() { s.index.run(ctx) })
	wg.Go(func() { s.runActivity(ctx) })
	wg.Go(func() {
		pg.Every(ctx, foldEvery, s.logger, "folded the activity of idle sessions into their own events", pg.Alone(s.pool, "fold-activity", s.atNow(s.foldActivity)))
	})
	wg.Go(func() {
		pg.Every(ctx, expireEvery, s.logger, "ended the sessions whose tokens have all expired", pg.Alone(s.pool, "expire-sessions", s.atNow(s.expireSessions)))
	})
	if s.cfg.InactiveSessionExpiry > 0 {
		wg.Go(func() {
			pg.Every(ctx, inactiveEvery, s.logger, "ended the sessions unused for too long", pg.Alone(s.pool, "expire-inactive", s.atNow(s.expireInactive)))
		})
	}
	if s.cfg.CompactSessions {
		wg.Go(func() { s.sweepEnded(ctx) })
	}
	if s.cfg.AuditRetention > 0 {
		wg.Go(func() { audittrail.Sweep(ctx, s.pool, "audit_entries", s.auditRetention(), s.logger) })
	}
	wg.Wait()
	return nil
}

// Projections is the service's projection set.
func (s *Service) Projections() *projection.Set { return s.projections }

// RegisterGRPC registers gatehouse.token.v1.TokenService.
func (s *Service) RegisterGRPC(srv grpc.ServiceRegistrar) {
	tokenv1.RegisterTokenServiceServer(srv, &grpcServer{svc: s})
}

// endpoint is an absolute URL under the issuer.
func (s *Service) endpoint(path string) string {
	return s.issuer.ResolveReference(&url.URL{Path: path}).String()
}
