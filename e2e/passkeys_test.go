package e2e

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// newLocalhostEnv is newOAuthEnv with the public URL on localhost: WebAuthn
// accepts a domain as relying party, never an IP address.
func newLocalhostEnv(t *testing.T, redirectURL string, env ...string) *oauthEnv {
	t.Helper()
	addrs := freeAddrs(t, 3)
	s := &server{grpc: addrs[0], http: addrs[1], ops: addrs[2], dataDir: dataDir(t)}
	port := s.http[strings.LastIndex(s.http, ":")+1:]
	issuer := "http://localhost:" + port + "/"
	base := append(os.Environ(),
		"GATEHOUSE_DATA_DIR="+s.dataDir,
		"GATEHOUSE_GRPC_ADDR="+s.grpc,
		"GATEHOUSE_HTTP_ADDR="+s.http,
		"GATEHOUSE_OPS_ADDR="+s.ops,
		"GATEHOUSE_PUBLIC_URL="+issuer,
		"GATEHOUSE_LOG_LEVEL=warn",
		"GATEHOUSE_RATE_LIMIT_AUTHORIZATION_BURST=100000",
		"GATEHOUSE_MATRIX_SECRET="+homeserverSecret,
		"GATEHOUSE_MATRIX_SERVER_NAME=example.org",
	)
	startServeOn(t, s, append(base, env...))
	e := &oauthEnv{s: s, issuer: issuer}
	ctx := context.Background()
	var err error
	if e.provider, err = oidc.NewProvider(ctx, issuer); err != nil {
		t.Fatalf("discovery: %v", err)
	}
	reg := e.register(t, map[string]any{
		"client_name": "Test Client", "client_uri": "https://client.example.com/", "redirect_uris": []string{redirectURL},
		"application_type": "native", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	}, http.StatusCreated)
	e.client = oauth2.Config{ClientID: reg["client_id"].(string), Endpoint: e.provider.Endpoint(), RedirectURL: redirectURL,
		Scopes: []string{oidc.ScopeOpenID, "urn:matrix:client:api:*"}}
	e.conn = s.dial(t)
	resp, err := accountsv1.NewAccountsServiceClient(e.conn).Register(ctx, &accountsv1.RegisterRequest{Username: "alice", Password: "alice's password"})
	if err != nil {
		t.Fatal(err)
	}
	e.user = resp.GetUser()
	return e
}

// virtualAuthenticator gives the browser a platform authenticator that keeps
// discoverable credentials and verifies the user: Chromium's real WebAuthn
// stack answers the pages, through the DevTools WebAuthn domain.
func virtualAuthenticator(b *browser) webauthn.AuthenticatorID {
	b.t.Helper()
	var id webauthn.AuthenticatorID
	b.do("add a virtual authenticator", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := cdp.Call(ctx, t, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: "ctap2_1", Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
		id = res.AuthenticatorID
		return err
	}))
	return id
}

// presence makes the virtual authenticator answer (a person touching it)
// or not (nobody there: requests stay pending).
func presence(b *browser, id webauthn.AuthenticatorID, on bool) {
	b.t.Helper()
	b.do("set the authenticator's presence", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, webauthn.SetAutomaticPresenceSimulation, webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: id, Enabled: on})
		return err
	}))
}

