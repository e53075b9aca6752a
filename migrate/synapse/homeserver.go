package synapse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Homeserver is what the importer and the configuration generator read from
// Synapse's homeserver.yaml. Only these settings are read; the rest of the
// file (and there is a lot of it) is ignored.
type Homeserver struct {
	// ServerName is the domain of every MXID (server_name), possibly with a port.
	ServerName string `yaml:"server_name"`
	// PublicBaseURL is the homeserver's client-facing URL (public_baseurl).
	PublicBaseURL string `yaml:"public_baseurl"`
	// Database is the database section.
	Database HomeserverDatabase `yaml:"database"`
	// Password is password_config.
	Password PasswordConfig `yaml:"password_config"`
	// BcryptRounds is bcrypt_rounds (12 when unset).
	BcryptRounds int `yaml:"bcrypt_rounds"`
	// Email is the email section (SMTP and sender).
	Email EmailConfig `yaml:"email"`
	// EnableRegistration is enable_registration.
	EnableRegistration bool `yaml:"enable_registration"`
	// RegistrationRequiresToken is registration_requires_token.
	RegistrationRequiresToken bool `yaml:"registration_requires_token"`
	// RegistrationsRequire3PID lists the media registration requires
	// (registrations_require_3pid: email, msisdn).
	RegistrationsRequire3PID []string `yaml:"registrations_require_3pid"`
	// RegistrationSharedSecret is set when registration_shared_secret (or its
	// _path) is; only its presence is kept.
	RegistrationSharedSecret bool `yaml:"-"`
	// AllowGuestAccess is allow_guest_access.
	AllowGuestAccess bool `yaml:"allow_guest_access"`
	// Enable3PIDChanges is enable_3pid_changes; nil when unset.
	Enable3PIDChanges *bool `yaml:"enable_3pid_changes"`
	// UserConsent is set when the user_consent section is present.
	UserConsent *UserConsent `yaml:"user_consent"`
	// EnableRegistrationCaptcha is enable_registration_captcha (reCAPTCHA,
	// the only CAPTCHA Synapse has).
	EnableRegistrationCaptcha bool `yaml:"enable_registration_captcha"`
	// RecaptchaPublicKey is recaptcha_public_key.
	RecaptchaPublicKey string `yaml:"recaptcha_public_key"`
	// RecaptchaPrivateKey is recaptcha_private_key.
	RecaptchaPrivateKey string `yaml:"recaptcha_private_key"`
	// OIDCProviders are oidc_providers, and the legacy oidc_config section
	// (idp_id "oidc") when enabled.
	OIDCProviders []OIDCProvider `yaml:"oidc_providers"`
	// CASEnabled, SAML2Enabled and JWTEnabled tell which other SSO mechanisms
	// are on; Gatehouse has none of them.
	CASEnabled, SAML2Enabled, JWTEnabled bool `yaml:"-"`
	// PasswordProviders lists the modules of password_providers and the
	// modules of modules (any may check passwords).
	PasswordProviders []string `yaml:"-"`
	// LoginViaExistingSession is login_via_existing_session.enabled.
	LoginViaExistingSession bool `yaml:"-"`
	// SessionLifetimes lists which of refresh_token_lifetime,
	// refreshable_access_token_lifetime, nonrefreshable_access_token_lifetime
	// and session_lifetime are set.
	SessionLifetimes []string `yaml:"-"`
	// DelegatedAuth is set when matrix_authentication_service.enabled or
	// experimental_features.msc3861.enabled already is.
	DelegatedAuth bool `yaml:"-"`
}

// HomeserverDatabase is Synapse's database section.
type HomeserverDatabase struct {
	// Name is the driver: psycopg2 (PostgreSQL) or sqlite3.
	Name string `yaml:"name"`
	// Args are the driver's connection arguments.
	Args map[string]any `yaml:"args"`
}

// PasswordConfig is Synapse's password_config.
type PasswordConfig struct {
	// Enabled is false when password login is off, "only_for_reauth" too is
	// read as enabled (passwords exist).
	Enabled bool `yaml:"-"`
	// LocalDBEnabled is localdb_enabled (default true).
	LocalDBEnabled bool `yaml:"-"`
	// Pepper is appended to every password before hashing (a secret).
	Pepper string `yaml:"pepper"`
	// Policy is the password policy for new passwords.
	Policy PasswordPolicy `yaml:"policy"`
}

