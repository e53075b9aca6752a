package synapse

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"gatehouse.dev/platform/claimtemplate"
	"gatehouse.dev/platform/config"
)

// Derived is a Gatehouse configuration derived from Synapse's, with what the
// operator must review and what could not be carried over.
type Derived struct {
	// Config is the configuration, valid as it is.
	Config config.Config
	// Chosen lists settings chosen for the operator, to review.
	Chosen []string
	// NotCarried lists what Synapse has that the configuration does not.
	NotCarried []string
	// Drafts are Synapse's OIDC providers that are not valid upstream
	// providers as they are; the valid ones are in Config.Upstream.Providers.
	// SynapseIdpID is the auth_provider Synapse stored in user_external_ids:
	// imported SSO links belong to the provider naming it.
	Drafts []ProviderDraft
	// SynapseSteps say what to change in homeserver.yaml for delegated
	// authentication.
	SynapseSteps []string
}

// ProviderDraft is one of Synapse's OIDC providers that could not become a
// valid upstream provider as it is (a key file to provide, a template
// Gatehouse cannot read, …): written commented out, with why.
type ProviderDraft struct {
	Provider config.UpstreamProvider
	Problems []string
}

// DeriveConfig derives a Gatehouse configuration from Synapse's, over base
// (config.Default() for a new file). It fails only when the server name is
// not one Gatehouse accepts; anything else that does not fit is left out
// and listed in NotCarried.
func DeriveConfig(hs *Homeserver, base config.Config) (*Derived, error) {
	d := &Derived{Config: base}
	c := &d.Config
	c.Matrix.ServerName = hs.ServerName

	host := hs.ServerName
	if h, port, err := net.SplitHostPort(hs.ServerName); err == nil {
		if _, err := strconv.Atoi(port); err == nil {
			host = h
		}
	}
	c.PublicURL = "https://auth." + host + "/"
	d.choose("public_url: %s — Gatehouse's issuer and the address of its pages, a name of its own next to the homeserver's (%s); change it to yours",
		c.PublicURL, orNone(hs.PublicBaseURL))
	if hs.PublicBaseURL != "" {
		c.Matrix.HomeserverURL = hs.PublicBaseURL
		d.choose("matrix.homeserver_url: %s — Synapse's public_baseurl, where Gatehouse provisions users and devices; an internal address of Synapse saves a hop", hs.PublicBaseURL)
	}
	c.Matrix.Secret = config.Secret(rand.Text() + rand.Text())
	d.choose("matrix.secret: generated — give Synapse the same value (matrix_authentication_service.secret)")

	d.deriveEmail(hs)
	d.deriveRegistration(hs)
	d.derivePasswords(hs)
	for _, p := range hs.OIDCProviders {
		up := d.deriveProvider(p)
		if problems := providerProblems(up); len(problems) > 0 {
			d.Drafts = append(d.Drafts, ProviderDraft{Provider: up, Problems: problems})
			continue
		}
		c.Upstream.Providers = append(c.Upstream.Providers, up)
	}
	d.listNotCarried(hs)
	d.listSynapseSteps(hs)
	if err := d.fit(); err != nil {
		return nil, err
	}
	return d, nil
}

// choose records a chosen setting.
func (d *Derived) choose(format string, args ...any) {
	d.Chosen = append(d.Chosen, fmt.Sprintf(format, args...))
}

// lose records something not carried over.
func (d *Derived) lose(format string, args ...any) {
	d.NotCarried = append(d.NotCarried, fmt.Sprintf(format, args...))
}

// orNone names an empty value.
func orNone(s string) string {
	if s == "" {
		return "not set"
	}
	return s
}

// deriveEmail carries SMTP and the sender over.
func (d *Derived) deriveEmail(hs *Homeserver) {
	e, c := hs.Email, &d.Config
	if e.SMTPHost != "" {
		u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(e.SMTPHost, strconv.Itoa(e.SMTPPort))}
		if e.ForceTLS {
			u.Scheme = "smtps"
		}
		if e.SMTPUser != "" {
			u.User = url.UserPassword(e.SMTPUser, e.SMTPPass)
		}
		c.SMTP.URL = u.String()
		if e.EnableTLS != nil && !*e.EnableTLS {
			d.lose("email.enable_tls: false — Gatehouse uses STARTTLS whenever the mail server offers it")
		}
	}
	if e.NotifFrom != "" {
		c.Email.From = e.Sender()
	}
	if e.AppName != "" {
		c.Branding.ServiceName = e.AppName
	}
}

