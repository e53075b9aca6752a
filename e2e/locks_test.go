package e2e

// Locks, deactivation and recovery bite at once (issue 9, "Locks do not
// bite"): regression tests against the real binary, as a homeserver, an
// OAuth client, an old Matrix client and an administrator see it.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// userTokens are one user's OAuth and compat tokens.
type userTokens struct {
	oauth                        *oauth2.Token
	compatAccess, compatRefresh  string
	oauthConfig                  oauth2.Config
	env                          *oauthEnv
	username, password, deviceID string
}

// sessionsOf gives the env's user an OAuth session (authorization code with
// PKCE) and a compat session (password login, with a refresh token).
func sessionsOf(t *testing.T, e *oauthEnv, password string) *userTokens {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, e.client, oauth2.S256ChallengeOption(verifier))
	tok, err := e.client.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	login := compatLogin(t, e, map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": e.user.GetUsername()},
		"password":   password, "refresh_token": true,
	})
	return &userTokens{oauth: tok, compatAccess: login["access_token"].(string), compatRefresh: login["refresh_token"].(string),
		oauthConfig: e.client, env: e, username: e.user.GetUsername(), password: password, deviceID: login["device_id"].(string)}
}

// active reports whether the homeserver sees the token as active, over HTTP
// and over gRPC; the two must agree.
func (u *userTokens) active(t *testing.T, token string) bool {
	t.Helper()
	overHTTP, overGRPC := u.introspectBoth(t, token)
	if overGRPC != overHTTP {
		t.Fatalf("HTTP says active=%v, gRPC says active=%v", overHTTP, overGRPC)
	}
	return overHTTP
}

// introspectBoth introspects token over HTTP, then over gRPC.
func (u *userTokens) introspectBoth(t *testing.T, token string) (overHTTP, overGRPC bool) {
	t.Helper()
	overHTTP = u.env.introspect(t, token)["active"] == true
	resp, err := tokenv1.NewTokenServiceClient(u.env.conn).Introspect(context.Background(), &tokenv1.IntrospectRequest{Token: token})
	if err != nil {
		t.Fatalf("gRPC introspection: %v", err)
	}
	return overHTTP, resp.GetActive()
}

// userinfo returns the status of GET /oauth2/userinfo with the access token.
func (u *userTokens) userinfo(t *testing.T) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u.env.issuer+"oauth2/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+u.oauth.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// refreshOAuth runs the refresh_token grant; on success the new pair replaces the old.
func (u *userTokens) refreshOAuth(t *testing.T) error {
	t.Helper()
	tok, err := u.oauthConfig.TokenSource(context.Background(), &oauth2.Token{RefreshToken: u.oauth.RefreshToken}).Token()
	if err != nil {
		return err
	}
	u.oauth = tok
	return nil
}

// refreshCompat calls the compat /refresh; on success the new pair replaces the old.
func (u *userTokens) refreshCompat(t *testing.T) matrixReply {
	t.Helper()
	r := newMatrixClient(u.env).post(t, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": u.compatRefresh})
	if r.status == http.StatusOK {
		u.compatAccess, u.compatRefresh = r.body["access_token"].(string), r.body["refresh_token"].(string)
	}
	return r
}

func wantInvalidGrant(t *testing.T, what string, err error) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("%s: %v, want invalid_grant", what, err)
	}
}