// PasswordPolicy is password_config.policy.
type PasswordPolicy struct {
	Enabled          bool `yaml:"enabled"`
	MinimumLength    int  `yaml:"minimum_length"`
	RequireDigit     bool `yaml:"require_digit"`
	RequireSymbol    bool `yaml:"require_symbol"`
	RequireLowercase bool `yaml:"require_lowercase"`
	RequireUppercase bool `yaml:"require_uppercase"`
}

// EmailConfig is Synapse's email section.
type EmailConfig struct {
	SMTPHost string `yaml:"smtp_host"`
	// SMTPPort is smtp_port (25 when unset).
	SMTPPort int    `yaml:"smtp_port"`
	SMTPUser string `yaml:"smtp_user"`
	SMTPPass string `yaml:"smtp_pass"`
	// ForceTLS is force_tls: implicit TLS (smtps).
	ForceTLS bool `yaml:"force_tls"`
	// RequireTransportSecurity is require_transport_security: STARTTLS required.
	RequireTransportSecurity bool `yaml:"require_transport_security"`
	// EnableTLS is enable_tls (default true): STARTTLS when offered.
	EnableTLS *bool `yaml:"enable_tls"`
	// NotifFrom is the sender, with %(app)s standing for AppName.
	NotifFrom string `yaml:"notif_from"`
	// AppName is app_name ("Matrix" when unset).
	AppName string `yaml:"app_name"`
}

// Sender returns notif_from with %(app)s replaced by the app name.
func (e EmailConfig) Sender() string {
	app := e.AppName
	if app == "" {
		app = "Matrix"
	}
	return strings.ReplaceAll(e.NotifFrom, "%(app)s", app)
}

// UserConsent is Synapse's user_consent section.
type UserConsent struct {
	Version               string `yaml:"version"`
	TemplateDir           string `yaml:"template_dir"`
	RequireAtRegistration bool   `yaml:"require_at_registration"`
}

// OIDCProvider is one entry of Synapse's oidc_providers.
type OIDCProvider struct {
	// IdpID is the provider's id in the configuration; see AuthProvider.
	IdpID    string `yaml:"idp_id"`
	IdpName  string `yaml:"idp_name"`
	IdpBrand string `yaml:"idp_brand"`
	// Discover is discover (default true).
	Discover              *bool    `yaml:"discover"`
	Issuer                string   `yaml:"issuer"`
	ClientID              string   `yaml:"client_id"`
	ClientSecret          string   `yaml:"client_secret"`
	ClientSecretPath      string   `yaml:"client_secret_path"`
	ClientAuthMethod      string   `yaml:"client_auth_method"`
	PKCEMethod            string   `yaml:"pkce_method"`
	Scopes                []string `yaml:"scopes"`
	AuthorizationEndpoint string   `yaml:"authorization_endpoint"`
	TokenEndpoint         string   `yaml:"token_endpoint"`
	UserinfoEndpoint      string   `yaml:"userinfo_endpoint"`
	JWKSURI               string   `yaml:"jwks_uri"`
	UserProfileMethod     string   `yaml:"user_profile_method"`
	AllowExistingUsers    bool     `yaml:"allow_existing_users"`
	// BackchannelLogoutEnabled is backchannel_logout_enabled.
	BackchannelLogoutEnabled bool `yaml:"backchannel_logout_enabled"`
	// ClientSecretJWTKey is set when client_secret_jwt_key is (private_key_jwt).
	ClientSecretJWTKey map[string]any `yaml:"client_secret_jwt_key"`
	// UserMapping is user_mapping_provider.
	UserMapping struct {
		Module string            `yaml:"module"`
		Config UserMappingConfig `yaml:"config"`
	} `yaml:"user_mapping_provider"`
	// AttributeRequirements is attribute_requirements (not carried over).
	AttributeRequirements []map[string]any `yaml:"attribute_requirements"`
}

// UserMappingConfig is the config of the default (Jinja) user mapping provider.
type UserMappingConfig struct {
	// SubjectClaim is subject_claim (default "sub").
	SubjectClaim        string `yaml:"subject_claim"`
	SubjectTemplate     string `yaml:"subject_template"`
	LocalpartTemplate   string `yaml:"localpart_template"`
	DisplayNameTemplate string `yaml:"display_name_template"`
	EmailTemplate       string `yaml:"email_template"`
	PictureClaim        string `yaml:"picture_claim"`
	ConfirmLocalpart    bool   `yaml:"confirm_localpart"`
}

