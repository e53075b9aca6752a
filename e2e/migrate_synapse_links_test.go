package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"

	"gatehouse.dev/migrate/synapse"
	"gatehouse.dev/migrate/synapse/synapsetest"
	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// A Synapse user who signed in with SSO (user_external_ids: auth_provider
// oidc-test, the provider's subject) and has no password, migrated with the
// real `gatehouse migrate synapse` into a `gatehouse serve` whose upstream
// provider "test" names oidc-test as its synapse_idp_id and points at a real
// OpenID provider in the test process (testIdP). In headless Chromium:
//   - an OAuth client's sign-in, "Continue with Test IdP", the provider's own
//     login page: the imported link resolves (no first sign-in page), consent,
//     and the tokens are the imported user's;
//   - the account page lists the provider;
//   - a subject Synapse never linked gets the first sign-in page and is not
//     signed in as anybody; a deactivated Synapse user's link signs nobody in.
func TestMigrateSynapseLinkSignsIn(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The provider's people: linda (linked in Synapse), a stranger (never
	// linked), and gone (linked to a deactivated Synapse user).
	linda := idpUser{ID: "synapse-sub-linda", Username: "linda@idp.test", Password: "linda-pass", First: "Linda", Last: "Linked",
		Email: "linda@idp.test", EmailVerified: true}
	stranger := idpUser{ID: "synapse-sub-stranger", Username: "stranger@idp.test", Password: "stranger-pass", First: "Sam", Last: "Stranger",
		Email: "stranger@idp.test", EmailVerified: true}
	gone := idpUser{ID: "synapse-sub-gone", Username: "gone@idp.test", Password: "gone-pass", First: "Gone", Last: "Away",
		Email: "gone@idp.test", EmailVerified: true}
	idp := newTestIdP(t, linda, stranger, gone)

	// A Synapse database with Synapse's schema holding linda, SSO only, and
	// gone, deactivated, each with their link.
	dbURL := testkit.Postgres(t)
	if err := synapsetest.CreateSchema(ctx, dbURL, synapse.TestedSchemaVersion); err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-400 * 24 * time.Hour).Unix()
	synapseSQL(ctx, t, dbURL,
		`INSERT INTO users (name, password_hash, creation_ts, deactivated) VALUES ('@linda:example.org', NULL, $1, 0), ('@gone:example.org', NULL, $1, 1)`, created)
	synapseSQL(ctx, t, dbURL, `INSERT INTO profiles (user_id, displayname, full_user_id) VALUES ('linda', 'Linda from Synapse', '@linda:example.org')`)
	synapseSQL(ctx, t, dbURL, `INSERT INTO user_threepids (user_id, medium, address, validated_at, added_at) VALUES ('@linda:example.org', 'email', 'linda@synapse.example', $1, $1)`, created*1000)
	synapseSQL(ctx, t, dbURL, `INSERT INTO user_external_ids (auth_provider, external_id, user_id) VALUES
		('oidc-test', $1, '@linda:example.org'), ('oidc-test', $2, '@gone:example.org')`, linda.ID, gone.ID)
	hsYAML := filepath.Join(t.TempDir(), "homeserver.yaml")
	if err := os.WriteFile(hsYAML, []byte(fmt.Sprintf("server_name: example.org\noidc_providers:\n  - idp_id: test\n    idp_name: Test IdP\n    issuer: %q\n    client_id: synapse\n", idp.issuer)), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := writeConfig(t, fmt.Sprintf(`upstream:
  providers:
    - id: test
      human_name: Test IdP
      synapse_idp_id: oidc-test
      issuer: %s
      client_id: gatehouse
      client_secret: gatehouse-secret
      fetch_userinfo: true
`, idp.issuer))
	e := newOAuthEnv(t, cfg)
	idp.addClient("gatehouse", "gatehouse-secret", e.issuer+"upstream/callback/test")
	u := &upstreamEnv{oauthEnv: e, idp: idp, b: newBrowser(t), cb: newCallbackServer(t), accounts: accountsv1.NewAccountsServiceClient(e.conn)}
	u.client = e.client
	u.client.RedirectURL = u.cb.redirectURL()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})

	// The real migration, without --ignore-missing-auth-providers: the
	// check finds the links' provider configured.
	code, out, errOut := runCLI(t, e.s.cmd.Env, "migrate", "synapse", "--synapse-database", dbURL, "--synapse-config", hsYAML,
		"--format", "json", "--grpc", e.s.grpc)
	if code != 0 || strings.Contains(out, string(synapse.CodeProviderNotConfigured)) {
		t.Fatalf("migrate synapse: exit %d\n%s\n%s", code, tail(out), errOut)
	}
	lindaUser := u.userByName(t, "linda")
	if lindaUser.GetHasPassword() {
		t.Fatal("linda has a password: the sign-in below would not prove the link")
	}
	links := u.links(t, lindaUser.GetId())
	if len(links) != 1 || links[0].GetProviderId() != "test" || links[0].GetSubject() != linda.ID || links[0].GetSource() != "import" {
		t.Fatalf("linda's imported links: %v", links)
	}
	users := u.userCount(t)

	// An OAuth client's sign-in: the provider's button, its login page, and
	// the link resolves straight to consent for linda.
	verifier := oauth2.GenerateVerifier()
	if status := u.b.open("authorize", u.client.AuthCodeURL("state-linda", oauth2.S256ChallengeOption(verifier))); status != http.StatusOK ||
		!strings.Contains(u.b.location(), "/login?grant=") || !strings.Contains(u.b.text("main"), "Continue with Test IdP") {
		t.Fatalf("authorize led to %d %s\n%s", status, u.b.location(), u.b.pageText())
	}
	if status := u.signInAtIdP(t, "test", linda); status != http.StatusOK || !strings.Contains(u.b.location(), "/consent?grant=") {
		t.Fatalf("linda's sign-in with the imported link led to %d %s (want consent, not the first sign-in page)\n%s",
			status, u.b.location(), u.b.pageText())
	}
	if text := u.b.text("main"); !strings.Contains(text, "@linda:example.org") {
		t.Fatalf("consent is not for linda:\n%s", text)
	}
	u.b.page("consent-imported-link")
	tok, idt := u.exchange(t, verifier, "state-linda")
	if idt.Subject != lindaUser.GetId() {
		t.Errorf("ID token sub %s, want linda's id %s", idt.Subject, lindaUser.GetId())
	}
	if got := u.introspect(t, tok.AccessToken); got["active"] != true || got["sub"] != lindaUser.GetId() || got["username"] != "linda" {
		t.Errorf("linda's access token introspects %v", got)
	}

	// The account page lists the provider; the link is still the one imported.
	u.b.open("account", u.issuer+"account")
	text := u.b.text("main")
	if !strings.Contains(text, "@linda:example.org") || !strings.Contains(text, "Identity providers") || !strings.Contains(text, "Test IdP") {
		t.Errorf("the account page does not show linda with the provider:\n%s", text)
	}
	u.b.page("account-imported-link")
	if got := u.links(t, lindaUser.GetId()); len(got) != 1 || got[0].GetSource() != "import" {
		t.Errorf("signing in changed linda's links: %v", got)
	}

	// A subject Synapse never linked: the first sign-in page, nobody signed in.
	u.b.clearCookies()
	u.b.open("sign-in page", u.issuer+"login")
	if status := u.signInAtIdP(t, "test", stranger); status != http.StatusOK || !strings.Contains(u.b.location(), "/upstream/link") {
		t.Fatalf("the stranger's sign-in led to %d %s\n%s", status, u.b.location(), u.b.pageText())
	}
	if text := u.b.text("main"); !strings.Contains(text, "for the first time here") || strings.Contains(text, "linda") {
		t.Errorf("the stranger's first sign-in page:\n%s", text)
	}
	if u.b.open("account", u.issuer+"account"); !strings.Contains(u.b.location(), "/login?next=") {
		t.Errorf("the stranger is signed in after the provider's page: %s\n%s", u.b.location(), u.b.pageText())
	}

	// A deactivated Synapse user's link signs nobody in.
	u.b.clearCookies()
	u.b.open("sign-in page", u.issuer+"login")
	if status := u.signInAtIdP(t, "test", gone); status != http.StatusForbidden || !strings.Contains(u.b.text("main"), "locked or deactivated") {
		t.Errorf("a deactivated user's link led to %d %s\n%s", status, u.b.location(), u.b.pageText())
	}
	u.b.page("upstream-imported-link-deactivated")
	if u.b.open("account", u.issuer+"account"); !strings.Contains(u.b.location(), "/login?next=") {
		t.Errorf("a deactivated user's link signed in: %s\n%s", u.b.location(), u.b.pageText())
	}
	if n := u.userCount(t); n != users {
		t.Errorf("the refused sign-ins made users: %d, were %d", n, users)
	}
	resp, err := u.accounts.ListUpstreamLinks(ctx, &accountsv1.ListUpstreamLinksRequest{ProviderId: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range resp.GetLinks() {
		if l.GetSubject() == stranger.ID {
			t.Errorf("the stranger's subject was linked: %v", l)
		}
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// synapseSQL runs one statement in the Synapse database.
func synapseSQL(ctx context.Context, t *testing.T, url, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
