// Package notify is the notify service: it verifies email addresses. It
// emails 6-digit codes (registration, adding an address) and single-use
// recovery links, checks them, and delivers the emails over SMTP, driven by
// the event stream. It also tells people when their sign-in methods change
// (notices.go).
//
// Verifications are aggregates in the NOTIFY_PENDING stream
// (notify.verification.<id>), whose events expire once the verification can
// no longer be used (pending.go); NOTIFY keeps the service's key.
// A command appends and answers; the delivery consumer (delivery.go) sends
// the email from the stream afterwards, exactly once as far as the log knows.
// Codes and tickets are derived from the service's key (keys.go) and never
// stored, only their hashes. The verifications projection keeps a status row
// per verification and the index of recovery tickets by hash.
//
// A confirmed code or link is a VerificationConfirmed event. That event, not
// this service's answer to its caller, is what proves an address: the
// accounts service follows this stream and projects the confirmations, and
// adds an address to a user, creates a registered user or resets a password
// only against one of them.
package notify

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/host"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/ratelimit"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/telemetry"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	"gatehouse.dev/services/notify/internal/mailer"
	"gatehouse.dev/services/notify/internal/verification"
	"gatehouse.dev/services/notify/migrations"
)

// Schema is the PostgreSQL schema holding the service's read models. The
// service's streams are eventsv1.Notify (NOTIFY: its key) and
// eventsv1.NotifyPending (NOTIFY_PENDING: verifications, which expire).
const Schema = "notify"

// Config is what the service needs to know about the deployment.
type Config struct {
	// PublicURL is the base URL users reach Gatehouse at, ending in "/";
	// recovery links are <PublicURL>recover/<ticket>.
	PublicURL string
	// ServiceName brands the emails; "Gatehouse" when empty.
	ServiceName string
	// From is the sender of emails; "<ServiceName> <noreply@<public host>>" when empty.
	From string
	// ReplyTo is the Reply-To of emails; empty for none.
	ReplyTo string
	// SMTPURL is smtp://user:password@host:port or smtps://...; empty writes
	// emails to OutboxDir (development).
	SMTPURL string
	// OutboxDir receives emails when SMTPURL is empty.
	OutboxDir string
	// Replicas of the event stream in a JetStream cluster.
	Replicas int
	// Limits are the rate limits (rate_limits): this service applies the
	// email ones — verifications per address, emails (resends included) per
	// client address (IPv6: per /64) and per verification. Zero means the
	// defaults.
	Limits ratelimit.Rules
	// VerificationTTL is how long a verification may be used from its start
	// (pending.verification_ttl); its events expire an hour later. Zero: 30
	// minutes.
	VerificationTTL time.Duration
	// PendingMaxBytes caps NOTIFY_PENDING (pending.max_bytes); new
	// verifications are refused once it is full but for its reserve. Zero:
	// 256 MiB.
	PendingMaxBytes int64
	// ConfirmationWindow is how long a verification's events stay after it
	// can last be used, while the accounts service may use its confirmation.
	// Zero: an hour, what accounts accepts; tests shorten it.
	ConfirmationWindow time.Duration
	// DisableDelivery leaves the delivery consumer out: the service records
	// verifications but sends nothing until a process with delivery runs.
	DisableDelivery bool
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
	// reactors); nil: none.
	Telemetry *telemetry.Telemetry
	// SMTPRootCAs verify the mail server's certificate; nil uses the system's roots.
	SMTPRootCAs *x509.CertPool
	// Now replaces time.Now (tests); it also stamps events.
	Now func() time.Time
	// Limiter counts the rate limits, shared with every replica; nil counts
	// in this process only, by Now.
	Limiter *ratelimit.Limiter
	// Keyring seals the verification key the service keeps in its stream.
	Keyring *sealed.Keyring
	// Personal holds the personal keys that seal the addresses in the
	// service's events; nil opens one on JetStream with Keyring.
	Personal *personal.Store
}

// Service is the notify service.
type Service struct {
	cfg         Config
	pool        *pgxpool.Pool
	log         *eventlog.Log // NOTIFY: the key
	pending     *eventlog.Log // NOTIFY_PENDING: verifications
	projections *projection.Set
	logger      *slog.Logger
	now         func() time.Time

	key       verification.Key
	personal  *personal.Store // seals the addresses in events (commands.go)
	limiter   *ratelimit.Limiter
	sender    mailer.Sender
	templates *mailer.Templates
	publicURL string // ends in "/"
	from      string // the From header
	domain    string // of Message-IDs: the sender's domain
}

