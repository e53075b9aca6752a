// Package web is the web service: the pages people use in the browser — sign
// in, sign up with an emailed code, consent to an application, connect a
// device (RFC 8628) and sign out.
//
// Pages are rendered on the server with html/template from embedded templates
// and work without JavaScript; the one stylesheet and the one small script
// are embedded too. The service keeps no data of its own: browser sessions
// and users belong to accounts, authorization requests to authorize, email
// codes to notify, all reached over gRPC.
//
// What the service holds in memory, per process (per replica):
//   - the CSRF key (which also signs the add-email cookie), the key of
//     compat SSO confirmations and the key sealing upstream sign-in attempts
//     (internal/upstreamstate), derived from web.secret (Config.Secret) with
//     HKDF-SHA256 (internal/keys). Every replica sharing the secret derives
//     the same keys, so a form or an SSO confirmation rendered by one replica
//     is accepted by any other and after a restart; pending SSO sign-ins are
//     not kept at all, they travel signed in the URL (internal/ssostate).
//     Without web.secret each process picks a random one at start: forms and
//     SSO confirmations then only work on the replica that rendered them and
//     not across a restart;
//   - the last state it saw of the rate limits' buckets; the counts
//     themselves are shared by every replica through NATS (platform/ratelimit).
//
// Nothing else: a registration waiting for its emailed code is kept by the
// accounts service (register.go), so any replica can take any step.
//
// Where things are: routes.go lists every page (its path, methods, handler
// and whether it needs a signed-in user); each page's handlers are in the file
// named after it (login.go, register.go, account_profile.go, …) and its
// template in templates/<name>.html. session.go holds the browser session and
// its guard, requireUser; flow.go what a sign-in is in the middle of;
// render.go the writing of pages and of errors. The internal packages hold
// what the pages share: i18n (the texts in every language), render (the
// templates), input (the rules for what people type), cookie, csrf and keys
// (the browser's cookies, the forms' tokens and the keys behind them) and
// ssostate (signed compat SSO sign-ins).
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"

	"gatehouse.dev/platform/host"
	"gatehouse.dev/platform/ratelimit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/web/internal/captcha"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/csrf"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/input"
	"gatehouse.dev/services/web/internal/keys"
	"gatehouse.dev/services/web/internal/render"
)

// files are the pages' templates (templates/, one file per page, see package
// render) and the static files (static/).
//
//go:embed templates static
var files embed.FS

// Config is what the service needs to know about the deployment.
type Config struct {
	// PublicURL is the base URL people reach the pages at (the OIDC issuer), ending in "/".
	PublicURL string
	// ServiceName names the deployment on every page.
	ServiceName string
	// ServerName is the Matrix server name, shown in user IDs (@alice:example.org).
	ServerName string
	// TermsURI, when set, must be accepted to create an account.
	TermsURI string
	// PolicyURI is the privacy policy linked on every page.
	PolicyURI string
	// LogoURI is the deployment's logo (https).
	LogoURI string
	// Registration is open, token (a registration token is required) or closed.
	Registration string
	// LoginWithEmail lets people sign in with an email address.
	LoginWithEmail bool
	// MinPasswordBits is the least estimated strength of a new password, in
	// bits; zero means the default (input.DefaultMinPasswordBits).
	MinPasswordBits int
	// Secret is shared by every replica (web.secret, at least
	// keys.MinSecretLen bytes); the CSRF and compat SSO keys are derived from it. Empty means a
	// random secret per process.
	Secret []byte
	// Limits are the rate limits (rate_limits); zero means the defaults.
	Limits ratelimit.Rules
	// Captcha is the CAPTCHA of registration (and of sign-in after failures).
	Captcha CaptchaConfig
	// Upstream are the upstream identity providers' buttons (their ids,
	// names and brands; the accounts service holds the rest).
	Upstream []upstreamProvider
}

// Deps are the service's connections to the other services.
type Deps struct {
	Accounts  accountsv1.AccountsServiceClient
	Authorize authorizev1.AuthorizeServiceClient
	Token     tokenv1.TokenServiceClient
	Notify    notifyv1.NotifyServiceClient
	Logger    *slog.Logger
	// Limiter counts the rate limits, shared with every replica; nil counts
	// in this process only.
	Limiter *ratelimit.Limiter
}

// Service is the web service.
type Service struct {
	cfg       Config
	base      *url.URL // the public URL
	accounts  accountsv1.AccountsServiceClient
	authorize authorizev1.AuthorizeServiceClient
	token     tokenv1.TokenServiceClient
	notify    notifyv1.NotifyServiceClient
	logger    *slog.Logger
	now       func() time.Time

	texts     *i18n.Set         // the texts of every language
	templates *render.Templates // the pages, in every language
	passwords *input.Passwords  // the rules of new passwords
	keys      keys.Keys         // derived from web.secret
	cookies   cookie.Jar
	csrf      *csrf.Tokens
	cop       *http.CrossOriginProtection
	// limiter counts the rate limits of rules (failed sign-ins per client
	// address and per account, registrations, recovery requests, device codes
	// typed), shared by every replica; see limits.go.
	limiter *ratelimit.Limiter
	rules   ratelimit.Rules
	// captcha checks the forms' CAPTCHA (captcha.go); nil without one.
	captcha *captcha.Verifier
}

