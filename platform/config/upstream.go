package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"gatehouse.dev/platform/claimtemplate"
)

// Upstream configures sign-in with upstream identity providers (OpenID
// Connect providers, or plain OAuth 2.0 providers with a userinfo endpoint).
// Providers are a YAML list only: like oauth.clients, they have no
// environment variables; their secrets can come from files
// (client_secret_file, private_key_file).
type Upstream struct {
	// Providers are the upstream identity providers people may sign in with.
	Providers []UpstreamProvider `yaml:"providers,omitempty"`
}

// UpstreamProvider is one upstream identity provider.
type UpstreamProvider struct {
	// ID names the provider in URLs (/upstream/callback/<id>), links and
	// events: letters, digits, '-' and '_'. Changing it orphans its links.
	ID string `yaml:"id"`
	// SynapseIdpID is the auth_provider Synapse stored in user_external_ids
	// ("oidc-<idp_id>", or "oidc" for the legacy provider): links imported
	// from Synapse under that name belong to this provider.
	SynapseIdpID string `yaml:"synapse_idp_id,omitempty"`
	// HumanName is the provider's name on the sign-in button.
	HumanName string `yaml:"human_name,omitempty"`
	// Brand picks the button's look: google, github, gitlab, apple,
	// facebook, twitter, microsoft, or anything else for a plain button.
	Brand string `yaml:"brand,omitempty"`
	// Issuer is the provider's issuer: with discovery, its
	// /.well-known/openid-configuration gives the endpoints; the ID token's
	// iss must equal it.
	Issuer string `yaml:"issuer,omitempty"`
	// Discovery reads the endpoints from the issuer's discovery document; on
	// by default. Off, the endpoints below are given by hand (plain OAuth 2.0
	// providers such as GitHub).
	Discovery *bool `yaml:"discovery,omitempty"`
	// The provider's endpoints, when Discovery is off (each may also replace
	// the discovered one).
	AuthorizationEndpoint string `yaml:"authorization_endpoint,omitempty"`
	TokenEndpoint         string `yaml:"token_endpoint,omitempty"`
	UserinfoEndpoint      string `yaml:"userinfo_endpoint,omitempty"`
	JWKSURI               string `yaml:"jwks_uri,omitempty"`
	// FetchUserinfo asks the userinfo endpoint for claims after the code
	// exchange, over those of the ID token (always, without openid).
	FetchUserinfo bool `yaml:"fetch_userinfo,omitempty"`
	// ClientID is Gatehouse's client id at the provider.
	ClientID string `yaml:"client_id"`
	// ClientSecret, or the file holding it (ClientSecretFile), authenticates
	// Gatehouse at the provider's token endpoint (client_secret_basic or
	// client_secret_post). Never logged.
	ClientSecret     Secret `yaml:"client_secret,omitempty"`
	ClientSecretFile string `yaml:"client_secret_file,omitempty"`
	// TokenEndpointAuthMethod is client_secret_basic (the default with a
	// secret), client_secret_post, private_key_jwt (with PrivateKeyFile) or
	// none (a public client: PKCE only).
	TokenEndpointAuthMethod string `yaml:"token_endpoint_auth_method,omitempty"`
	// PrivateKeyFile is a PEM private key (RSA or EC P-256/P-384) that signs
	// the client assertions of private_key_jwt.
	PrivateKeyFile string `yaml:"private_key_file,omitempty"`
	// Scopes are asked of the provider; ["openid", "profile", "email"] by default.
	Scopes []string `yaml:"scopes,omitempty"`
	// PKCE is auto (S256 when discovery says the provider supports it; the
	// default), always (S256) or never.
	PKCE string `yaml:"pkce,omitempty"`
	// ResponseMode is how the provider sends the code back: query (the
	// default) or form_post.
	ResponseMode string `yaml:"response_mode,omitempty"`
	// OnBackchannelLogout is what a back-channel logout from the provider
	// ends: logout_browser_only (the browser sessions started from that
	// upstream session; the default), logout_all (those and the OAuth and
	// compat sessions started from them) or do_nothing (refused).
	OnBackchannelLogout string `yaml:"on_backchannel_logout,omitempty"`
	// Claims map the provider's claims to the account.
	Claims UpstreamClaims `yaml:"claims"`
}