// New migrates the service's schema, opens its stream, loads (or generates,
// on first start) its key and prepares its projections and mail sender.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	public, err := url.Parse(cfg.PublicURL)
	if err != nil || public.Scheme == "" || public.Host == "" {
		return nil, fmt.Errorf("notify: public URL %q is not an absolute URL", cfg.PublicURL)
	}
	if !strings.HasSuffix(cfg.PublicURL, "/") {
		cfg.PublicURL += "/"
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = "Gatehouse"
	}
	if cfg.From == "" {
		cfg.From = (&mail.Address{Name: cfg.ServiceName, Address: "noreply@" + public.Hostname()}).String()
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("notify: sender %q: %w", cfg.From, err)
	}
	if cfg.ReplyTo != "" {
		if _, err := mail.ParseAddress(cfg.ReplyTo); err != nil {
			return nil, fmt.Errorf("notify: reply-to %q: %w", cfg.ReplyTo, err)
		}
	}
	if cfg.VerificationTTL <= 0 {
		cfg.VerificationTTL = defaultVerificationTTL
	}
	if cfg.ConfirmationWindow <= 0 {
		cfg.ConfirmationWindow = confirmationWindow
	}
	if cfg.PendingMaxBytes <= 0 {
		cfg.PendingMaxBytes = defaultPendingMaxBytes
	}
	if cfg.Limits == (ratelimit.Rules{}) {
		cfg.Limits = ratelimit.DefaultRules()
	}
	if deps.Keyring == nil {
		return nil, fmt.Errorf("notify: no keyring to seal the verification key")
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	if deps.Limiter == nil {
		deps.Limiter = ratelimit.New(ratelimit.Options{Logger: deps.Logger, Now: now})
	}
	templates, err := mailer.LoadTemplates()
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	s := &Service{
		cfg: cfg, pool: deps.Pool, logger: deps.Logger, now: now,
		limiter:   deps.Limiter,
		templates: templates,
		publicURL: cfg.PublicURL,
		from:      from.String(),
		domain:    from.Address[strings.LastIndex(from.Address, "@")+1:],
	}
	if cfg.SMTPURL != "" {
		if s.sender, err = mailer.NewSMTP(cfg.SMTPURL, mailer.SMTPOptions{RootCAs: deps.SMTPRootCAs, HelloName: public.Hostname()}); err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
	} else {
		if cfg.OutboxDir == "" {
			return nil, fmt.Errorf("notify: an SMTP URL or an outbox directory is required")
		}
		s.sender = mailer.NewOutbox(cfg.OutboxDir, deps.Logger)
		deps.Logger.Info("no SMTP server configured: emails are written to the outbox directory", "outbox", cfg.OutboxDir)
	}

	if err := pg.Migrate(ctx, deps.Pool, migrations.FS); err != nil {
		return nil, fmt.Errorf("notify: migrate: %w", err)
	}
	opts := []eventlog.Option{eventlog.WithClock(now), eventlog.WithPropagator(deps.Propagator), eventlog.WithTelemetry(deps.Telemetry)}
	if s.log, err = eventlog.Open(ctx, deps.JetStream, eventlog.StreamOf(eventsv1.Notify, cfg.Replicas), opts...); err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	if s.pending, err = eventlog.Open(ctx, deps.JetStream, cfg.pendingStream(), opts...); err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	if err := s.loadKey(ctx, deps.Keyring); err != nil {
		return nil, err
	}
	if s.personal = deps.Personal; s.personal == nil {
		if s.personal, err = personal.Open(ctx, deps.JetStream, deps.Keyring, personal.Config{Replicas: cfg.Replicas}); err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
	}
	members := []projection.Member{verificationsReadModel(s.pending, cfg.life())}
	if !cfg.DisableDelivery {
		// Security notices follow the accounts service's stream (read-only).
		accounts, err := eventlog.Follow(deps.JetStream, eventlog.StreamOf(eventsv1.Accounts, 0))
		if err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
		members = append(members, s.deliveryReactor(), s.noticesReactor(accounts))
	}
	if s.projections, err = projection.NewSet(ctx, deps.Pool, s.log, deps.Logger, members...); err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	return s, nil
}

// Run keeps the projections current and delivers emails until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return s.projections.Run(ctx)
}

// Projections is the service's projection set (for the projections admin API):
// the "verifications" projection and the "delivery" reactor.
func (s *Service) Projections() *projection.Set { return s.projections }

// RegisterGRPC registers gatehouse.notify.v1.NotifyService on srv.
func (s *Service) RegisterGRPC(srv grpc.ServiceRegistrar) {
	notifyv1.RegisterNotifyServiceServer(srv, &grpcServer{svc: s})
}

// Name is the service's name.
func (s *Service) Name() string { return "notify" }

// FromRuntime builds the service on a host runtime, from the deployment's configuration.
func FromRuntime(ctx context.Context, rt *host.Runtime) (*Service, error) {
	pool, err := rt.Pool(ctx, Schema)
	if err != nil {
		return nil, err
	}
	limiter, err := rt.Limiter(ctx)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	store, err := rt.Personal(ctx)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	c := rt.Config
	return New(ctx, Config{
		PublicURL:   c.PublicURL,
		ServiceName: c.Branding.ServiceName,
		From:        c.Email.From,
		ReplyTo:     c.Email.ReplyTo,
		SMTPURL:     c.SMTP.URL,
		OutboxDir:   filepath.Join(c.DataDir, "outbox"),
		Replicas:    c.NATS.Replicas,
		Limits:      ratelimit.RulesFrom(c.RateLimits),

		VerificationTTL: c.Pending.VerificationTTL,
		PendingMaxBytes: c.Pending.MaxBytes,
	}, Deps{Pool: pool, JetStream: rt.JetStream, Logger: rt.Logger.With("service", "notify"), Propagator: rt.Telemetry.Propagator(), Telemetry: rt.Telemetry, Limiter: limiter, Keyring: rt.Keyring, Personal: store})
}
