package synapse

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

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
	gh := d.Providers[0]
	if gh.ID != "github" || gh.SynapseIdpID != "oidc-github" || gh.Discovery || gh.ClientSecret != "gh-client-secret" ||
		gh.Claims.Subject.Template != "{{ user.id }}" || gh.Claims.Localpart != (ClaimImport{"{{ user.login }}", "force"}) ||
		gh.Claims.Email.Action != "ignore" {
		t.Errorf("github draft: %+v", gh)
	}
	if g := d.Providers[1]; g.SynapseIdpID != "oidc-google" || !g.Discovery || g.Claims.Subject.Template != "{{ user.sub }}" ||
		g.Claims.Email != (ClaimImport{"{{ user.email }}", "force"}) {
		t.Errorf("google draft: %+v", g)
	}

	// The file loads as it is, equal to the derived configuration, and its
	// commented upstream block parses once uncommented.
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
	_, block, ok := strings.Cut(string(out), "\n# upstream:\n")
	if !ok {
		t.Fatalf("no upstream block:\n%s", out)
	}
	var draft struct {
		Upstream struct {
			Providers []UpstreamProvider `yaml:"providers"`
		} `yaml:"upstream"`
	}
	var text []string
	text = append(text, "upstream:")
	for line := range strings.SplitSeq(block, "\n") {
		if !strings.HasPrefix(line, "#   ") && !strings.HasPrefix(line, "#     ") {
			break
		}
		text = append(text, strings.TrimPrefix(line, "# "))
	}
	if err := yaml.Unmarshal([]byte(strings.Join(text, "\n")), &draft); err != nil {
		t.Fatalf("upstream block: %v\n%s", err, strings.Join(text, "\n"))
	}
	if !reflect.DeepEqual(draft.Upstream.Providers, d.Providers) {
		t.Errorf("upstream block %+v, want %+v", draft.Upstream.Providers, d.Providers)
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
	if len(d.Providers) != 1 || d.Providers[0].SynapseIdpID != "oidc" || d.Providers[0].ID != "oidc" {
		t.Errorf("legacy provider: %+v", d.Providers)
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
