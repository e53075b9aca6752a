// Package admin is the admin API: /api/admin/v1, compatible with the admin
// API v1 of matrix-authentication-service (the same paths, methods, query
// parameters, JSON:API-style bodies and error shape), so tools written for
// MAS work against Gatehouse, with its own OpenAPI 3.1 document at
// /api/admin/v1/openapi.json built from the route table (routes.go).
//
// It is a stateless facade: every handler calls the other services' gRPC
// APIs and keeps nothing. It holds no power of its own either: it forwards
// the bearer token it was given (an OAuth access token or a personal
// access token with urn:gatehouse:admin or urn:mas:admin) as the credential
// of every call, and each service's interceptor has the token service say
// who that token stands for. So every change it makes is an event whose
// actor is that administrator (admin:user:<id> or admin:client:<id>), in the
// audit trail.
package admin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"

	"google.golang.org/grpc"

	"gatehouse.dev/platform/host"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// Config is what the admin API tells about the deployment (site-config,
// version) and where it is.
type Config struct {
	// PublicURL is the public base URL, ending in "/"; the API is under
	// api/admin/v1/ there.
	PublicURL string
	// Site is the deployment's configuration as site-config shows it.
	Site SiteConfig
	// Version is the running version; empty: the build's.
	Version string
}

// SiteConfig is the deployment's configuration as MAS's site-config shows it.
type SiteConfig struct {
	ServerName                        string `json:"server_name"`
	PasswordLoginEnabled              bool   `json:"password_login_enabled"`
	PasswordRegistrationEnabled       bool   `json:"password_registration_enabled"`
	PasswordRegistrationEmailRequired bool   `json:"password_registration_email_required"`
	PasswordRegistrationTokenRequired bool   `json:"password_registration_token_required"`
	RegistrationTokenRequired         bool   `json:"registration_token_required"`
	EmailChangeAllowed                bool   `json:"email_change_allowed"`
	DisplaynameChangeAllowed          bool   `json:"displayname_change_allowed"`
	PasswordChangeAllowed             bool   `json:"password_change_allowed"`
	AccountRecoveryAllowed            bool   `json:"account_recovery_allowed"`
	AccountDeactivationAllowed        bool   `json:"account_deactivation_allowed"`
	CaptchaEnabled                    bool   `json:"captcha_enabled"`
	MinimumPasswordComplexity         int    `json:"minimum_password_complexity"`
}

// Deps are the services the API calls, over connections that carry no
// credential of their own (host.Runtime.DialForwarding).
type Deps struct {
	Accounts  accountsv1.AccountsServiceClient
	Authorize authorizev1.AuthorizeServiceClient
	Token     tokenv1.TokenServiceClient
	Logger    *slog.Logger
}

// Service is the admin API.
type Service struct {
	cfg       Config
	base      string // the API's absolute path, "/api/admin/v1"
	accounts  accountsv1.AccountsServiceClient
	authorize authorizev1.AuthorizeServiceClient
	token     tokenv1.TokenServiceClient
	logger    *slog.Logger
	routes    []route
	document  []byte // the OpenAPI document, built once from the routes
}

// New builds the API.
func New(cfg Config, deps Deps) (*Service, error) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("admin: public URL %q is not an absolute URL", cfg.PublicURL)
	}
	if cfg.Version == "" {
		cfg.Version = buildVersion()
	}
	s := &Service{
		cfg: cfg, base: u.JoinPath("api/admin/v1").Path, accounts: deps.Accounts, authorize: deps.Authorize, token: deps.Token,
		logger: deps.Logger,
	}
	s.routes = s.table()
	if s.document, err = s.openAPI(); err != nil {
		return nil, fmt.Errorf("admin: OpenAPI document: %w", err)
	}
	return s, nil
}

// FromRuntime builds the API on a host runtime: its connections forward the
// caller's token, and the site configuration comes from the deployment's.
func FromRuntime(_ context.Context, rt *host.Runtime) (*Service, error) {
	conns := map[string]*grpc.ClientConn{}
	for _, name := range []string{"accounts", "authorize", "token"} {
		c, err := rt.DialForwarding(name)
		if err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		conns[name] = c
	}
	c := rt.Config
	site := SiteConfig{
		ServerName:                        c.Matrix.ServerName,
		PasswordLoginEnabled:              true,
		PasswordRegistrationEnabled:       c.Account.Registration != "closed",
		PasswordRegistrationEmailRequired: c.Account.Registration != "closed",
		PasswordRegistrationTokenRequired: c.Account.Registration == "token",
		RegistrationTokenRequired:         c.Account.Registration == "token",
		EmailChangeAllowed:                true,
		DisplaynameChangeAllowed:          true,
		PasswordChangeAllowed:             true,
		AccountRecoveryAllowed:            c.SMTP.URL != "",
		AccountDeactivationAllowed:        true,
		CaptchaEnabled:                    c.Captcha.Provider != "",
		MinimumPasswordComplexity:         complexityOf(c.Passwords.MinStrengthBits),
	}
	return New(Config{PublicURL: c.PublicURL, Site: site}, Deps{
		Accounts:  accountsv1.NewAccountsServiceClient(conns["accounts"]),
		Authorize: authorizev1.NewAuthorizeServiceClient(conns["authorize"]),
		Token:     tokenv1.NewTokenServiceClient(conns["token"]),
		Logger:    rt.Logger.With("service", "admin"),
	})
}

// complexityOf maps Gatehouse's password strength (bits of entropy) onto
// zxcvbn's 0–4 score that MAS reports.
func complexityOf(bits int) int {
	switch {
	case bits >= 80:
		return 4
	case bits >= 60:
		return 3
	case bits >= 40:
		return 2
	case bits >= 20:
		return 1
	}
	return 0
}

// buildVersion is the main module's version, or its VCS revision.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return "0.0.0+" + s.Value
		}
	}
	return "0.0.0-dev"
}

// Name is the service's name.
func (s *Service) Name() string { return "admin" }

// RegisterGRPC registers nothing: the admin API is HTTP only.
func (s *Service) RegisterGRPC(grpc.ServiceRegistrar) {}

// Run has no background work; it returns when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// RegisterHTTP adds the API's routes under /api/admin/v1/.
func (s *Service) RegisterHTTP(mux *http.ServeMux) {
	mux.Handle(s.base+"/", s.Handler())
}
