package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// upstreamEnv is a gatehouse serve whose upstream identity provider is a
// real OpenID provider in the test process (testIdP), with the client and
// the browser the steps share.
type upstreamEnv struct {
	*oauthEnv
	idp      *testIdP
	b        *browser
	cb       *callbackServer
	client   oauth2.Config
	accounts accountsv1.AccountsServiceClient
}

// The provider's people.
var (
	idpNewbie = idpUser{ID: "sub-newbie", Username: "newbie@idp.test", Password: "newbie-pass", First: "New", Last: "Person",
		Email: "newbie@idp.test", EmailVerified: true}
	idpBob   = idpUser{ID: "sub-bob", Username: "bob.idp@idp.test", Password: "bob-pass", First: "Bob", Last: "Builder", Email: "bob@idp.test"}
	idpCarol = idpUser{ID: "sub-carol", Username: "carol@idp.test", Password: "carol-pass", First: "Carol", Last: "Imported",
		Email: "carol@idp.test", EmailVerified: true}
	idpDave = idpUser{ID: "sub-dave", Username: "dave@idp.test", Password: "dave-pass", First: "Dave", Last: "Poster",
		Email: "dave@idp.test", EmailVerified: true}
)

func newUpstreamEnv(t *testing.T) *upstreamEnv {
	t.Helper()
	idp := newTestIdP(t, idpNewbie, idpBob, idpCarol, idpDave)
	cfg := writeConfig(t, fmt.Sprintf(`upstream:
  providers:
    - id: test
      human_name: Test IdP
      synapse_idp_id: oidc-test
      issuer: %[1]s
      client_id: gatehouse
      client_secret: gatehouse-secret
      fetch_userinfo: true
      on_backchannel_logout: logout_all
      claims:
        localpart:
          template: "{{ user.preferred_username | localpart | lower }}"
    - id: strict
      human_name: Strict IdP
      issuer: %[1]s
      client_id: gatehouse-strict
      client_secret: strict-secret
      fetch_userinfo: true
      claims:
        localpart:
          template: "{{ user.nickname }}"
          action: require
    - id: post
      human_name: Post IdP
      issuer: %[1]s
      client_id: gatehouse-post
      client_secret: post-secret
      response_mode: form_post
      fetch_userinfo: true
    - id: down
      human_name: Down IdP
      issuer: http://127.0.0.1:1/unreachable
      client_id: nobody
      client_secret: nothing
`, idp.issuer))
	e := newOAuthEnv(t, cfg, "GATEHOUSE_RATE_LIMIT_BACKCHANNEL_LOGOUT_BURST=16")
	idp.addClient("gatehouse", "gatehouse-secret", e.issuer+"upstream/callback/test")
	idp.addClient("gatehouse-strict", "strict-secret", e.issuer+"upstream/callback/strict")
	idp.addClient("gatehouse-post", "post-secret", e.issuer+"upstream/callback/post")
	u := &upstreamEnv{oauthEnv: e, idp: idp, b: newBrowser(t), cb: newCallbackServer(t), accounts: accountsv1.NewAccountsServiceClient(e.conn)}
	u.client = e.client
	u.client.RedirectURL = u.cb.redirectURL()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})
	for _, name := range []string{"bob", "carol"} {
		if _, err := u.accounts.Register(context.Background(), &accountsv1.RegisterRequest{Username: name, Password: name + "'s password"}); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

// TestUpstreamSignIn signs people in through a real OpenID provider (zitadel's
// OP library, with its own login page) in headless Chromium, with axe on
// every new page: a new person through the first sign-in page and consent to
// tokens that x/oauth2 and go-oidc check; the same person again straight
// through; a back-channel logout ending the browser session and the OAuth
// session started from it, and nothing else; a required claim missing, a
// nonce mismatch, a forged ID token, a cancel at the provider and a provider
// that cannot be reached, each on a clear page with nothing created; key
// rotation at the provider; linking to an existing account with its
// password and unlinking (never the last way in); a compat SSO sign-in that
// ends with m.login.token; and a link imported from Synapse signing in.
func TestUpstreamSignIn(t *testing.T) {
	start := time.Now()
	u := newUpstreamEnv(t)
	t.Logf("provider, server and browser ready in %v", time.Since(start).Round(time.Millisecond))

	first := upstreamNewUser(t, u)
	second := upstreamReturningUser(t, u)
	upstreamBackchannelLogout(t, u, first, second)
	upstreamRefusals(t, u)
	upstreamKeyRotation(t, u)
	upstreamLinkAndUnlink(t, u)
	upstreamCompatSSO(t, u)
	upstreamDeviceLink(t, u)
	upstreamFormPost(t, u)
	upstreamImportedLink(t, u)
	for _, secret := range []string{"gatehouse-secret", "strict-secret", "post-secret", idpNewbie.Password} {
		if strings.Contains(u.s.log.String(), secret) {
			t.Errorf("the process log holds %q", secret)
		}
	}
	t.Logf("upstream suite took %v", time.Since(start).Round(time.Millisecond))
}

// signInAtIdP clicks the provider's button on the current Gatehouse page and
// signs in on the provider's own login page, returning the status of the
// page the browser ends on.
func (u *upstreamEnv) signInAtIdP(t *testing.T, provider string, who idpUser) int {
	t.Helper()
	u.b.submit("continue with "+provider, `a[href*="upstream/authorize/`+provider+`"]`)
	if !strings.HasPrefix(u.b.location(), u.idp.issuer+"/login/username") {
		t.Fatalf("the button led to %s\n%s", u.b.location(), u.b.pageText())
	}
	u.b.fill("username", who.Username)
	u.b.fill("password", who.Password)
	return u.b.submit("sign in at the provider", "button[type=submit]")
}

// exchange approves the consent page and exchanges the code with x/oauth2,
// checking the ID token with go-oidc.
func (u *upstreamEnv) exchange(t *testing.T, verifier, state string) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	if !strings.Contains(u.b.location(), "/consent?grant=") {
		t.Fatalf("not on the consent page: %s\n%s", u.b.location(), u.b.pageText())
	}
	u.b.submit("allow", `button[value="allow"]`)
	q := u.cb.last(t)
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("callback: %v", q)
	}
	ctx := context.Background()
	tok, err := u.client.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := u.provider.Verifier(&oidc.Config{ClientID: u.client.ClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	return tok, idt
}

// authorize starts an authorization request in the browser and checks that
// it lands on the sign-in page, with the provider's button.
func (u *upstreamEnv) authorize(t *testing.T, state string) string {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	if status := u.b.open("authorize", u.client.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))); status != http.StatusOK ||
		!strings.Contains(u.b.location(), "/login?grant=") {
		t.Fatalf("authorize led to %d %s", status, u.b.location())
	}
	if !strings.Contains(u.b.text("main"), "Continue with Test IdP") {
		t.Fatalf("no provider button on the sign-in page:\n%s", u.b.text("main"))
	}
	return verifier
}

