package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/migrate/synapse"
	"gatehouse.dev/migrate/synapse/synapsetest"
	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// Registration tokens of a Synapse database (registration_tokens), migrated
// with the real `gatehouse migrate synapse` into a `gatehouse serve` whose
// registration requires a token (account.registration: token), on the
// registration page:
//   - a token with uses left registers a person in headless Chromium (the
//     emailed code, then signed in), and its uses go down until none are
//     left, when it is refused;
//   - an unlimited token keeps registering;
//   - Synapse's used-up and expired tokens are refused with the page's
//     message, and so is a token that expired after the migration (having
//     worked before).
func TestMigrateSynapseRegistrationTokens(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbURL := testkit.Postgres(t)
	if err := synapsetest.CreateSchema(ctx, dbURL, synapse.TestedSchemaVersion); err != nil {
		t.Fatal(err)
	}
	e := newOAuthEnv(t, "GATEHOUSE_REGISTRATION=token", "GATEHOUSE_RATE_LIMIT_REGISTRATION_BURST=100")
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})

	// Synapse's tokens, as its admin API leaves them: five uses of which
	// three completed and one pending (two left: a pending registration
	// never finishes once Synapse delegates), unlimited, used up, expired,
	// and one that expires shortly after the migration.
	nowMS := time.Now().UnixMilli()
	expiring := time.Now().Add(25 * time.Second)
	synapseSQL(ctx, t, dbURL, `INSERT INTO registration_tokens (token, uses_allowed, pending, completed, expiry_time) VALUES
		('synapse-two-left', 5, 1, 3, $1), ('synapse-unlimited', NULL, 0, 7, NULL), ('synapse-used-up', 2, 0, 2, NULL),
		('synapse-expired', NULL, 0, 0, $2), ('synapse-expiring', 10, 0, 0, $3)`, nowMS+86400000, nowMS-1000, expiring.UnixMilli())
	code, out, errOut := runCLI(t, e.s.cmd.Env, "migrate", "synapse", "--synapse-database", dbURL, "--format", "json", "--grpc", e.s.grpc)
	if code != 0 {
		t.Fatalf("migrate synapse: exit %d\n%s\n%s", code, tail(out), errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var summary struct {
		Summary struct {
			RegistrationTokens struct {
				Imported int64 `json:"imported"`
			} `json:"registration_tokens"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &summary); err != nil || summary.Summary.RegistrationTokens.Imported != 3 {
		t.Fatalf("want the 3 usable tokens imported (%v):\n%s", err, tail(out))
	}
	if strings.Contains(out+errOut, "synapse-two-left") {
		t.Error("the migration's output shows a token")
	}
	// register posts the registration form as another person would; the
	// token is spent when the form is accepted, before the emailed code.
	register := func(token, name string) (*http.Response, string) {
		t.Helper()
		return newForm(t, e.issuer).post(t, "register", url.Values{"username": {name}, "email": {name + "@example.org"},
			"password": {"a long passphrase 42"}, "password_confirm": {"a long passphrase 42"}, "registration_token": {token}})
	}
	accepted := func(what string, resp *http.Response) {
		t.Helper()
		if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "register/verify") {
			t.Errorf("%s: %d %s", what, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	const refusal = "This registration token is not valid"
	refused := func(what string, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, refusal) {
			t.Errorf("%s: %d, want %d with %q", what, resp.StatusCode, http.StatusForbidden, refusal)
		}
	}
	// The token that expires soon works while it has not.
	resp, _ := register("synapse-expiring", "beforeexpiry")
	accepted("the expiring token before it expires", resp)
	// twoLeft is the imported token that allows two uses: its uses so far.
	twoLeft := func() int32 {
		t.Helper()
		resp, err := accounts.ListRegistrationTokens(ctx, &accountsv1.ListRegistrationTokensRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range resp.GetRegistrationTokens() {
			if tok.GetUsesAllowed() == 2 {
				return tok.GetUses()
			}
		}
		t.Fatalf("no imported token allows 2 uses: %v", resp.GetRegistrationTokens())
		return 0
	}
	if n := twoLeft(); n != 0 {
		t.Fatalf("the imported token starts with %d uses, want 0", n)
	}

	// A person registers on the page with the imported token.
	b := newBrowser(t)
	b.open("registration", e.issuer+"register")
	b.page("register-token")
	b.fill("username", "newcomer")
	b.fill("email", "newcomer@example.org")
	b.fill("password", "a long passphrase 42")
	b.fill("password_confirm", "a long passphrase 42")
	b.fill("registration_token", "synapse-two-left")
	if status := b.submit("register with the imported token", "button[type=submit]"); status != http.StatusOK || !strings.Contains(b.location(), "/register/verify") {
		t.Fatalf("registering with the imported token led to %d %s\n%s", status, b.location(), b.pageText())
	}
	b.fill("code", emailedCode(t, e.s.dataDir, "newcomer@example.org"))
	b.submit("verify", "button[type=submit]")
	if b.open("account", e.issuer+"account"); !strings.Contains(b.text("main"), "@newcomer:example.org") {
		t.Fatalf("not signed in as the new account:\n%s", b.pageText())
	}
	if n := twoLeft(); n != 1 {
		t.Errorf("after one registration the token has %d uses, want 1", n)
	}

	resp, _ = register("synapse-two-left", "second")
	accepted("the imported token's last use", resp)
	if n := twoLeft(); n != 2 {
		t.Errorf("after two registrations the token has %d uses, want 2", n)
	}
	resp, body := register("synapse-two-left", "third")
	refused("the imported token with no use left", resp, body)
	for _, name := range []string{"unlimited1", "unlimited2"} {
		resp, _ := register("synapse-unlimited", name)
		accepted("the unlimited imported token for "+name, resp)
	}
	for _, token := range []string{"synapse-used-up", "synapse-expired"} {
		resp, body := register(token, "refused")
		refused("Synapse's "+token, resp, body)
	}

	// On the page: the message next to the field.
	b.clearCookies()
	b.open("registration", e.issuer+"register")
	b.fill("username", "late")
	b.fill("email", "late@example.org")
	b.fill("password", "a long passphrase 42")
	b.fill("password_confirm", "a long passphrase 42")
	b.fill("registration_token", "synapse-used-up")
	if status := b.submit("register with a used-up token", "button[type=submit]"); status != http.StatusForbidden ||
		!strings.Contains(b.text("#registration_token-error"), refusal) {
		t.Errorf("a used-up imported token on the page: %d\n%s", status, b.pageText())
	}
	b.page("register-token-refused")

	// The token that expired after the migration.
	time.Sleep(time.Until(expiring.Add(time.Second)))
	resp, body = register("synapse-expiring", "afterexpiry")
	refused("the imported token after its expiry", resp, body)
	for _, name := range []string{"third", "refused", "late", "afterexpiry"} {
		if _, err := accounts.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: name}); err == nil {
			t.Errorf("a refused registration made the user %s", name)
		}
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}