// deriveRegistration carries the registration settings over.
func (d *Derived) deriveRegistration(hs *Homeserver) {
	c := &d.Config
	switch {
	case !hs.EnableRegistration:
		c.Account.Registration = "closed"
	case hs.RegistrationRequiresToken:
		c.Account.Registration = "token"
	default:
		c.Account.Registration = "open"
	}
	if hs.EnableRegistration && !slices.Contains(hs.RegistrationsRequire3PID, "email") {
		d.lose("registrations_require_3pid without email — Gatehouse's self-service registration always confirms an email address")
	}
	if slices.Contains(hs.RegistrationsRequire3PID, "msisdn") {
		d.lose("registrations_require_3pid: msisdn — Gatehouse has no phone numbers")
	}
}

// derivePasswords carries the pepper over and notes the policy.
func (d *Derived) derivePasswords(hs *Homeserver) {
	d.Config.Passwords.BcryptPepper = config.Secret(hs.Password.Pepper)
	if hs.Password.Pepper != "" {
		d.choose("passwords.bcrypt_pepper: Synapse's password_config.pepper, which imported password hashes need")
	}
	if p := hs.Password.Policy; p.Enabled {
		var rules []string
		if p.MinimumLength > 0 {
			rules = append(rules, fmt.Sprintf("minimum_length %d", p.MinimumLength))
		}
		for _, r := range []struct {
			on   bool
			name string
		}{{p.RequireDigit, "require_digit"}, {p.RequireSymbol, "require_symbol"},
			{p.RequireLowercase, "require_lowercase"}, {p.RequireUppercase, "require_uppercase"}} {
			if r.on {
				rules = append(rules, r.name)
			}
		}
		d.lose("password_config.policy (%s) — Gatehouse estimates a new password's strength instead (passwords.min_strength_bits)",
			strings.Join(rules, ", "))
	}
	if !hs.Password.Enabled || !hs.Password.LocalDBEnabled {
		d.lose("password_config.enabled / localdb_enabled: false — Gatehouse always offers password sign-in")
	}
}

// deriveProvider makes an upstream provider of a Synapse OIDC provider:
// the same endpoints, client and scopes, and Synapse's Jinja templates where
// Gatehouse's claim templates (a subset of Jinja) read them.
func (d *Derived) deriveProvider(p OIDCProvider) config.UpstreamProvider {
	m := p.UserMapping.Config
	discover := p.Discover == nil || *p.Discover
	u := config.UpstreamProvider{
		ID: providerID(p.IdpID), SynapseIdpID: p.AuthProvider(), HumanName: p.IdpName, Brand: p.IdpBrand,
		Issuer: p.Issuer, Discovery: &discover,
		AuthorizationEndpoint: p.AuthorizationEndpoint, TokenEndpoint: p.TokenEndpoint,
		UserinfoEndpoint: p.UserinfoEndpoint, JWKSURI: p.JWKSURI,
		FetchUserinfo: p.UserProfileMethod == "userinfo_endpoint",
		ClientID:      p.ClientID, ClientSecret: config.Secret(p.ClientSecret), ClientSecretFile: p.ClientSecretPath,
		TokenEndpointAuthMethod: p.ClientAuthMethod, PKCE: p.PKCEMethod, Scopes: p.Scopes,
	}
	if len(u.Scopes) == 0 {
		u.Scopes = []string{"openid"}
	}
	name := fmt.Sprintf("oidc_providers %q", p.IdpID)
	template := func(what, t string) string {
		if t == "" {
			return ""
		}
		if _, err := claimtemplate.Parse(t); err != nil {
			d.lose("%s: %s %q — %v; Gatehouse's default is used, write one by hand", name, what, t, err)
			return ""
		}
		return t
	}
	subject := template("subject_template", m.SubjectTemplate)
	if subject == "" {
		claim := m.SubjectClaim
		if claim == "" {
			claim = "sub"
		}
		subject = "{{ user." + claim + " }}"
	}
	u.Claims.Subject = config.UpstreamClaim{Template: subject}
	// Synapse sets the localpart from its template, unless it lets the
	// person confirm it; display name and email are set as they come.
	u.Claims.Localpart = config.UpstreamClaim{Template: template("localpart_template", m.LocalpartTemplate), Action: config.ClaimForce}
	if m.ConfirmLocalpart {
		u.Claims.Localpart.Action = config.ClaimSuggest
	}
	if u.Claims.Localpart.Template == "" {
		u.Claims.Localpart.Action = config.ClaimSuggest // the person chooses, as Synapse's username picker does
	}
	u.Claims.DisplayName = config.UpstreamClaim{Template: template("display_name_template", m.DisplayNameTemplate), Action: config.ClaimForce}
	if u.Claims.DisplayName.Template == "" {
		u.Claims.DisplayName.Action = config.ClaimIgnore
	}
	u.Claims.Email = config.UpstreamClaim{Template: template("email_template", m.EmailTemplate), Action: config.ClaimForce}
	if u.Claims.Email.Template == "" {
		u.Claims.Email.Action = config.ClaimIgnore
	}
	if p.UserMapping.Module != "" && p.UserMapping.Module != "synapse.handlers.oidc.JinjaOidcMappingProvider" {
		d.lose("%s: user_mapping_provider.module %s — only the default Jinja mapping is carried over", name, p.UserMapping.Module)
	}
	if len(p.AttributeRequirements) > 0 {
		d.lose("%s: attribute_requirements — not carried over", name)
	}
	if p.ClientSecretJWTKey != nil {
		u.TokenEndpointAuthMethod, u.ClientSecret, u.ClientSecretFile = "private_key_jwt", "", ""
		u.PrivateKeyFile = "/path/to/" + u.ID + "-client-key.pem"
		d.lose("%s: client_secret_jwt_key (private_key_jwt) — write its key to a PEM file and set private_key_file", name)
	}
	if p.AllowExistingUsers {
		d.lose("%s: allow_existing_users — a person links an upstream identity to an existing account by signing in to it", name)
	}
	if p.BackchannelLogoutEnabled {
		u.OnBackchannelLogout = config.BackchannelBrowserOnly
		d.choose("%s: backchannel_logout_enabled — on_backchannel_logout: logout_browser_only (logout_all also ends the OAuth and compat sessions)", name)
	} else {
		u.OnBackchannelLogout = config.BackchannelDoNothing
	}
	return u
}