func (u *upstreamEnv) userByName(t *testing.T, name string) *accountsv1.User {
	t.Helper()
	resp, err := u.accounts.GetUserByUsername(context.Background(), &accountsv1.GetUserByUsernameRequest{Username: name})
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	return resp.GetUser()
}

func (u *upstreamEnv) links(t *testing.T, userID string) []*accountsv1.UpstreamLink {
	t.Helper()
	resp, err := u.accounts.ListUpstreamLinks(context.Background(), &accountsv1.ListUpstreamLinksRequest{UserId: userID})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetLinks()
}

func (u *upstreamEnv) userCount(t *testing.T) int {
	t.Helper()
	resp, err := u.accounts.ListUsers(context.Background(), &accountsv1.ListUsersRequest{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.GetUsers())
}

// A new person: the sign-in page shows the provider's button; the provider's
// login page; the first sign-in page proposes the username, display name and
// address from the provider's claims; creating the account leads to consent
// and tokens. It returns the access token.
func upstreamNewUser(t *testing.T, u *upstreamEnv) string {
	verifier := u.authorize(t, "state-new")
	u.b.page("login-with-upstream")
	if status := u.signInAtIdP(t, "test", idpNewbie); status != http.StatusOK || !strings.Contains(u.b.location(), "/upstream/link?grant=") {
		t.Fatalf("the first sign-in led to %d %s\n%s", status, u.b.location(), u.b.pageText())
	}
	text := u.b.text("main")
	for _, want := range []string{"Welcome", "You signed in with Test IdP for the first time here.", "Create an account",
		"Use New Person as my display name", "Add newbie@idp.test to my account", "I already have an account"} {
		if !strings.Contains(text, want) {
			t.Errorf("the first sign-in page lacks %q:\n%s", want, text)
		}
	}
	if got := u.b.value("username"); got != "newbie" {
		t.Errorf("suggested username %q, want newbie (the template's localpart, lower-cased)", got)
	}
	u.b.page("upstream-first-sign-in")
	u.b.submit("create the account", `button[value="create"]`)
	tok, idt := u.exchange(t, verifier, "state-new")
	newbie := u.userByName(t, "newbie")
	if idt.Subject != newbie.GetId() {
		t.Errorf("ID token sub %s, want the new user %s", idt.Subject, newbie.GetId())
	}
	var claims struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&claims); err != nil || claims.SID == "" {
		t.Errorf("the ID token has no sid (the browser session): %v", err)
	}
	if newbie.GetDisplayName() != "New Person" || newbie.GetEmail() != "newbie@idp.test" || newbie.GetHasPassword() {
		t.Errorf("new user %+v: want the display name and verified address from the provider, and no password", newbie)
	}
	links := u.links(t, newbie.GetId())
	if len(links) != 1 || links[0].GetProviderId() != "test" || links[0].GetSubject() != idpNewbie.ID || links[0].GetSource() != "registration" {
		t.Errorf("links: %v", links)
	}
	if got := u.introspect(t, tok.AccessToken); got["active"] != true || got["username"] != "newbie" {
		t.Fatalf("introspection: %v", got)
	}
	return tok.AccessToken
}

