package synapse

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gatehouse.dev/platform/config"
)

// contains reports whether some line of lines holds part.
func contains(lines []string, part string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, part) })
}

func TestDeriveConfig(t *testing.T) {
	hs, err := ReadHomeserver("testdata/homeserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := DeriveConfig(hs, config.Default())
	if err != nil {
		t.Fatal(err)
	}
	c := d.Config
	checks := []struct {
		name      string
		got, want any
	}{
		{"server name", c.Matrix.ServerName, "example.org"},
		{"issuer suggestion", c.PublicURL, "https://auth.example.org/"},
		{"homeserver url", c.Matrix.HomeserverURL, "https://matrix.example.org/"},
		{"smtp", c.SMTP.URL, "smtp://matrix%40example.org:smtp%20p%40ss@mail.example.org:587"},
		{"sender", c.Email.From, "Your Friendly Example Chat homeserver <noreply@example.org>"},
		{"service name", c.Branding.ServiceName, "Example Chat"},
		{"registration", c.Account.Registration, "token"},
		{"pepper", string(c.Passwords.BcryptPepper), "EVEN_MORE_SECRET"},
		{"matrix secret length", len(c.Matrix.Secret) >= 32, true},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
	for _, part := range []string{"public_url", "matrix.homeserver_url", "matrix.secret", "passwords.bcrypt_pepper"} {
		if !contains(d.Chosen, part) {
			t.Errorf("chosen lacks %s: %q", part, d.Chosen)
		}
	}
	for _, part := range []string{"password_config.policy (minimum_length 12, require_digit, require_lowercase)",
		"registration_shared_secret", "user_consent", "enable_registration_captcha", "saml2_config",
		"ldap_auth_provider", "refresh_token_lifetime, session_lifetime"} {
		if !contains(d.NotCarried, part) {
			t.Errorf("not carried lacks %q: %q", part, d.NotCarried)
		}
	}
	if !contains(d.SynapseSteps, "matrix_authentication_service") || !contains(d.SynapseSteps, "enable_registration") {
		t.Errorf("Synapse steps: %q", d.SynapseSteps)
	}
	providers := d.Config.Upstream.Providers
	if len(providers) != 2 || len(d.Drafts) != 0 {
		t.Fatalf("providers %+v, drafts %+v", providers, d.Drafts)
	}
	gh := providers[0]
	if gh.ID != "github" || gh.SynapseIdpID != "oidc-github" || gh.DiscoveryEnabled() || gh.ClientSecret != "gh-client-secret" ||
		gh.Claims.Subject.Template != "{{ user.id }}" || gh.Claims.Localpart != (config.UpstreamClaim{Template: "{{ user.login }}", Action: "force"}) ||
		gh.Claims.Email.Action != "ignore" {
		t.Errorf("github: %+v", gh)
	}
	if g := providers[1]; g.SynapseIdpID != "oidc-google" || !g.DiscoveryEnabled() || g.Claims.Subject.Template != "{{ user.sub }}" ||
		g.Claims.Email != (config.UpstreamClaim{Template: "{{ user.email }}", Action: "force"}) ||
		g.Claims.Localpart.Template != "{{ user.given_name|lower }}" {
		t.Errorf("google: %+v", g)
	}

	// The file loads as it is, equal to the derived configuration: the
	// providers are real, checked by config check.
	out, err := d.YAML("testdata/homeserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("the generated file does not load: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(loaded, d.Config) {
		t.Errorf("loaded %#v\nwant %#v", loaded, d.Config)
	}
	if len(loaded.Upstream.Providers) != 2 {
		t.Errorf("the file has %d providers", len(loaded.Upstream.Providers))
	}
}

// A Synapse provider that is not valid as it is (a key to write to a file, a
// template Gatehouse cannot read) is drafted, commented out, with why; the
// file still loads.
func TestDeriveProviderDrafts(t *testing.T) {
	hs, err := ParseHomeserver([]byte(`server_name: example.org
oidc_providers:
  - idp_id: key.cloak
    idp_name: Keycloak
    issuer: "https://sso.example.org/realms/x"
    client_id: synapse
    client_secret_jwt_key: {key: "-----BEGIN PRIVATE KEY-----", jwt_header: {alg: ES256}}
    user_mapping_provider:
      config:
        localpart_template: "{{ user.email.split('@')[0] }}"
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := DeriveConfig(hs, config.Default())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Config.Upstream.Providers) != 0 || len(d.Drafts) != 1 {
		t.Fatalf("providers %+v, drafts %+v", d.Config.Upstream.Providers, d.Drafts)
	}
	dr := d.Drafts[0]
	if dr.Provider.ID != "key-cloak" || dr.Provider.SynapseIdpID != "oidc-key.cloak" || dr.Provider.TokenEndpointAuthMethod != "private_key_jwt" ||
		dr.Provider.Claims.Localpart.Template != "" || !contains(dr.Problems, "private_key_file") {
		t.Errorf("draft %+v", dr)
	}
	if !contains(d.NotCarried, "localpart_template") || !contains(d.NotCarried, "client_secret_jwt_key") {
		t.Errorf("not carried: %q", d.NotCarried)
	}
	out, err := d.YAML("inline")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "#     - id: key-cloak") || !strings.Contains(string(out), "#   - key-cloak: private_key_file") {
		t.Errorf("no commented draft:\n%s", out)
	}
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path, nil); err != nil {
		t.Fatalf("the generated file does not load: %v", err)
	}
}

func TestDeriveConfigEdgeCases(t *testing.T) {
	hs, err := ReadHomeserver("testdata/homeserver-legacy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := DeriveConfig(hs, config.Default())
	if err != nil {
		t.Fatal(err)
	}
	if d.Config.PublicURL != "https://auth.chat.example.net/" || d.Config.Matrix.ServerName != "chat.example.net:8448" ||
		d.Config.Account.Registration != "closed" || d.Config.SMTP.URL != "" || d.Config.Matrix.HomeserverURL != "" {
		t.Errorf("legacy: %+v", d.Config)
	}
	if p := d.Config.Upstream.Providers; len(p) != 1 || p[0].SynapseIdpID != "oidc" || p[0].ID != "oidc" {
		t.Errorf("legacy provider: %+v (drafts %+v)", p, d.Drafts)
	}
	for _, part := range []string{"allow_guest_access", "cas_config", "jwt_config", "login_via_existing_session"} {
		if !contains(d.NotCarried, part) {
			t.Errorf("not carried lacks %q: %q", part, d.NotCarried)
		}
	}

	// A sender Gatehouse refuses is left out, with the SMTP server, and listed.
	hs, err = ParseHomeserver([]byte("server_name: example.org\nemail: {smtp_host: mail.example.org, notif_from: 'not an address'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err = DeriveConfig(hs, config.Default())
	if err != nil {
		t.Fatal(err)
	}
	if d.Config.Email.From != "" || d.Config.SMTP.URL != "" || !contains(d.NotCarried, "email.from") || !contains(d.NotCarried, "smtp.url") {
		t.Errorf("bad sender: from %q, smtp %q, not carried %q", d.Config.Email.From, d.Config.SMTP.URL, d.NotCarried)
	}
	if err := d.Config.Validate(); err != nil {
		t.Errorf("still invalid: %v", err)
	}

	hs, err = ParseHomeserver([]byte("server_name: 'bad name!'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DeriveConfig(hs, config.Default()); err == nil || !strings.Contains(err.Error(), "bad name!") {
		t.Errorf("bad server name: %v", err)
	}
}
