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
//   - the CSRF key (which also signs the add-email cookie) and the key of
//     compat SSO confirmations, derived from web.secret (Config.Secret) with
//     HKDF-SHA256. Every replica sharing the secret derives the same keys, so
//     a form or an SSO confirmation rendered by one replica is accepted by
//     any other and after a restart; pending SSO sign-ins are not kept at
//     all, they travel signed in the URL (see sso.go). Without web.secret each
//     process picks a random one at start: forms and SSO confirmations then
//     only work on the replica that rendered them and not across a restart;
//   - the sign-in and registration rate limits (token buckets per IP address
//     and per account), which each replica counts on its own, as MAS does.
//
// Nothing else: a registration waiting for its emailed code is kept by the
// accounts service (register.go), so any replica can take any step.
package web

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"gatehouse.dev/platform/ratelimit"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"

	"gatehouse.dev/platform/host"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

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
	// bits; zero means the default (minPasswordBits).
	MinPasswordBits int
	// Secret is shared by every replica (web.secret, at least minSecretLen
	// bytes); the CSRF and compat SSO keys are derived from it. Empty means a
	// random secret per process.
	Secret []byte
}

// Deps are the service's connections to the other services.
type Deps struct {
	Accounts  accountsv1.AccountsServiceClient
	Authorize authorizev1.AuthorizeServiceClient
	Token     tokenv1.TokenServiceClient
	Notify    notifyv1.NotifyServiceClient
	Logger    *slog.Logger
}

// Service is the web service.
type Service struct {
	cfg       Config
	base      *url.URL // the public URL
	secure    bool     // the public URL is https: cookies are Secure and __Host- prefixed
	accounts  accountsv1.AccountsServiceClient
	authorize authorizev1.AuthorizeServiceClient
	token     tokenv1.TokenServiceClient
	notify    notifyv1.NotifyServiceClient
	logger    *slog.Logger
	now       func() time.Time

	pages *pages
	csrf  *csrfKey
	cop   *http.CrossOriginProtection
	// Token buckets (MAS's defaults): sign-in attempts per IP address and per
	// account, registrations per IP address, device code lookups per IP address.
	// limits holds the token buckets of every rule below, in this process's
	// memory: each replica counts on its own, and addresses are the TCP
	// peer's (behind a proxy, the proxy's).
	limits          ratelimit.Limiter
	loginPerIP      ratelimit.Rule
	loginPerAccount ratelimit.Rule
	registerPerIP   ratelimit.Rule
	linkPerIP       ratelimit.Rule
	recoverPerIP    ratelimit.Rule // recovery emails per IP address (recover.go)
	ssoKey          []byte         // signs compat SSO confirmations (sso.go)
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
	p, err := loadPages(base.Path)
	if err != nil {
		return nil, err
	}
	secret := cfg.Secret
	switch {
	case len(secret) == 0:
		secret = make([]byte, 32)
		rand.Read(secret)
		deps.Logger.Warn("web.secret is not set, so a random one is used: forms and compat SSO confirmations only work on this replica and not across a restart; set web.secret when running several web replicas")
	case len(secret) < minSecretLen:
		return nil, fmt.Errorf("web: the secret is %d bytes, want at least %d", len(secret), minSecretLen)
	}
	csrfK, err := deriveKey(secret, csrfKeyLabel)
	if err != nil {
		return nil, err
	}
	ssoK, err := deriveKey(secret, ssoKeyLabel)
	if err != nil {
		return nil, err
	}
	cfg.Secret = nil // only the derived keys are kept
	s := &Service{
		cfg: cfg, base: base, secure: base.Scheme == "https",
		accounts: deps.Accounts, authorize: deps.Authorize, token: deps.Token, notify: deps.Notify,
		logger: deps.Logger, now: time.Now,
		pages: p,
		csrf:  &csrfKey{key: csrfK},
		// MAS's defaults for sign-in; registration and recovery emails per hour.
		loginPerIP:      ratelimit.Rule{Name: "login-ip", Burst: 3, Per: time.Minute},
		loginPerAccount: ratelimit.Rule{Name: "login-account", Burst: 1800, Per: time.Hour},
		registerPerIP:   ratelimit.Rule{Name: "register-ip", Burst: 3, Per: time.Hour},
		linkPerIP:       ratelimit.Rule{Name: "link-ip", Burst: 10, Per: time.Minute},
		recoverPerIP:    ratelimit.Rule{Name: "recover-ip", Burst: 3, Per: time.Hour},
		ssoKey:          ssoK,
	}
	s.cop = http.NewCrossOriginProtection()
	// The public origin is ours even when a proxy in front rewrites Host.
	if err := s.cop.AddTrustedOrigin(base.Scheme + "://" + base.Host); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, r, http.StatusForbidden, msgErrCrossOriginTitle, msgErrCrossOrigin)
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
	return New(Config{
		PublicURL:   rt.Config.PublicURL,
		ServiceName: rt.Config.Branding.ServiceName,
		TermsURI:    rt.Config.Branding.TermsURI, PolicyURI: rt.Config.Branding.PolicyURI, LogoURI: rt.Config.Branding.LogoURI, Registration: rt.Config.Account.Registration, LoginWithEmail: rt.Config.Account.LoginWithEmail,
		MinPasswordBits: rt.Config.Passwords.MinStrengthBits,
		ServerName:      rt.Config.Matrix.ServerName,
		Secret:          []byte(rt.Config.Web.Secret),
	}, Deps{
		Accounts:  accountsv1.NewAccountsServiceClient(conns["accounts"]),
		Authorize: authorizev1.NewAuthorizeServiceClient(conns["authorize"]),
		Token:     tokenv1.NewTokenServiceClient(conns["token"]),
		Notify:    notifyv1.NewNotifyServiceClient(conns["notify"]),
		Logger:    rt.Logger.With("service", "web"),
	})
}