// TestPasskeysInBrowser, in Chromium with a virtual authenticator: alice
// registers a passkey on the account page (and notes her recovery codes),
// signs out, signs in to an application with the passkey alone (no
// password) through a real authorization code flow; then signs in with her
// password and the passkey as her second factor; then removes the passkey.
// Each new page passes axe-core (screenshots account-security,
// passkey-new, passkey-codes, login-passkey, second-factor-passkey).
func TestPasskeysInBrowser(t *testing.T) {
	cb := newCallbackServer(t)
	e := newLocalhostEnv(t, cb.redirectURL())
	b := newBrowser(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})
	authenticator := virtualAuthenticator(b)
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	factors := func() *accountsv1.SecondFactors {
		t.Helper()
		f, err := accounts.GetSecondFactors(context.Background(), &accountsv1.GetSecondFactorsRequest{UserId: e.user.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		return f.GetFactors()
	}

	// Signed in with the password, alice opens her sign-in methods. The
	// sign-in page offers passkeys (she has none yet).
	b.open("account security signed out", e.issuer+"account/security")
	b.page("login-passkey")
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	b.submit("sign in", `form:not([data-passkey]) button[type=submit]`)
	if !strings.Contains(b.location(), "/account/security") {
		t.Fatalf("after signing in:\n%s", b.pageText())
	}
	b.page("account-security")

	b.navigate("add a passkey", chromedp.Click(chromedp.CSS(`a[href$="/account/security/passkeys/new"]`)))
	b.page("passkey-new")
	b.fill("passkey_name", "Test key")
	b.submit("register the passkey", `form[data-passkey] button[type=submit]`)
	codes := eval[int](b, `document.querySelectorAll(".recovery-codes li").length`)
	if codes != 10 {
		t.Fatalf("after registering, %d recovery codes shown:\n%s", codes, b.pageText())
	}
	b.page("passkey-codes")
	f := factors()
	if len(f.GetPasskeys()) != 1 || f.GetPasskeys()[0].GetName() != "Test key" || f.GetRecoveryCodesLeft() != 10 {
		t.Fatalf("factors after registering: %v", f)
	}

	// Signed out, alice signs in to an application with the passkey alone.
	b.clearCookies()
	verifier := oauth2.GenerateVerifier()
	authURL := e.client.AuthCodeURL("state-passkey", oauth2.S256ChallengeOption(verifier))
	if status := b.open("authorize", authURL); status != http.StatusOK || !strings.Contains(b.location(), "/login?grant=") {
		t.Fatalf("authorize led to %d %s", status, b.location())
	}
	// The sign-in page asks for passkeys with conditional mediation (the
	// username field's autofill); the virtual authenticator answers it at
	// once with alice's discoverable passkey, as a person picking it from
	// the autofill would, and the page goes on without a password.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.location(), "/consent?grant=") {
		if time.Now().After(deadline) {
			t.Fatalf("the passkey did not sign alice in:\n%s", b.pageText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.submit("allow", `button[value="allow"]`)
	q := cb.last(t)
	if q.Get("state") != "state-passkey" || q.Get("code") == "" {
		t.Fatalf("callback: %v", q)
	}
	tok, err := e.client.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("exchange: %v %v", tok, err)
	}
	if f := factors(); f.GetPasskeys()[0].GetLastUsedAt() == nil {
		t.Fatal("the passkey's use was not recorded")
	}

	// With the password, the passkey is asked for as the second factor
	// (the authenticator not touched meanwhile, so the sign-in page's
	// autofill request stays pending).
	presence(b, authenticator, false)
	b.clearCookies()
	b.open("authorize again", e.client.AuthCodeURL("state-2fa", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	b.submit("password", `form:not([data-passkey]) button[type=submit]`)
	if !strings.Contains(b.location(), "/login/second-factor") {
		t.Fatalf("after the password:\n%s", b.pageText())
	}
	b.page("second-factor-passkey")
	presence(b, authenticator, true)
	b.submit("passkey as second factor", `form[data-passkey] button[type=submit]`)
	if !strings.Contains(b.location(), "/consent?grant=") {
		t.Fatalf("after the passkey as second factor:\n%s", b.pageText())
	}

	// She renames it, then removes it (just signed in: no step-up needed).
	b.open("account security", e.issuer+"account/security")
	id := factors().GetPasskeys()[0].GetPasskeyId()
	b.fill("rename-"+id, "Laptop key")
	b.submit("rename the passkey", `form[action$="/passkeys/rename"] button`)
	if f := factors(); f.GetPasskeys()[0].GetName() != "Laptop key" || !strings.Contains(b.text(".notice"), "renamed") {
		t.Fatalf("after renaming: %v\n%s", f.GetPasskeys(), b.pageText())
	}
	b.page("account-security-passkey")
	b.submit("remove the passkey", `form[action$="/passkeys/remove"] button`)
	if !strings.Contains(b.text(".notice"), "removed") {
		t.Fatalf("after removing:\n%s", b.pageText())
	}
	if f := factors(); len(f.GetPasskeys()) != 0 {
		t.Fatalf("passkeys after removing: %v", f.GetPasskeys())
	}

	// An authenticator app from the account page: the QR code and the key
	// (drawn by the server), confirmed with a code computed from the key.
	b.navigate("set up an authenticator app", chromedp.Click(chromedp.CSS(`a[href$="/account/security/totp"]`)))
	if n := eval[int](b, `document.querySelectorAll(".qr svg path").length`); n != 1 {
		t.Fatalf("no QR code on the set-up page:\n%s", b.pageText())
	}
	b.page("totp-enrol")
	key := strings.ReplaceAll(b.text("#totp-key"), " ", "")
	b.fill("code", totpAt(t, key, time.Now()))
	b.submit("turn on", `form[action$="/account/security/totp"] button[type=submit]`)
	if f := factors(); !f.GetTotpEnabled() || !strings.Contains(b.location(), "/account/security") {
		t.Fatalf("after setting up the app: %v\n%s", f, b.pageText())
	}

	// The new pages in French.
	acceptLanguage(b, "fr-FR,fr;q=0.9")
	b.open("sign-in methods in French", e.issuer+"account/security")
	wantFrench(t, b, "sign-in methods", "Moyens de connexion", "Clés d’accès", "Application d’authentification", "Codes de secours")
	b.page("account-security-fr")
	b.open("new passkey in French", e.issuer+"account/security/passkeys/new")
	b.page("passkey-new-fr")
	b.open("step-up in French", e.issuer+"account/confirm?next=%2Faccount")
	wantFrench(t, b, "step-up", "Confirmez que c’est vous", "Mot de passe")
	b.page("step-up-fr")
}