// UpstreamClaims map the provider's claims (the ID token's, and userinfo's)
// to the account, each with a template (package claimtemplate: {{ user.<claim> }}
// and filters) and an action.
type UpstreamClaims struct {
	// Subject identifies the person at the provider; {{ user.sub }} by
	// default. Its action is ignored: it is always required.
	Subject UpstreamClaim `yaml:"subject"`
	// Localpart is the Matrix username; {{ user.preferred_username }} by default.
	Localpart UpstreamClaim `yaml:"localpart"`
	// DisplayName is the display name; {{ user.name }} by default.
	DisplayName UpstreamClaim `yaml:"displayname"`
	// Email is the primary address, imported only when the provider says
	// it is verified (email_verified); {{ user.email }} by default.
	Email UpstreamClaim `yaml:"email"`
}

// UpstreamClaim is one claim mapping.
type UpstreamClaim struct {
	// Template renders the value from the claims.
	Template string `yaml:"template,omitempty"`
	// Action is ignore (not used), suggest (offered, the person may change
	// or drop it; the default), force (used as it is when present) or
	// require (used as it is; sign-in fails without it).
	Action string `yaml:"action,omitempty"`
}

// Claim actions.
const (
	ClaimIgnore  = "ignore"
	ClaimSuggest = "suggest"
	ClaimForce   = "force"
	ClaimRequire = "require"
)

// Back-channel logout behaviours.
const (
	BackchannelDoNothing   = "do_nothing"
	BackchannelBrowserOnly = "logout_browser_only"
	BackchannelAll         = "logout_all"
)

// DiscoveryEnabled reports whether the provider's endpoints come from discovery.
func (p UpstreamProvider) DiscoveryEnabled() bool { return p.Discovery == nil || *p.Discovery }

// WithDefaults returns the provider with every unset setting at its default.
func (p UpstreamProvider) WithDefaults() UpstreamProvider {
	if len(p.Scopes) == 0 {
		p.Scopes = []string{"openid", "profile", "email"}
	}
	if p.TokenEndpointAuthMethod == "" {
		switch {
		case p.PrivateKeyFile != "":
			p.TokenEndpointAuthMethod = "private_key_jwt"
		case p.ClientSecret == "" && p.ClientSecretFile == "":
			p.TokenEndpointAuthMethod = "none"
		default:
			p.TokenEndpointAuthMethod = "client_secret_basic"
		}
	}
	if p.PKCE == "" {
		p.PKCE = "auto"
	}
	if p.ResponseMode == "" {
		p.ResponseMode = "query"
	}
	if p.OnBackchannelLogout == "" {
		p.OnBackchannelLogout = BackchannelBrowserOnly
	}
	if p.HumanName == "" {
		p.HumanName = p.ID
	}
	def := func(c *UpstreamClaim, template string) {
		if c.Template == "" {
			c.Template = template
		}
		if c.Action == "" {
			c.Action = ClaimSuggest
		}
	}
	def(&p.Claims.Subject, "{{ user.sub }}")
	p.Claims.Subject.Action = ClaimRequire
	def(&p.Claims.Localpart, "{{ user.preferred_username }}")
	def(&p.Claims.DisplayName, "{{ user.name }}")
	def(&p.Claims.Email, "{{ user.email }}")
	return p
}