// The same person later, in a fresh browser session: straight to consent.
func upstreamReturningUser(t *testing.T, u *upstreamEnv) string {
	u.b.clearCookies()
	verifier := u.authorize(t, "state-again")
	if status := u.signInAtIdP(t, "test", idpNewbie); status != http.StatusOK {
		t.Fatalf("returning sign-in: %d\n%s", status, u.b.pageText())
	}
	tok, _ := u.exchange(t, verifier, "state-again")
	if got := u.introspect(t, tok.AccessToken); got["active"] != true || got["username"] != "newbie" {
		t.Fatalf("introspection: %v", got)
	}
	if n := len(u.links(t, u.userByName(t, "newbie").GetId())); n != 1 {
		t.Errorf("signing in again made %d links", n)
	}
	return tok.AccessToken
}

// postLogout posts a logout token to the back-channel endpoint.
func (u *upstreamEnv) postLogout(t *testing.T, provider, token string) (int, string) {
	t.Helper()
	resp, err := plainHTTP.PostForm(u.issuer+"upstream/backchannel-logout/"+provider, url.Values{"logout_token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, readAll(resp.Body)
}

// A back-channel logout naming the second sign-in's upstream session ends
// its browser session and (logout_all) the OAuth session started from it,
// and not the first sign-in's; a replay and invalid tokens are refused; a
// logout by subject alone ends the rest.
func upstreamBackchannelLogout(t *testing.T, u *upstreamEnv, first, second string) {
	sid := u.idp.sidOf(idpNewbie.ID)
	if sid == "" {
		t.Fatal("the provider gave no sid")
	}
	token := u.idp.logoutToken(t, "gatehouse", idpNewbie.ID, sid, nil)
	if status, body := u.postLogout(t, "test", token); status != http.StatusOK {
		t.Fatalf("back-channel logout: %d %s", status, body)
	}
	if status := u.b.open("account after logout", u.issuer+"account"); status != http.StatusOK || !strings.Contains(u.b.location(), "/login?next=") {
		t.Errorf("the browser is still signed in after the back-channel logout: %s", u.b.location())
	}
	if err := waitFor(20*time.Second, func() (bool, error) { return u.introspect(t, second)["active"] == false, nil }); err != nil {
		t.Errorf("the OAuth session started from the ended browser session is still active: %v", err)
	}
	if got := u.introspect(t, first); got["active"] != true {
		t.Errorf("the first sign-in's session (another upstream session) ended too: %v", got)
	}
	if status, body := u.postLogout(t, "test", token); status != http.StatusBadRequest || !strings.Contains(body, "invalid_request") {
		t.Errorf("a replayed logout token: %d %s", status, body)
	}
	for name, edit := range map[string]func(map[string]any){
		"another audience": func(c map[string]any) { c["aud"] = "someone-else" },
		"a nonce":          func(c map[string]any) { c["nonce"] = "n" },
		"no events":        func(c map[string]any) { delete(c, "events") },
		"no jti":           func(c map[string]any) { delete(c, "jti") },
		"old": func(c map[string]any) {
			c["iat"] = time.Now().Add(-time.Hour).Unix()
			c["exp"] = time.Now().Add(-50 * time.Minute).Unix()
		},
		"another issuer": func(c map[string]any) { c["iss"] = "https://evil.example" },
		"no sid nor sub": func(c map[string]any) { delete(c, "sid"); delete(c, "sub") },
	} {
		if status, body := u.postLogout(t, "test", u.idp.logoutToken(t, "gatehouse", idpNewbie.ID, sid, edit)); status != http.StatusBadRequest {
			t.Errorf("logout token with %s: %d %s", name, status, body)
		}
	}
	for name, raw := range map[string]string{"garbage": "not.a.jwt", "empty": "", "unsigned": "eyJhbGciOiJub25lIn0.e30."} {
		if status, _ := u.postLogout(t, "test", raw); status != http.StatusBadRequest {
			t.Errorf("logout token %s: %d", name, status)
		}
	}
	if status, _ := u.postLogout(t, "nosuch", token); status != http.StatusBadRequest {
		t.Errorf("logout of an unknown provider: %d", status)
	}
	// By subject alone: every browser session of that person from the provider.
	if status, body := u.postLogout(t, "test", u.idp.logoutToken(t, "gatehouse", idpNewbie.ID, "", nil)); status != http.StatusOK {
		t.Fatalf("logout by subject: %d %s", status, body)
	}
	if err := waitFor(20*time.Second, func() (bool, error) { return u.introspect(t, first)["active"] == false, nil }); err != nil {
		t.Errorf("a logout by subject left the first sign-in's OAuth session active: %v", err)
	}
	// Refused tokens are limited per address (each may fetch the provider's
	// keys again); valid ones cost nothing, and the limit is 16 here.
	limited := false
	for range 10 {
		status, _ := u.postLogout(t, "test", u.idp.logoutToken(t, "gatehouse", idpNewbie.ID, sid, func(c map[string]any) { c["aud"] = "x" }))
		if status == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("refused logout tokens are not rate-limited")
	}
}

// Refusals: each on a clear page, none creates a user or a link.
func upstreamRefusals(t *testing.T, u *upstreamEnv) {
	users := u.userCount(t)
	check := func(name string, status int, wantStatus int, want string) {
		t.Helper()
		if status != wantStatus || !strings.Contains(u.b.text("main"), want) {
			t.Errorf("%s: %d (want %d) at %s\n%s", name, status, wantStatus, u.b.location(), u.b.pageText())
		}
		u.b.page("upstream-" + strings.ReplaceAll(name, " ", "-"))
		if n := u.userCount(t); n != users {
			t.Errorf("%s created a user (%d, was %d)", name, n, users)
		}
	}
	// A required claim the provider does not give.
	u.b.clearCookies()
	u.b.open("sign-in page", u.issuer+"login")
	check("missing claim", u.signInAtIdP(t, "strict", idpNewbie), http.StatusForbidden, "did not give your username")
	// A nonce that is not the sign-in's.
	u.idp.setBadNonce(true)
	u.b.open("sign-in page", u.issuer+"login")
	check("nonce mismatch", u.signInAtIdP(t, "test", idpBob), http.StatusForbidden, "could not be verified")
	u.idp.setBadNonce(false)
	// An ID token signed with a key the provider does not publish.
	u.idp.setForge(t, true)
	u.b.open("sign-in page", u.issuer+"login")
	check("forged id token", u.signInAtIdP(t, "test", idpBob), http.StatusForbidden, "could not be verified")
	u.idp.setForge(t, false)
	// The person cancels at the provider: it sends access_denied back with
	// the sign-in's state (read here from the provider's pending request).
	u.b.open("sign-in page", u.issuer+"login")
	u.b.submit("continue with test", `a[href*="upstream/authorize/test"]`)
	loc, err := url.Parse(u.b.location())
	if err != nil {
		t.Fatal(err)
	}
	req, err := u.idp.AuthRequestByID(context.Background(), loc.Query().Get("authRequestID"))
	if err != nil {
		t.Fatalf("the provider's pending request: %v", err)
	}
	denied := u.issuer + "upstream/callback/test?" + url.Values{"error": {"access_denied"}, "state": {req.GetState()}}.Encode()
	check("denied at the provider", u.b.open("cancel at the provider", denied), http.StatusForbidden, "cancelled at Test IdP")
	// The same callback again: the attempt is spent.
	check("callback replayed", u.b.open("callback again", denied), http.StatusBadRequest, "expired")
	// A provider that cannot be reached.
	check("provider unreachable", u.b.open("unreachable provider", u.issuer+"upstream/authorize/down"), http.StatusServiceUnavailable, "cannot be reached")
	for _, provider := range []string{"strict", "test"} {
		resp, err := u.accounts.ListUpstreamLinks(context.Background(), &accountsv1.ListUpstreamLinksRequest{ProviderId: provider})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range resp.GetLinks() {
			if l.GetSubject() == idpBob.ID {
				t.Errorf("a refused sign-in linked bob's identity: %v", l)
			}
		}
	}
}

// The provider rotates its signing key: the next sign-in verifies with the
// new key (go-oidc fetches the JWKS again for an unknown key id).
func upstreamKeyRotation(t *testing.T, u *upstreamEnv) {
	u.idp.rotate(t)
	u.b.clearCookies()
	u.b.open("sign-in page", u.issuer+"login")
	if status := u.signInAtIdP(t, "test", idpNewbie); status != http.StatusOK {
		t.Fatalf("sign-in after key rotation: %d\n%s", status, u.b.pageText())
	}
	u.b.open("account", u.issuer+"account")
	if !strings.Contains(u.b.text("main"), "@newbie:example.org") {
		t.Fatalf("not signed in as newbie after the key rotation:\n%s", u.b.pageText())
	}
	// newbie has no password: the only link cannot be unlinked.
	text := u.b.text("main")
	if !strings.Contains(text, "Identity providers") || !strings.Contains(text, "Test IdP") {
		t.Errorf("the account page does not list the provider:\n%s", text)
	}
	u.b.page("account-upstream-links")
	if status := u.b.submit("unlink the only way in", `form[action$="account/upstream/unlink"] button`); status != http.StatusConflict ||
		!strings.Contains(u.b.text("main"), "only way to sign in") {
		t.Errorf("unlinking the last way in: %d\n%s", status, u.b.pageText())
	}
	if n := len(u.links(t, u.userByName(t, "newbie").GetId())); n != 1 {
		t.Errorf("the last link was removed (%d links)", n)
	}
}

// bob signs in at the provider for the first time and links the identity to
// his existing account with its password; later he unlinks it (he has a
// password, so that is allowed).
func upstreamLinkAndUnlink(t *testing.T, u *upstreamEnv) {
	u.b.clearCookies()
	verifier := u.authorize(t, "state-bob")
	if status := u.signInAtIdP(t, "test", idpBob); status != http.StatusOK || !strings.Contains(u.b.location(), "/upstream/link") {
		t.Fatalf("bob's first sign-in: %d %s\n%s", status, u.b.location(), u.b.pageText())
	}
	if text := u.b.text("main"); !strings.Contains(text, "did not say that bob@idp.test is verified") {
		t.Errorf("the unverified address is not explained:\n%s", text)
	}
	u.b.fill("link_username", "bob")
	u.b.fill("link_password", "not bob's password")
	if status := u.b.submit("link with a wrong password", `button[value="link"]`); status != http.StatusUnauthorized {
		t.Errorf("a wrong password answered %d", status)
	}
	u.b.page("upstream-link-wrong-password")
	u.b.fill("link_password", "bob's password")
	u.b.submit("link", `button[value="link"]`)
	tok, _ := u.exchange(t, verifier, "state-bob")
	if got := u.introspect(t, tok.AccessToken); got["username"] != "bob" {
		t.Fatalf("linking signed in as %v", got["username"])
	}
	bob := u.userByName(t, "bob")
	links := u.links(t, bob.GetId())
	if len(links) != 1 || links[0].GetSubject() != idpBob.ID || links[0].GetSource() != "link" {
		t.Fatalf("bob's links: %v", links)
	}
	if bob.GetEmail() != "" {
		t.Errorf("the unverified address was added: %q", bob.GetEmail())
	}
	u.b.open("account", u.issuer+"account")
	u.b.submit("unlink", `form[action$="account/upstream/unlink"] button`)
	if !strings.Contains(u.b.text("main"), "unlinked") {
		t.Errorf("no notice after unlinking:\n%s", u.b.pageText())
	}
	if n := len(u.links(t, bob.GetId())); n != 0 {
		t.Errorf("bob still has %d links", n)
	}
}

// An old Matrix client's SSO redirect: the upstream sign-in carries the
// confirmation through, and the client gets an m.login.token.
func upstreamCompatSSO(t *testing.T, u *upstreamEnv) {
	u.b.clearCookies()
	sso := u.issuer + "_matrix/client/v3/login/sso/redirect?" + url.Values{"redirectUrl": {u.cb.redirectURL()}}.Encode()
	if status := u.b.open("compat SSO", sso); status != http.StatusOK || !strings.Contains(u.b.location(), "/login?next=") {
		t.Fatalf("SSO redirect led to %d %s", status, u.b.location())
	}
	if status := u.signInAtIdP(t, "test", idpNewbie); status != http.StatusOK || !strings.Contains(u.b.location(), "/complete-compat-sso/") {
		t.Fatalf("the upstream sign-in did not come back to the SSO confirmation: %d %s\n%s", status, u.b.location(), u.b.pageText())
	}
	u.b.submit("continue", `button[value="continue"]`)
	token := u.cb.last(t).Get("loginToken")
	login := newMatrixClient(u.oauthEnv).post(t, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": token})
	if login.status != http.StatusOK || login.body["user_id"] != "@newbie:example.org" {
		t.Fatalf("m.login.token: %d %s", login.status, login.raw)
	}
}

// A device (RFC 8628): the person opens /link with the code, signs in with
// the provider on the way, and approves the device, which gets its tokens.
func upstreamDeviceLink(t *testing.T, u *upstreamEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := u.deviceClient(t)
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	u.b.clearCookies()
	u.b.open("link", da.VerificationURIComplete)
	if !strings.Contains(u.b.location(), "/login?") {
		t.Fatalf("/link did not ask to sign in: %s", u.b.location())
	}
	if status := u.signInAtIdP(t, "test", idpNewbie); status != http.StatusOK || !strings.Contains(u.b.location(), "/link?code=") {
		t.Fatalf("the upstream sign-in did not come back to the device: %d %s\n%s", status, u.b.location(), u.b.pageText())
	}
	u.b.submit("approve device", `button[value="allow"]`)
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	if got := u.introspect(t, tok.AccessToken); got["active"] != true || got["username"] != "newbie" {
		t.Fatalf("device token introspection: %v", got)
	}
}

// A provider answering with response_mode=form_post: its page posts the code
// from its own site, without the SameSite=Lax cookie of the attempt, so
// Gatehouse posts the same fields again from its own site, and the sign-in
// goes on.
func upstreamFormPost(t *testing.T, u *upstreamEnv) {
	u.b.clearCookies()
	u.b.open("sign-in page", u.issuer+"login")
	u.signInAtIdP(t, "post", idpDave)
	// The provider's page and Gatehouse's both post on their own (script).
	if err := waitFor(30*time.Second, func() (bool, error) { return strings.Contains(u.b.location(), "/upstream/link"), nil }); err != nil {
		t.Fatalf("form_post sign-in ended at %s: %v\n%s", u.b.location(), err, u.b.pageText())
	}
	if got := u.b.value("username"); got != "dave@idp.test" && got != "dave" {
		t.Logf("suggested username %q", got)
	}
	u.b.fill("username", "dave")
	u.b.submit("create the account", `button[value="create"]`)
	u.b.open("account", u.issuer+"account")
	if !strings.Contains(u.b.text("main"), "@dave:example.org") {
		t.Fatalf("form_post did not sign dave in:\n%s", u.b.pageText())
	}
	// What the browser did: a cross-site POST without the attempt's cookie
	// gets the page that posts again (not the cross-origin refusal); posted
	// again still without it, the sign-in is refused as expired.
	post := func(values url.Values) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, u.issuer+"upstream/callback/post", strings.NewReader(values.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", u.idp.issuer)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := plainHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAll(resp.Body)
	}
	if status, body := post(url.Values{"code": {"c"}, "state": {"s"}}); status != http.StatusOK || !strings.Contains(body, "data-autosubmit") ||
		!strings.Contains(body, `name="continued"`) || !strings.Contains(body, `name="code" value="c"`) {
		t.Errorf("a form_post without the cookie: %d\n%s", status, body)
	}
	if status, body := post(url.Values{"code": {"c"}, "state": {"s"}, "continued": {"1"}}); status != http.StatusBadRequest || !strings.Contains(body, "expired") {
		t.Errorf("posted again without the cookie: %d\n%s", status, body)
	}
	// The page that posts again, as a person without script sees it (axe):
	// Gatehouse's script is blocked, so the page stays.
	block := func(patterns ...*network.BlockPattern) {
		u.b.do("block scripts", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: patterns})
			return err
		}))
	}
	block(&network.BlockPattern{URLPattern: "*://*:*/static/*.js*", Block: true})
	u.b.open("a page posting to the callback", "data:text/html,"+url.PathEscape(`<!doctype html><html lang="en"><title>Provider</title><form method="post" action="`+
		u.issuer+`upstream/callback/post"><input type="hidden" name="code" value="c"><input type="hidden" name="state" value="s"><button>Go</button></form></html>`))
	if status := u.b.submit("the provider's form_post", "button"); status != http.StatusOK || !strings.Contains(u.b.text("main"), "Continue to finish signing in") {
		t.Errorf("the repost page: %d\n%s", status, u.b.pageText())
	}
	u.b.page("upstream-form-post-continue")
	block()
	links := u.links(t, u.userByName(t, "dave").GetId())
	if len(links) != 1 || links[0].GetProviderId() != "post" || links[0].GetSubject() != idpDave.ID {
		t.Errorf("dave's links: %v", links)
	}
}

