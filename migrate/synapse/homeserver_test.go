package synapse

import (
	"slices"
	"strings"
	"testing"
)

func TestReadHomeserver(t *testing.T) {
	hs, err := ReadHomeserver("testdata/homeserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"server_name", hs.ServerName == "example.org"},
		{"public_baseurl", hs.PublicBaseURL == "https://matrix.example.org/"},
		{"password enabled", hs.Password.Enabled && hs.Password.LocalDBEnabled},
		{"pepper", hs.Password.Pepper == "EVEN_MORE_SECRET"},
		{"policy", hs.Password.Policy.Enabled && hs.Password.Policy.MinimumLength == 12 && hs.Password.Policy.RequireDigit},
		{"bcrypt_rounds", hs.BcryptRounds == 12},
		{"smtp", hs.Email.SMTPHost == "mail.example.org" && hs.Email.SMTPPort == 587 &&
			hs.Email.SMTPUser == "matrix@example.org" && hs.Email.SMTPPass == "smtp p@ss" && hs.Email.RequireTransportSecurity},
		{"sender", hs.Email.Sender() == "Your Friendly Example Chat homeserver <noreply@example.org>"},
		{"registration", hs.EnableRegistration && hs.RegistrationRequiresToken && slices.Equal(hs.RegistrationsRequire3PID, []string{"email"})},
		{"shared secret", hs.RegistrationSharedSecret},
		{"guests", !hs.AllowGuestAccess},
		{"3pid changes", hs.Enable3PIDChanges != nil && !*hs.Enable3PIDChanges},
		{"consent", hs.UserConsent != nil && hs.UserConsent.Version == "1.0" && hs.UserConsent.RequireAtRegistration},
		{"captcha", hs.EnableRegistrationCaptcha && hs.RecaptchaPublicKey == "public-recaptcha-key"},
		{"providers", len(hs.OIDCProviders) == 2},
		{"github", hs.OIDCProviders[0].IdpID == "github" && hs.OIDCProviders[0].IdpName == "GitHub" &&
			hs.OIDCProviders[0].Discover != nil && !*hs.OIDCProviders[0].Discover &&
			hs.OIDCProviders[0].ClientSecret == "gh-client-secret" &&
			hs.OIDCProviders[0].UserMapping.Config.SubjectClaim == "id" &&
			hs.OIDCProviders[0].UserMapping.Config.LocalpartTemplate == "{{ user.login }}"},
		{"google", hs.OIDCProviders[1].Issuer == "https://accounts.google.com/" &&
			slices.Equal(hs.OIDCProviders[1].Scopes, []string{"openid", "profile", "email"}) &&
			hs.OIDCProviders[1].UserMapping.Config.EmailTemplate == "{{ user.email }}"},
		{"auth providers", slices.Equal(hs.AuthProviders(), []string{"oidc-github", "oidc-google", "saml"})},
		{"saml", hs.SAML2Enabled && !hs.CASEnabled && !hs.JWTEnabled},
		{"modules", slices.Equal(hs.PasswordProviders, []string{"ldap_auth_provider.LdapAuthProviderModule"})},
		{"lifetimes", slices.Equal(hs.SessionLifetimes, []string{"refresh_token_lifetime", "session_lifetime"})},
		{"not delegated", !hs.DelegatedAuth && !hs.LoginViaExistingSession},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not read right: %+v", c.name, hs)
		}
	}
	url, ignored, err := hs.DatabaseURL()
	if err != nil {
		t.Fatal(err)
	}
	want := "postgres://synapse_user:db%20p%40ss%2Fword@db.internal:5433/synapse?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Fdb-ca.pem"
	if url != want || !slices.Equal(ignored, []string{"keepalives_idle"}) {
		t.Errorf("DatabaseURL = %q, ignored %v; want %q", url, ignored, want)
	}
}

func TestReadLegacyHomeserver(t *testing.T) {
	hs, err := ReadHomeserver("testdata/homeserver-legacy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if hs.ServerName != "chat.example.net:8448" || !hs.Password.Enabled || !hs.CASEnabled || !hs.JWTEnabled ||
		hs.SAML2Enabled || !hs.LoginViaExistingSession || !hs.AllowGuestAccess || !hs.DelegatedAuth ||
		hs.Enable3PIDChanges == nil || !*hs.Enable3PIDChanges || hs.Email.SMTPPort != 25 || hs.BcryptRounds != 12 {
		t.Errorf("legacy config read as %+v", hs)
	}
	// The legacy section is the provider "oidc", whose links Synapse stores
	// under "oidc" itself.
	if len(hs.OIDCProviders) != 1 || hs.OIDCProviders[0].IdpID != "oidc" || hs.OIDCProviders[0].AuthProvider() != "oidc" ||
		hs.OIDCProviders[0].ClientID != "synapse" {
		t.Errorf("legacy oidc_config: %+v", hs.OIDCProviders)
	}
	if !slices.Equal(hs.AuthProviders(), []string{"oidc", "cas"}) {
		t.Errorf("auth providers %v", hs.AuthProviders())
	}
	if _, _, err := hs.DatabaseURL(); err == nil || !strings.Contains(err.Error(), "SQLite") {
		t.Errorf("SQLite database: %v", err)
	}
}

func TestParseHomeserverDatabaseArgs(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"database: {name: psycopg2, args: {user: s, database: syn, host: /var/run/postgresql}}",
			"postgres://s@/syn?host=%2Fvar%2Frun%2Fpostgresql"},
		{"database: {name: psycopg2, args: {user: s, password: pw, dbname: syn, port: 6432}}",
			"postgres://s:pw@localhost:6432/syn"},
		{"database: {name: psycopg2, args: {dbname: syn, host: '::1', port: '5432', application_name: synapse}}",
			"postgres://[::1]:5432/syn?application_name=synapse"},
	}
	for _, tt := range tests {
		hs, err := ParseHomeserver([]byte("server_name: x\n" + tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := hs.DatabaseURL()
		if err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.yaml, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "public_baseurl: https://x/", "server_name: x\npassword_config: {enabled: sometimes}", "server_name: [unclosed"} {
		if _, err := ParseHomeserver([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