// ReadClientSecret returns the client secret, from the configuration or its file.
func (p UpstreamProvider) ReadClientSecret() (string, error) {
	if p.ClientSecretFile == "" {
		return string(p.ClientSecret), nil
	}
	b, err := os.ReadFile(p.ClientSecretFile)
	if err != nil {
		return "", fmt.Errorf("upstream provider %s: client_secret_file: %w", p.ID, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// ReadPrivateKey returns the private key of private_key_jwt, parsed from
// its PEM file (PKCS#8, PKCS#1 or SEC 1).
func (p UpstreamProvider) ReadPrivateKey() (any, error) {
	b, err := os.ReadFile(p.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("upstream provider %s: private_key_file: %w", p.ID, err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("upstream provider %s: private_key_file: no PEM block", p.ID)
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("upstream provider %s: private_key_file: not an RSA or EC private key", p.ID)
}

// Provider returns the provider with id (defaults applied), if configured.
func (u Upstream) Provider(id string) (UpstreamProvider, bool) {
	for _, p := range u.Providers {
		if p.ID == id {
			return p.WithDefaults(), true
		}
	}
	return UpstreamProvider{}, false
}

var upstreamID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validateUpstream adds the problems of the upstream section.
func (p *problems) validateUpstream(u Upstream) {
	seen, seenIdp := map[string]bool{}, map[string]bool{}
	for i, raw := range u.Providers {
		f := fmt.Sprintf("upstream.providers[%d]", i)
		if !upstreamID.MatchString(raw.ID) {
			p.add(f+".id", "%q must be 1 to 64 letters, digits, '-' or '_'", raw.ID)
		} else if seen[raw.ID] {
			p.add(f+".id", "%q is defined twice", raw.ID)
		}
		seen[raw.ID] = true
		if raw.SynapseIdpID != "" {
			if seenIdp[raw.SynapseIdpID] {
				p.add(f+".synapse_idp_id", "%q is named by two providers", raw.SynapseIdpID)
			}
			seenIdp[raw.SynapseIdpID] = true
		}
		c := raw.WithDefaults()
		if len(c.HumanName) > 64 {
			p.add(f+".human_name", "is longer than 64 characters")
		}
		openid := slices.Contains(c.Scopes, "openid")
		if c.DiscoveryEnabled() {
			if c.Issuer == "" {
				p.add(f+".issuer", "is required with discovery")
			}
		} else {
			if c.AuthorizationEndpoint == "" {
				p.add(f+".authorization_endpoint", "is required without discovery")
			}
			if c.TokenEndpoint == "" {
				p.add(f+".token_endpoint", "is required without discovery")
			}
			if openid && c.JWKSURI == "" {
				p.add(f+".jwks_uri", "is required without discovery when the openid scope is asked (to verify ID tokens)")
			}
			if !openid && c.UserinfoEndpoint == "" {
				p.add(f+".userinfo_endpoint", "is required without the openid scope (the claims come from it)")
			}
			if openid && c.Issuer == "" {
				p.add(f+".issuer", "is required when the openid scope is asked (the ID token's iss must equal it)")
			}
		}
		if c.FetchUserinfo && c.UserinfoEndpoint == "" && !c.DiscoveryEnabled() {
			p.add(f+".userinfo_endpoint", "is required with fetch_userinfo and without discovery")
		}
		for key, v := range map[string]string{"issuer": c.Issuer, "authorization_endpoint": c.AuthorizationEndpoint,
			"token_endpoint": c.TokenEndpoint, "userinfo_endpoint": c.UserinfoEndpoint, "jwks_uri": c.JWKSURI} {
			if v != "" {
				p.check(f+"."+key, checkProviderURL(v))
			}
		}
		if c.ClientID == "" {
			p.add(f+".client_id", "is required")
		}
		if c.ClientSecret != "" && c.ClientSecretFile != "" {
			p.add(f+".client_secret", "give client_secret or client_secret_file, not both")
		}
		switch c.TokenEndpointAuthMethod {
		case "client_secret_basic", "client_secret_post":
			secret, err := c.ReadClientSecret()
			if err != nil {
				p.add(f+".client_secret_file", "%v", err)
			} else if secret == "" {
				p.add(f+".client_secret", "is required for %s", c.TokenEndpointAuthMethod)
			}
		case "private_key_jwt":
			if c.PrivateKeyFile == "" {
				p.add(f+".private_key_file", "is required for private_key_jwt")
			} else if _, err := c.ReadPrivateKey(); err != nil {
				p.add(f+".private_key_file", "%v", err)
			}
		case "none":
			if c.PKCE == "never" {
				p.add(f+".pkce", "a public client (none) must use PKCE")
			}
		default:
			p.add(f+".token_endpoint_auth_method", "%q must be client_secret_basic, client_secret_post, private_key_jwt or none", c.TokenEndpointAuthMethod)
		}
		for _, s := range c.Scopes {
			if !scopeTokens.MatchString(s) || s == "" || strings.Contains(s, " ") {
				p.add(f+".scopes", "%q is not a scope token", s)
			}
		}
		p.oneOf(f+".pkce", c.PKCE, "auto", "always", "never")
		p.oneOf(f+".response_mode", c.ResponseMode, "query", "form_post")
		p.oneOf(f+".on_backchannel_logout", c.OnBackchannelLogout, BackchannelDoNothing, BackchannelBrowserOnly, BackchannelAll)
		for name, claim := range map[string]UpstreamClaim{"subject": c.Claims.Subject, "localpart": c.Claims.Localpart,
			"displayname": c.Claims.DisplayName, "email": c.Claims.Email} {
			key := f + ".claims." + name
			if _, err := claimtemplate.Parse(claim.Template); err != nil {
				p.add(key+".template", "%v", err)
			}
			p.oneOf(key+".action", claim.Action, ClaimIgnore, ClaimSuggest, ClaimForce, ClaimRequire)
		}
	}
}