// waitInactive polls until the token is inactive, at most a second.
func (u *userTokens) waitInactive(t *testing.T, what, token string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	// The two answers may differ while the end is on its way: the HTTP one
	// is asked first, and the token may end between them.
	for overHTTP, overGRPC := u.introspectBoth(t, token); overHTTP || overGRPC; overHTTP, overGRPC = u.introspectBoth(t, token) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still active a second later", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// While a user is locked, every OAuth and compat token of theirs is inactive
// at introspection (HTTP and gRPC), refresh fails (invalid_grant; compat
// M_UNKNOWN_TOKEN), userinfo answers 401 invalid_token and the compat API
// refuses; unlocking restores everything, as MAS does.
func TestLockedUserIsRefusedEverywhereUntilUnlocked(t *testing.T) {
	e := newOAuthEnv(t)
	u := sessionsOf(t, e, "alice's password")
	if !u.active(t, u.oauth.AccessToken) || !u.active(t, u.compatAccess) || u.userinfo(t) != http.StatusOK {
		t.Fatal("fresh tokens do not work")
	}

	mustCLI(t, e.s, "user", "lock", "alice", "--reason", "regression test")
	u.waitInactive(t, "the OAuth access token of a locked user", u.oauth.AccessToken)
	u.waitInactive(t, "the compat access token of a locked user", u.compatAccess)
	if got := u.userinfo(t); got != http.StatusUnauthorized {
		t.Errorf("userinfo of a locked user: %d, want 401", got)
	}
	wantInvalidGrant(t, "OAuth refresh of a locked user", u.refreshOAuth(t))
	wantMatrixError(t, "compat refresh of a locked user", u.refreshCompat(t), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	wantMatrixError(t, "compat logout of a locked user", newMatrixClient(e).post(t, "/_matrix/client/v3/logout", u.compatAccess, map[string]any{}),
		http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	wantMatrixError(t, "compat login of a locked user", newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", alicePassword(nil)),
		http.StatusUnauthorized, "M_USER_LOCKED")

	mustCLI(t, e.s, "user", "unlock", "alice")
	deadline := time.Now().Add(time.Second)
	for !u.active(t, u.oauth.AccessToken) {
		if time.Now().After(deadline) {
			t.Fatal("the OAuth access token is still inactive a second after unlocking")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !u.active(t, u.compatAccess) || u.userinfo(t) != http.StatusOK {
		t.Fatal("unlocking did not restore the sessions")
	}
	if err := u.refreshOAuth(t); err != nil {
		t.Fatalf("OAuth refresh after unlocking: %v", err)
	}
	if r := u.refreshCompat(t); r.status != http.StatusOK {
		t.Fatalf("compat refresh after unlocking: %d %s", r.status, r.raw)
	}
	if !u.active(t, u.oauth.AccessToken) || !u.active(t, u.compatAccess) {
		t.Fatal("the refreshed tokens are not active")
	}
}

// Deactivation ends every OAuth, compat and browser session for good: the
// sessions are ended (not just refused), and reactivation brings none back.
func TestDeactivationEndsEverySessionForGood(t *testing.T) {
	e := newOAuthEnv(t)
	u := sessionsOf(t, e, "alice's password")
	ctx := context.Background()
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	browser := browserSession(t, e.conn, "alice", "alice's password", nil)

	mustCLI(t, e.s, "user", "deactivate", "alice")
	u.waitInactive(t, "the OAuth access token of a deactivated user", u.oauth.AccessToken)
	u.waitInactive(t, "the compat access token of a deactivated user", u.compatAccess)
	sessions := tokenv1.NewTokenServiceClient(e.conn)
	if err := waitFor(10*time.Second, func() (bool, error) {
		list, err := sessions.ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: e.user.GetId()})
		return err == nil && len(list.GetSessions()) == 0, err
	}); err != nil {
		t.Fatalf("the sessions of a deactivated user did not end: %v", err)
	}
	if _, err := accounts.AuthenticateBrowserSession(ctx, &accountsv1.AuthenticateBrowserSessionRequest{Secret: browser.GetSecret()}); err == nil {
		t.Fatal("the browser session of a deactivated user still works")
	}

	mustCLI(t, e.s, "user", "reactivate", "alice")
	// Once a password login works again, the token service knows of the
	// reactivation: had it restored the old sessions, they would show now.
	reactivated := time.Now()
	for newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", alicePassword(nil)).status != http.StatusOK {
		if time.Since(reactivated) > time.Second {
			t.Fatal("no password login a second after the reactivation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if u.active(t, u.oauth.AccessToken) || u.active(t, u.compatAccess) || u.active(t, u.oauth.RefreshToken) {
		t.Fatal("a token of a deactivated user came back with the reactivation")
	}
	wantInvalidGrant(t, "OAuth refresh after reactivation", u.refreshOAuth(t))
	wantMatrixError(t, "compat refresh after reactivation", u.refreshCompat(t), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	if _, err := accounts.AuthenticateBrowserSession(ctx, &accountsv1.AuthenticateBrowserSessionRequest{Secret: browser.GetSecret()}); err == nil {
		t.Fatal("the browser session came back with the reactivation")
	}
	// A new sign-in works.
	e.session = nil // the browser session that approved the first grant ended with the deactivation
	again := sessionsOf(t, e, "alice's password")
	if !again.active(t, again.oauth.AccessToken) || !again.active(t, again.compatAccess) {
		t.Fatal("signing in again after the reactivation does not work")
	}
}

// A password reset through a recovery link ends every session of the user:
// OAuth, compat and browser. (The reset is driven as the web service drives
// it: notify emails the link, the ticket is checked, accounts sets the
// password against notify's confirmation.)
func TestRecoveryEndsEverySession(t *testing.T) {
	e := newOAuthEnv(t)
	ctx := context.Background()
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	reg, err := accounts.Register(ctx, &accountsv1.RegisterRequest{Username: "erin", Password: "erin's password", Email: "erin@example.org", SkipVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	erin := &oauthEnv{s: e.s, issuer: e.issuer, provider: e.provider, client: e.client, conn: e.conn, user: reg.GetUser()}
	u := sessionsOf(t, erin, "erin's password")
	browser := browserSession(t, e.conn, "erin", "erin's password", nil)

	notify := notifyv1.NewNotifyServiceClient(e.conn)
	if _, err := notify.StartVerification(ctx, &notifyv1.StartVerificationRequest{
		Email: "erin@example.org", Purpose: notifyv1.Purpose_PURPOSE_RECOVERY, UserId: erin.user.GetId(),
	}); err != nil {
		t.Fatal(err)
	}
	link := emailedRecoveryLink(t, e.s.dataDir, "erin@example.org")
	checked, err := notify.CheckRecoveryTicket(ctx, &notifyv1.CheckRecoveryTicketRequest{Ticket: link[strings.LastIndex(link, "/")+1:]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.SetPassword(ctx, &accountsv1.SetPasswordRequest{
		UserId: erin.user.GetId(), NewPassword: "erin's new password", RecoveryVerificationId: checked.GetVerificationId(),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.AuthenticateBrowserSession(ctx, &accountsv1.AuthenticateBrowserSessionRequest{Secret: browser.GetSecret()}); err == nil {
		t.Fatal("a browser session from before the recovery still works")
	}
	u.waitInactive(t, "an OAuth access token from before the recovery", u.oauth.AccessToken)
	u.waitInactive(t, "a compat access token from before the recovery", u.compatAccess)
	wantInvalidGrant(t, "OAuth refresh after the recovery", u.refreshOAuth(t))

	// Both ended: the token service handled the reset. Sessions started with
	// the new password live, also when the reset is handled again (a replay
	// of the reactor that ends sessions on account changes).
	erinAfter := &oauthEnv{s: e.s, issuer: e.issuer, provider: e.provider, client: e.client, conn: e.conn, user: reg.GetUser(),
		session: signIn(t, e.conn, "erin", "erin's new password")}
	after := sessionsOf(t, erinAfter, "erin's new password")
	if out := mustCLI(t, e.s, "projections", "rebuild", "token.account_sessions"); !strings.Contains(out, "rebuilt token.account_sessions") {
		t.Fatalf("rebuild: %s", out)
	}
	if !after.active(t, after.oauth.AccessToken) || !after.active(t, after.compatAccess) {
		t.Fatal("the sessions started with the new password were ended")
	}
	if u.active(t, u.oauth.AccessToken) || u.active(t, u.compatAccess) {
		t.Fatal("the replay brought an ended session back")
	}
	list := mustCLI(t, e.s, "projections", "list")
	for _, want := range []string{"token.account_sessions", "token.user_blocks", "notify.delivery"} {
		if !strings.Contains(list, want) {
			t.Errorf("projections list lacks %s:\n%s", want, list)
		}
	}
	if !strings.Contains(list, "reactor") {
		t.Errorf("projections list names no reactor:\n%s", list)
	}
}

// Two token replicas (separate processes on one NATS and one database):
// locking a user through one makes the user's tokens inactive on the other
// within a second, and unlocking brings them back as fast.
func TestLockReachesEveryTokenReplica(t *testing.T) {
	d := newSplitDeployment(t)
	a := d.process(t, "accounts,authorize,token,notify,web", nil, "")
	e := envOn(t, a)
	b := d.process(t, "token", a, e.issuer)
	bBase := "http://" + b.http + "/"

	cfg := clientFor(t, e, bBase) // tokens come from replica B
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, cfg, oauth2.S256ChallengeOption(verifier))
	tok, err := cfg.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange on replica B: %v", err)
	}
	for _, base := range []string{e.issuer, bBase} {
		if introspectAt(t, base, tok.AccessToken)["active"] != true {
			t.Fatalf("%s does not know the token", base)
		}
	}
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	if _, err := accounts.LockUser(context.Background(), &accountsv1.LockUserRequest{UserId: e.user.GetId()}); err != nil {
		t.Fatal(err)
	}
	locked := time.Now()
	for _, base := range []string{bBase, e.issuer} {
		for introspectAt(t, base, tok.AccessToken)["active"] != false {
			if time.Since(locked) > time.Second {
				t.Fatalf("%s still reports the token active a second after the lock", base)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := accounts.UnlockUser(context.Background(), &accountsv1.UnlockUserRequest{UserId: e.user.GetId()}); err != nil {
		t.Fatal(err)
	}
	unlocked := time.Now()
	for introspectAt(t, bBase, tok.AccessToken)["active"] != true {
		if time.Since(unlocked) > time.Second {
			t.Fatal("replica B still reports the token inactive a second after the unlock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.PostForm(bBase+"oauth2/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {cfg.ClientID}})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke on B: %v %v", resp, err)
	}
	resp.Body.Close()
}