// AuthProvider returns the auth_provider value Synapse stores in
// user_external_ids for this provider: "oidc-" + idp_id, except for the
// idp_id "oidc" itself (the legacy section's), which Synapse keeps as it is.
func (p OIDCProvider) AuthProvider() string {
	id := p.IdpID
	if id == "" {
		id = "oidc"
	}
	if id == "oidc" {
		return id
	}
	return "oidc-" + id
}

// AuthProviders lists the auth_provider values this configuration's SSO
// mechanisms write into user_external_ids.
func (h *Homeserver) AuthProviders() []string {
	var out []string
	for _, p := range h.OIDCProviders {
		out = append(out, p.AuthProvider())
	}
	if h.CASEnabled {
		out = append(out, "cas")
	}
	if h.SAML2Enabled {
		out = append(out, "saml")
	}
	return out
}

// ReadHomeserver reads and parses a homeserver.yaml file.
func ReadHomeserver(path string) (*Homeserver, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("synapse config: %w", err)
	}
	hs, err := ParseHomeserver(data)
	if err != nil {
		return nil, fmt.Errorf("synapse config %s: %w", path, err)
	}
	return hs, nil
}

// ParseHomeserver parses the text of a homeserver.yaml. Unknown keys are
// ignored; the server name is required.
func ParseHomeserver(data []byte) (*Homeserver, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var hs Homeserver
	if err := dec.Decode(&hs); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty")
		}
		return nil, err
	}
	var raw rawHomeserver
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if err := raw.fill(&hs); err != nil {
		return nil, err
	}
	if hs.ServerName == "" {
		return nil, errors.New("server_name is not set")
	}
	if hs.BcryptRounds == 0 {
		hs.BcryptRounds = 12
	}
	if hs.Email.SMTPPort == 0 {
		hs.Email.SMTPPort = 25
	}
	return &hs, nil
}