// A link imported from Synapse (auth_provider oidc-test, which the provider
// names as its synapse_idp_id) lets carol sign in with the provider at once.
func upstreamImportedLink(t *testing.T, u *upstreamEnv) {
	carol := u.userByName(t, "carol")
	resp, err := u.accounts.AddUpstreamLink(context.Background(), &accountsv1.AddUpstreamLinkRequest{
		UserId: carol.GetId(), SynapseAuthProvider: "oidc-test", Subject: idpCarol.ID, Email: idpCarol.Email,
	})
	if err != nil {
		t.Fatalf("import a link: %v", err)
	}
	if l := resp.GetLink(); l.GetProviderId() != "test" || l.GetSource() != "import" || l.GetSubject() != idpCarol.ID {
		t.Errorf("imported link %v", l)
	}
	if _, err := u.accounts.AddUpstreamLink(context.Background(), &accountsv1.AddUpstreamLinkRequest{
		UserId: u.userByName(t, "bob").GetId(), SynapseAuthProvider: "oidc-test", Subject: idpCarol.ID,
	}); err == nil {
		t.Error("the same identity was imported for another user")
	}
	u.b.clearCookies()
	u.b.open("sign-in page", u.issuer+"login")
	if status := u.signInAtIdP(t, "test", idpCarol); status != http.StatusOK {
		t.Fatalf("carol's sign-in: %d\n%s", status, u.b.pageText())
	}
	u.b.open("account", u.issuer+"account")
	if !strings.Contains(u.b.text("main"), "@carol:example.org") {
		t.Fatalf("the imported link did not sign carol in:\n%s", u.b.pageText())
	}
}