// providerID makes a Synapse idp_id an upstream provider id (letters,
// digits, '-' and '_'): its other characters become '-'.
func providerID(idp string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, idp)
}

// providerProblems is what configuration check says of a provider alone.
func providerProblems(p config.UpstreamProvider) []string {
	c := config.Default()
	c.Upstream.Providers = []config.UpstreamProvider{p}
	err := c.Validate()
	if err == nil {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if strings.HasPrefix(line, "upstream.providers[0]") {
			out = append(out, strings.TrimPrefix(line, "upstream.providers[0]."))
		}
	}
	return out
}

// listNotCarried lists Synapse settings with no counterpart.
func (d *Derived) listNotCarried(hs *Homeserver) {
	if hs.AllowGuestAccess {
		d.lose("allow_guest_access — Gatehouse has no guest accounts")
	}
	if hs.RegistrationSharedSecret {
		d.lose("registration_shared_secret — administrators add users with `gatehouse user add`")
	}
	if hs.UserConsent != nil {
		d.lose("user_consent — publish the terms and set branding.terms_uri; people accept them when they create an account")
	}
	if hs.EnableRegistrationCaptcha {
		d.lose("enable_registration_captcha (reCAPTCHA) — Gatehouse's registration has no CAPTCHA of its own yet")
	}
	for _, s := range []struct {
		on   bool
		name string
	}{{hs.CASEnabled, "cas_config"}, {hs.SAML2Enabled, "saml2_config"}, {hs.JWTEnabled, "jwt_config"}} {
		if s.on {
			d.lose("%s — Gatehouse signs people in with OIDC and OAuth 2.0 providers only (bridge it with one, e.g. Dex)", s.name)
		}
	}
	for _, m := range hs.PasswordProviders {
		d.lose("module %s — password checks by modules (LDAP, …) do not carry over", m)
	}
	if len(hs.SessionLifetimes) > 0 {
		d.lose("%s — Gatehouse has oauth.access_token_ttl; refresh tokens last until the session ends", strings.Join(hs.SessionLifetimes, ", "))
	}
	if hs.LoginViaExistingSession {
		d.lose("login_via_existing_session — signing in a new device is the device authorization flow in Gatehouse")
	}
}

// listSynapseSteps lists what homeserver.yaml needs for delegation.
func (d *Derived) listSynapseSteps(hs *Homeserver) {
	d.SynapseSteps = append(d.SynapseSteps,
		"matrix_authentication_service: {enabled: true, endpoint: "+d.Config.PublicURL+", secret: <matrix.secret above>}")
	var remove []string
	for _, s := range []struct {
		on   bool
		name string
	}{
		{hs.EnableRegistration, "enable_registration"}, {hs.UserConsent != nil, "user_consent"},
		{hs.EnableRegistrationCaptcha, "enable_registration_captcha"}, {len(hs.OIDCProviders) > 0, "oidc_providers / oidc_config"},
		{hs.CASEnabled, "cas_config"}, {hs.SAML2Enabled, "saml2_config"}, {hs.JWTEnabled, "jwt_config"},
		{len(hs.PasswordProviders) > 0, "password modules"}, {hs.LoginViaExistingSession, "login_via_existing_session"},
		{hs.Enable3PIDChanges != nil && *hs.Enable3PIDChanges, "enable_3pid_changes"},
		{hs.AllowGuestAccess, "allow_guest_access"},
	} {
		if s.on {
			remove = append(remove, s.name)
		}
	}
	remove = append(remove, hs.SessionLifetimes...)
	if hs.Password.Enabled {
		remove = append(remove, "password_config.enabled (set it to false)")
	}
	if len(remove) > 0 {
		d.SynapseSteps = append(d.SynapseSteps, "turn off or remove: "+strings.Join(remove, ", "))
	}
}