// New returns the web service.
func New(cfg Config, deps Deps) (*Service, error) {
	base, err := url.Parse(cfg.PublicURL)
	if err != nil || base.Scheme == "" || base.Host == "" || !strings.HasSuffix(base.Path, "/") {
		return nil, fmt.Errorf("web: public URL %q is not an absolute URL ending in /", cfg.PublicURL)
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = "Gatehouse"
	}
	if deps.Accounts == nil || deps.Authorize == nil || deps.Notify == nil {
		return nil, errors.New("web: the accounts, authorize and notify clients are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Limiter == nil {
		deps.Limiter = ratelimit.New(ratelimit.Options{Logger: deps.Logger})
	}
	if cfg.Limits == (ratelimit.Rules{}) {
		cfg.Limits = ratelimit.DefaultRules()
	}
	texts, err := i18n.NewSet(i18n.Catalogs()...)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	templates, err := render.Load(files, base.Path, texts)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	k, random, err := keys.FromSecret(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if random {
		deps.Logger.Warn("web.secret is not set, so a random one is used: forms and compat SSO confirmations only work on this replica and not across a restart; set web.secret when running several web replicas")
	}
	cfg.Secret = nil // only the derived keys are kept
	jar := cookie.Jar{Secure: base.Scheme == "https"}
	s := &Service{
		cfg: cfg, base: base,
		accounts: deps.Accounts, authorize: deps.Authorize, token: deps.Token, notify: deps.Notify,
		logger: deps.Logger, now: time.Now,
		texts: texts, templates: templates, passwords: input.NewPasswords(cfg.MinPasswordBits),
		keys: k, cookies: jar, csrf: csrf.New(k.CSRF, jar),
		limiter: deps.Limiter, rules: cfg.Limits,
	}
	if c := cfg.Captcha; c.Provider != "" {
		if s.captcha, err = captcha.New(captcha.Config{
			Provider: c.Provider, SiteKey: c.SiteKey, SecretKey: c.SecretKey, VerifyURL: c.VerifyURL, ScriptURL: c.ScriptURL,
			Hostname: base.Hostname(),
		}, nil); err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
	}
	s.cfg.Captcha.SecretKey = "" // kept by the verifier only
	s.cop = http.NewCrossOriginProtection()
	// The public origin is ours even when a proxy in front rewrites Host.
	if err := s.cop.AddTrustedOrigin(base.Scheme + "://" + base.Host); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	// These POSTs come from elsewhere by design; each checks what binds it
	// instead (the upstream state in a sealed cookie; the confirmation's CSRF
	// token, asked before anything changes).
	for _, p := range []string{"POST /upstream/callback/{provider}", "POST /oauth2/logout"} {
		s.cop.AddInsecureBypassPattern(p)
	}
	s.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, r, http.StatusForbidden, i18n.ErrorCrossOriginTitle, i18n.ErrorCrossOrigin)
	}))
	return s, nil
}

// FromRuntime builds the service on a host runtime, dialing the other services.
func FromRuntime(ctx context.Context, rt *host.Runtime) (*Service, error) {
	conns := map[string]*grpc.ClientConn{}
	for _, name := range []string{"accounts", "authorize", "token", "notify"} {
		c, err := rt.Dial("web", name)
		if err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		conns[name] = c
	}
	limiter, err := rt.Limiter(ctx)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	var upstream []upstreamProvider
	for _, raw := range rt.Config.Upstream.Providers {
		p := raw.WithDefaults()
		upstream = append(upstream, upstreamProvider{ID: p.ID, HumanName: p.HumanName, Brand: p.Brand})
	}
	return New(Config{
		PublicURL:   rt.Config.PublicURL,
		ServiceName: rt.Config.Branding.ServiceName,
		TermsURI:    rt.Config.Branding.TermsURI, PolicyURI: rt.Config.Branding.PolicyURI, LogoURI: rt.Config.Branding.LogoURI, Registration: rt.Config.Account.Registration, LoginWithEmail: rt.Config.Account.LoginWithEmail,
		MinPasswordBits: rt.Config.Passwords.MinStrengthBits,
		ServerName:      rt.Config.Matrix.ServerName,
		Secret:          []byte(rt.Config.Web.Secret),
		Limits:          ratelimit.RulesFrom(rt.Config.RateLimits),
		Upstream:        upstream,
		Captcha: CaptchaConfig{
			Provider: rt.Config.Captcha.Provider, SiteKey: rt.Config.Captcha.SiteKey, SecretKey: string(rt.Config.Captcha.SecretKey),
			VerifyURL: rt.Config.Captcha.VerifyURL, ScriptURL: rt.Config.Captcha.ScriptURL, LoginAfterFailures: rt.Config.Captcha.LoginAfterFailures,
		},
	}, Deps{
		Accounts:  accountsv1.NewAccountsServiceClient(conns["accounts"]),
		Authorize: authorizev1.NewAuthorizeServiceClient(conns["authorize"]),
		Token:     tokenv1.NewTokenServiceClient(conns["token"]),
		Notify:    notifyv1.NewNotifyServiceClient(conns["notify"]),
		Logger:    rt.Logger.With("service", "web"),
		Limiter:   limiter,
	})
}

// Name is the service's name.
func (*Service) Name() string { return "web" }

// RegisterGRPC registers the service's gRPC APIs; it has none.
func (*Service) RegisterGRPC(grpc.ServiceRegistrar) {}

// Run returns when ctx ends: the service has no background work (the rate
// limiter forgets full buckets on its own).
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
