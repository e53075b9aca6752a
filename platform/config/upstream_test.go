package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpstreamSection(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(dir, "key.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	notKey := filepath.Join(dir, "not.pem")
	os.WriteFile(notKey, []byte("hello"), 0o600)
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("s3cret\n"), 0o600)

	good := UpstreamProvider{ID: "google", Issuer: "https://accounts.google.com", ClientID: "abc", ClientSecret: "s3cret"}
	off := false
	github := UpstreamProvider{ID: "github", Discovery: &off, ClientID: "abc", ClientSecret: "x",
		AuthorizationEndpoint: "https://github.com/login/oauth/authorize", TokenEndpoint: "https://github.com/login/oauth/access_token",
		UserinfoEndpoint: "https://api.github.com/user", Scopes: []string{"read:user"},
		Claims: UpstreamClaims{Subject: UpstreamClaim{Template: "{{ user.id }}"}, Localpart: UpstreamClaim{Template: "{{ user.login | lower }}", Action: "force"}}}
	edit := func(p UpstreamProvider, f func(*UpstreamProvider)) []UpstreamProvider {
		f(&p)
		return []UpstreamProvider{p}
	}
	tests := []struct {
		name      string
		providers []UpstreamProvider
		want      string // substring of the error; empty: valid
	}{
		{"none", nil, ""},
		{"an OIDC provider", []UpstreamProvider{good}, ""},
		{"a plain OAuth 2.0 provider", []UpstreamProvider{github}, ""},
		{"two providers", []UpstreamProvider{good, github}, ""},
		{"secret from a file", edit(good, func(p *UpstreamProvider) { p.ClientSecret, p.ClientSecretFile = "", secretFile }), ""},
		{"private_key_jwt", edit(good, func(p *UpstreamProvider) { p.ClientSecret, p.PrivateKeyFile = "", keyFile }), ""},
		{"public client", edit(good, func(p *UpstreamProvider) { p.ClientSecret = "" }), ""},
		{"loopback http issuer", edit(good, func(p *UpstreamProvider) { p.Issuer = "http://127.0.0.1:5556/dex" }), ""},
		{"bad id", edit(good, func(p *UpstreamProvider) { p.ID = "a.b" }), "upstream.providers[0].id"},
		{"duplicate id", []UpstreamProvider{good, good}, "defined twice"},
		{"duplicate synapse id", []UpstreamProvider{edit(good, func(p *UpstreamProvider) { p.SynapseIdpID = "oidc-x" })[0],
			edit(github, func(p *UpstreamProvider) { p.SynapseIdpID = "oidc-x" })[0]}, "named by two providers"},
		{"no issuer", edit(good, func(p *UpstreamProvider) { p.Issuer = "" }), ".issuer: is required with discovery"},
		{"http issuer", edit(good, func(p *UpstreamProvider) { p.Issuer = "http://accounts.example.com" }), "https"},
		{"no endpoints", edit(github, func(p *UpstreamProvider) { p.TokenEndpoint = "" }), ".token_endpoint: is required"},
		{"no userinfo", edit(github, func(p *UpstreamProvider) { p.UserinfoEndpoint = "" }), ".userinfo_endpoint"},
		{"openid without jwks", edit(github, func(p *UpstreamProvider) { p.Scopes = []string{"openid"} }), ".jwks_uri"},
		{"no client id", edit(good, func(p *UpstreamProvider) { p.ClientID = "" }), ".client_id: is required"},
		{"secret twice", edit(good, func(p *UpstreamProvider) { p.ClientSecretFile = secretFile }), "not both"},
		{"missing secret file", edit(good, func(p *UpstreamProvider) { p.ClientSecret, p.ClientSecretFile = "", filepath.Join(dir, "nope") }), "client_secret_file"},
		{"basic without secret", edit(good, func(p *UpstreamProvider) { p.ClientSecret, p.TokenEndpointAuthMethod = "", "client_secret_post" }), "is required for client_secret_post"},
		{"bad key file", edit(good, func(p *UpstreamProvider) { p.ClientSecret, p.PrivateKeyFile = "", notKey }), "no PEM block"},
		{"private_key_jwt without key", edit(good, func(p *UpstreamProvider) { p.ClientSecret, p.TokenEndpointAuthMethod = "", "private_key_jwt" }), "private_key_file"},
		{"public client without PKCE", edit(good, func(p *UpstreamProvider) { p.ClientSecret, p.PKCE = "", "never" }), "must use PKCE"},
		{"unknown method", edit(good, func(p *UpstreamProvider) { p.TokenEndpointAuthMethod = "magic" }), "token_endpoint_auth_method"},
		{"bad pkce", edit(good, func(p *UpstreamProvider) { p.PKCE = "plain" }), ".pkce"},
		{"bad response mode", edit(good, func(p *UpstreamProvider) { p.ResponseMode = "fragment" }), ".response_mode"},
		{"bad logout", edit(good, func(p *UpstreamProvider) { p.OnBackchannelLogout = "all" }), ".on_backchannel_logout"},
		{"bad template", edit(good, func(p *UpstreamProvider) { p.Claims.Localpart.Template = "{{ user.email.split('@')[0] }}" }), ".claims.localpart.template"},
		{"bad action", edit(good, func(p *UpstreamProvider) { p.Claims.Email.Action = "import" }), ".claims.email.action"},
		{"bad scope", edit(good, func(p *UpstreamProvider) { p.Scopes = []string{"openid", "a b"} }), ".scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Upstream.Providers = tt.providers
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestUpstreamDefaultsAndRedaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	yaml := `upstream:
  providers:
    - id: keycloak
      issuer: https://sso.example.com/realms/acme
      client_id: gatehouse
      client_secret: very-secret-value
      claims:
        localpart:
          template: "{{ user.preferred_username | lower }}"
          action: force
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := c.Upstream.Provider("keycloak")
	if !ok {
		t.Fatal("provider keycloak not found")
	}
	if !p.DiscoveryEnabled() || p.TokenEndpointAuthMethod != "client_secret_basic" || p.PKCE != "auto" || p.ResponseMode != "query" ||
		p.OnBackchannelLogout != BackchannelBrowserOnly || strings.Join(p.Scopes, " ") != "openid profile email" || p.HumanName != "keycloak" {
		t.Errorf("defaults not applied: %+v", p)
	}
	if p.Claims.Localpart.Action != ClaimForce || p.Claims.Subject.Template != "{{ user.sub }}" || p.Claims.Subject.Action != ClaimRequire ||
		p.Claims.Email.Action != ClaimSuggest {
		t.Errorf("claim defaults not applied: %+v", p.Claims)
	}
	if _, ok := c.Upstream.Provider("nope"); ok {
		t.Error("an unknown provider was found")
	}
	if s := c.String(); strings.Contains(s, "very-secret-value") {
		t.Errorf("the printed configuration shows the client secret:\n%s", s)
	}
}