// reverts put a derived setting back to the base value when Gatehouse
// refuses it, by configuration key.
var reverts = map[string]func(derived, base *config.Config){
	"public_url":            func(d, b *config.Config) { d.PublicURL = b.PublicURL },
	"matrix.homeserver_url": func(d, b *config.Config) { d.Matrix.HomeserverURL = b.Matrix.HomeserverURL },
	"smtp.url":              func(d, b *config.Config) { d.SMTP.URL = b.SMTP.URL },
	"email.from":            func(d, b *config.Config) { d.Email.From = b.Email.From },
	"branding.service_name": func(d, b *config.Config) { d.Branding.ServiceName = b.Branding.ServiceName },
}

// fit validates the derived configuration; a derived value Gatehouse
// refuses goes back to its default and is listed as not carried over.
func (d *Derived) fit() error {
	base := config.Default()
	for range 2 {
		err := d.Config.Validate()
		if err == nil {
			return nil
		}
		reverted := false
		for line := range strings.SplitSeq(err.Error(), "\n") {
			key, problem, _ := strings.Cut(line, ": ")
			if key == "matrix.server_name" {
				return fmt.Errorf("Synapse's server_name %q: %s", d.Config.Matrix.ServerName, problem)
			}
			if revert, ok := reverts[key]; ok {
				revert(&d.Config, &base)
				d.lose("%s: %s — left at its default", key, problem)
				reverted = true
			}
			if key == "email.from" && d.Config.SMTP.URL != base.SMTP.URL {
				d.Config.SMTP.URL = base.SMTP.URL
				d.lose("smtp.url — left out too: Gatehouse sends email only with a valid email.from")
			}
		}
		if !reverted {
			return fmt.Errorf("the derived configuration is not valid: %w", err)
		}
	}
	return errors.New("the derived configuration is not valid")
}

// YAML returns the configuration as an annotated file: a header naming the
// source, the configuration with every key documented, then as comments
// what was chosen, what was not carried over, the upstream providers'
// drafts and the steps on Synapse's side.
func (d *Derived) YAML(source string) ([]byte, error) {
	body, err := d.Config.YAML()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Derived from Synapse's %s by `gatehouse config generate --synapse-config`.\n", source)
	b.WriteString("# Review the settings listed at the end (\"chosen for you\") before using it.\n#\n")
	b.Write(body)
	comment := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n# %s\n", title)
		for _, l := range lines {
			fmt.Fprintf(&b, "#   - %s\n", l)
		}
	}
	comment("Chosen for you (check them):", d.Chosen)
	comment("Not carried over from Synapse:", d.NotCarried)
	if len(d.Drafts) > 0 {
		var drafts []config.UpstreamProvider
		var problems []string
		for _, dr := range d.Drafts {
			drafts = append(drafts, dr.Provider)
			for _, p := range dr.Problems {
				problems = append(problems, fmt.Sprintf("%s: %s", dr.Provider.ID, p))
			}
		}
		var draft bytes.Buffer
		enc := yaml.NewEncoder(&draft)
		enc.SetIndent(2)
		if err := enc.Encode(map[string]any{"upstream": map[string]any{"providers": drafts}}); err != nil {
			return nil, fmt.Errorf("upstream providers: %w", err)
		}
		enc.Close()
		b.WriteString("\n# Upstream identity providers from Synapse's oidc_providers that are not valid\n" +
			"# as they are, commented out: fix what is listed, then move them into\n" +
			"# upstream.providers above. synapse_idp_id is the auth_provider Synapse stored in\n" +
			"# user_external_ids: the SSO links the migration imports belong to the provider\n" +
			"# that names it.\n#\n")
		for _, p := range problems {
			b.WriteString("#   - " + p + "\n")
		}
		b.WriteString("#\n")
		for line := range strings.SplitSeq(strings.TrimRight(draft.String(), "\n"), "\n") {
			b.WriteString("# " + line + "\n")
		}
	}
	comment("Then, in Synapse's homeserver.yaml:", d.SynapseSteps)
	return b.Bytes(), nil
}