// rawHomeserver holds the settings whose shape varies (a boolean or a
// string, a section whose presence alone matters), decoded loosely.
type rawHomeserver struct {
	Password struct {
		Enabled        any   `yaml:"enabled"`
		LocalDBEnabled *bool `yaml:"localdb_enabled"`
	} `yaml:"password_config"`
	RegistrationSharedSecret     string         `yaml:"registration_shared_secret"`
	RegistrationSharedSecretPath string         `yaml:"registration_shared_secret_path"`
	OIDCConfig                   yaml.Node      `yaml:"oidc_config"`
	CAS                          map[string]any `yaml:"cas_config"`
	SAML2                        map[string]any `yaml:"saml2_config"`
	JWT                          map[string]any `yaml:"jwt_config"`
	PasswordProviders            []struct {
		Module string `yaml:"module"`
	} `yaml:"password_providers"`
	Modules []struct {
		Module string `yaml:"module"`
	} `yaml:"modules"`
	LoginViaExistingSession struct {
		Enabled bool `yaml:"enabled"`
	} `yaml:"login_via_existing_session"`
	RefreshTokenLifetime              any `yaml:"refresh_token_lifetime"`
	RefreshableAccessTokenLifetime    any `yaml:"refreshable_access_token_lifetime"`
	NonrefreshableAccessTokenLifetime any `yaml:"nonrefreshable_access_token_lifetime"`
	SessionLifetime                   any `yaml:"session_lifetime"`
	MAS                               struct {
		Enabled bool `yaml:"enabled"`
	} `yaml:"matrix_authentication_service"`
	Experimental struct {
		MSC3861 struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"msc3861"`
	} `yaml:"experimental_features"`
}

// fill completes hs from the loosely decoded settings.
func (r rawHomeserver) fill(hs *Homeserver) error {
	switch v := r.Password.Enabled.(type) {
	case nil:
		hs.Password.Enabled = true
	case bool:
		hs.Password.Enabled = v
	case string:
		if v != "only_for_reauth" {
			return fmt.Errorf("password_config.enabled: %q is not true, false or only_for_reauth", v)
		}
		hs.Password.Enabled = true
	default:
		return fmt.Errorf("password_config.enabled: %v is not true, false or only_for_reauth", v)
	}
	hs.Password.LocalDBEnabled = r.Password.LocalDBEnabled == nil || *r.Password.LocalDBEnabled
	hs.RegistrationSharedSecret = r.RegistrationSharedSecret != "" || r.RegistrationSharedSecretPath != ""

	// The legacy single-provider section: enabled: true, idp_id "oidc".
	if r.OIDCConfig.Kind != 0 {
		var legacy OIDCProvider
		var section map[string]any
		if err := r.OIDCConfig.Decode(&legacy); err != nil {
			return fmt.Errorf("oidc_config: %w", err)
		}
		if err := r.OIDCConfig.Decode(&section); err != nil {
			return fmt.Errorf("oidc_config: %w", err)
		}
		if enabledKey(section, false) {
			if legacy.IdpID == "" {
				legacy.IdpID = "oidc"
			}
			hs.OIDCProviders = append([]OIDCProvider{legacy}, hs.OIDCProviders...)
		}
	}
	hs.CASEnabled = r.CAS != nil && enabledKey(r.CAS, false)
	// SAML is on when the section is there, not disabled, and has a
	// configuration (sp_config or config_path).
	hs.SAML2Enabled = r.SAML2 != nil && enabledKey(r.SAML2, true) &&
		(r.SAML2["sp_config"] != nil || r.SAML2["config_path"] != nil)
	hs.JWTEnabled = r.JWT != nil && enabledKey(r.JWT, false)
	for _, p := range r.PasswordProviders {
		hs.PasswordProviders = append(hs.PasswordProviders, p.Module)
	}
	for _, m := range r.Modules {
		hs.PasswordProviders = append(hs.PasswordProviders, m.Module)
	}
	hs.LoginViaExistingSession = r.LoginViaExistingSession.Enabled
	for _, s := range []struct {
		key string
		v   any
	}{
		{"refresh_token_lifetime", r.RefreshTokenLifetime},
		{"refreshable_access_token_lifetime", r.RefreshableAccessTokenLifetime},
		{"nonrefreshable_access_token_lifetime", r.NonrefreshableAccessTokenLifetime},
		{"session_lifetime", r.SessionLifetime},
	} {
		if s.v != nil {
			hs.SessionLifetimes = append(hs.SessionLifetimes, s.key)
		}
	}
	hs.DelegatedAuth = r.MAS.Enabled || r.Experimental.MSC3861.Enabled
	return nil
}

// enabledKey reads m["enabled"], or def when absent.
func enabledKey(m map[string]any, def bool) bool {
	v, ok := m["enabled"]
	if !ok {
		return def
	}
	b, _ := v.(bool)
	return b
}

// DatabaseURL returns the postgres:// URL of the database section, built from
// psycopg2's connection arguments (user, password, dbname or database, host,
// port, and the libpq options pgx understands). The connection pool's cp_*
// arguments are dropped; so is anything else, listed in ignored.
func (h *Homeserver) DatabaseURL() (u string, ignored []string, err error) {
	switch h.Database.Name {
	case "psycopg2", "psycopg":
	case "sqlite3", "":
		return "", nil, errors.New("the Synapse database is SQLite: only PostgreSQL databases can be migrated (port it first with synapse_port_db)")
	default:
		return "", nil, fmt.Errorf("database.name %q is not psycopg2", h.Database.Name)
	}
	args := h.Database.Args
	str := func(key string) string {
		switch v := args[key].(type) {
		case string:
			return v
		case int:
			return strconv.Itoa(v)
		case nil:
			return ""
		default:
			return fmt.Sprint(v)
		}
	}
	out := url.URL{Scheme: "postgres"}
	if user := str("user"); user != "" {
		if pw, ok := args["password"]; ok {
			out.User = url.UserPassword(user, fmt.Sprint(pw))
		} else {
			out.User = url.User(user)
		}
	}
	db := str("dbname")
	if db == "" {
		db = str("database")
	}
	out.Path = "/" + db
	q := url.Values{}
	host, port := str("host"), str("port")
	switch {
	case strings.HasPrefix(host, "/"): // a Unix socket directory
		q.Set("host", host)
		if port != "" {
			q.Set("port", port)
		}
	case host != "" && port != "":
		out.Host = net.JoinHostPort(host, port)
	case host != "":
		out.Host = host
	case port != "":
		out.Host = net.JoinHostPort("localhost", port)
	default:
		out.Host = "localhost"
	}
	for _, key := range slices.Sorted(maps.Keys(args)) {
		switch {
		case key == "user" || key == "password" || key == "dbname" || key == "database" ||
			key == "host" || key == "port" || strings.HasPrefix(key, "cp_"):
		case slices.Contains(libpqOptions, key):
			q.Set(key, str(key))
		default:
			ignored = append(ignored, key)
		}
	}
	// libpq and pgx do not decode '+' as a space; Encode escapes a real '+'.
	out.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return out.String(), ignored, nil
}

// libpqOptions are the psycopg2 (libpq) connection arguments carried into
// the URL: those pgx reads itself.
var libpqOptions = []string{
	"sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "connect_timeout",
	"application_name", "target_session_attrs", "options",
}