// Name is the service's name.
func (*Service) Name() string { return "web" }

// RegisterGRPC registers the service's gRPC APIs; it has none.
func (*Service) RegisterGRPC(grpc.ServiceRegistrar) {}

// Run returns when ctx ends: the service has no background work (the rate
// limiter forgets idle buckets on its own).
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// RegisterHTTP adds the pages to the public mux. Each handler answers its
// own methods, so that a wrong one gets the 405 page rather than the 404.
func (s *Service) RegisterHTTP(mux *http.ServeMux) {
	mux.Handle("/static/", s.staticHandler())
	mux.Handle("/{$}", s.page(s.handleHome, nil))
	mux.Handle("/login", s.page(s.handleLoginGet, s.handleLoginPost))
	mux.Handle("/register", s.page(s.handleRegisterGet, s.handleRegisterPost))
	mux.Handle("/register/verify", s.page(s.handleVerifyGet, s.handleVerifyPost))
	mux.Handle("/register/resend", s.page(nil, s.handleResendPost))
	mux.Handle("/consent", s.page(s.handleConsentGet, s.handleConsentPost))
	mux.Handle("/link", s.page(s.handleLinkGet, s.handleLinkPost))
	mux.Handle("/link/done", s.page(s.handleLinkDone, nil))
	mux.Handle("/logout", s.page(nil, s.handleLogoutPost))
	s.registerAccount(mux)
	mux.Handle("/recover", s.page(s.handleRecoverGet, s.handleRecoverPost))
	mux.Handle("/recover/{ticket}", s.page(s.handleRecoverTicketGet, s.handleRecoverTicketPost))
	s.registerSSO(mux)
	mux.Handle("/", s.page(s.handleNotFound, s.handleNotFound))
}

// csp is the Content-Security-Policy of every page: no inline script or
// style, images from here or https (client logos), no framing. Forms may post
// only here, except on the consent page (cspConsent), whose answer redirects
// to the client: browsers apply form-action to the redirects after a form
// submission, and the client's redirect URI is not known when the page is made.
const (
	cspBase    = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https:; base-uri 'none'; frame-ancestors 'none'"
	csp        = cspBase + "; form-action 'self'"
	cspConsent = cspBase
)

// page wraps the GET (and HEAD) and POST handlers of one address: security
// headers and no caching on every answer, and for POST the cross-origin
// protection of net/http before the handler (which checks the CSRF token).
func (s *Service) page(get, post http.HandlerFunc) http.Handler {
	var protected http.Handler
	if post != nil {
		protected = s.cop.Handler(post)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		switch {
		case (r.Method == http.MethodGet || r.Method == http.MethodHead) && get != nil:
			get(w, r)
		case r.Method == http.MethodPost && post != nil:
			protected.ServeHTTP(w, r)
		default:
			var allow []string
			if get != nil {
				allow = append(allow, "GET", "HEAD")
			}
			if post != nil {
				allow = append(allow, "POST")
			}
			h.Set("Allow", strings.Join(allow, ", "))
			s.errorPage(w, r, http.StatusMethodNotAllowed, msgErrMethodTitle, msgErrMethod)
		}
	})
}

// path is the absolute path of a page under the public URL, e.g. "/login".
func (s *Service) path(page string) string { return s.base.Path + page }

// redirect answers 303 See Other to a page under the public URL with query q.
func (s *Service) redirect(w http.ResponseWriter, r *http.Request, page string, q url.Values) {
	target := s.path(page)
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// clientIP is the address the request came from. Forwarded headers are not
// trusted: behind a proxy every person shares its address (see the notes in
// the package documentation of the rate limits).
func clientIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

// minPasswordBits is the configured least strength of a new password.
func (s *Service) minPasswordBits() float64 {
	if s.cfg.MinPasswordBits > 0 {
		return float64(s.cfg.MinPasswordBits)
	}
	return minPasswordBits
}
