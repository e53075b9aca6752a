package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// The homeserver (a stand-in, see homeserver_standin_test.go) is kept in
// step with Gatehouse through its /_synapse/mas/ API, against the real
// `gatehouse serve`:
//   - registration provisions the user;
//   - a login creates the device before the token response is sent;
//   - revocation deletes the device;
//   - while the homeserver answers 503, changes queue and arrive after it
//     comes back, in order, none lost;
//   - while it is down, the token endpoint answers 503 temporarily_unavailable
//     and leaves no live session behind;
//   - `gatehouse homeserver sync` reconciles users and devices.
func TestHomeserverProvisioning(t *testing.T) {
	hs := newStandIn(t)
	e := newOAuthEnv(t, "GATEHOUSE_MATRIX_HOMESERVER_URL="+hs.URL())
	ctx := context.Background()
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	sessions := tokenv1.NewTokenServiceClient(e.conn)

	// Registration provisions the user, with its profile.
	standInWait(t, "alice on the homeserver", func() bool { return hs.user("alice") != nil })
	bobResp, err := accounts.Register(ctx, &accountsv1.RegisterRequest{SkipVerification: true, Username: "bob", Password: "bob's password", Email: "bob@example.com", DisplayName: "Bob"})
	if err != nil {
		t.Fatal(err)
	}
	bob := bobResp.GetUser()
	standInWait(t, "bob on the homeserver", func() bool { return hs.user("bob") != nil })
	if u := hs.user("bob"); u.DisplayName != "Bob" || !slices.Equal(u.Emails, []string{"bob@example.com"}) || u.Locked {
		t.Fatalf("bob on the homeserver: %v", u)
	}
	if got := opsOf(hs.callLog(0), func(c hsCall) bool { return c.Body["localpart"] == "bob" }); len(got) != 1 ||
		got[0] != `provision_user {"localpart":"bob","locked":false,"set_displayname":"Bob","set_emails":["bob@example.com"]}` {
		t.Fatalf("calls for bob: %q", got)
	}

	// A login: the device exists on the homeserver by the time the token
	// response arrives — no waiting.
	login := func(device string) (*oauth2.Token, error) {
		t.Helper()
		cfg := e.client
		cfg.Scopes = append(slices.Clone(cfg.Scopes), "urn:matrix:client:device:"+device)
		verifier := oauth2.GenerateVerifier()
		back := e.authorize(t, cfg, oauth2.S256ChallengeOption(verifier))
		return cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	}
	before := len(hs.callLog(0))
	tok1, err := login("HSDEVICE01")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if u := hs.user("alice"); u == nil || u.Devices["HSDEVICE01"] != "Test Client" {
		t.Fatalf("the device was not on the homeserver when the token arrived: %v", u)
	}
	// The user is provisioned (a no-op for a known one) before its device.
	calls := opsOf(hs.callLog(before), func(hsCall) bool { return true })
	upsert := slices.Index(calls, `upsert_device {"device_id":"HSDEVICE01","display_name":"Test Client","localpart":"alice"}`)
	if upsert < 1 || !slices.Contains(calls[:upsert], `provision_user {"localpart":"alice"}`) {
		t.Fatalf("calls of the login: %q", calls)
	}
	if got := e.introspect(t, tok1.AccessToken); got["active"] != true || got["device_id"] != "HSDEVICE01" {
		t.Fatalf("introspection: %v", got)
	}

	// Revocation deletes the device.
	revoke := func(clientID, refreshToken string) {
		t.Helper()
		resp, err := http.PostForm(e.issuer+"oauth2/revoke", url.Values{"token": {refreshToken}, "client_id": {clientID}})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %v, %v", resp, err)
		}
		resp.Body.Close()
	}
	revoke(e.client.ClientID, tok1.RefreshToken)
	standInWait(t, "HSDEVICE01 deleted", func() bool { return !slices.Contains(hs.devices("alice"), "HSDEVICE01") })

	// The device authorization grant, likewise: the device is there when
	// the polling client gets its tokens.
	tv := e.deviceClient(t)
	tv.Scopes = append(tv.Scopes, "urn:matrix:client:device:HSTVDEVICE")
	da, err := tv.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	complete, _ := url.Parse(da.VerificationURIComplete)
	if _, err := authorizev1.NewAuthorizeServiceClient(e.conn).ApproveDeviceGrant(e.signedIn(t), &authorizev1.ApproveDeviceGrantRequest{UserCode: complete.Query().Get("code")}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	status, body := devicePoll(t, tv, da.DeviceCode)
	if status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("device token: %d %v", status, body)
	}
	if u := hs.user("alice"); u.Devices["HSTVDEVICE"] != "Living Room TV" {
		t.Fatalf("the device was not on the homeserver when the token arrived: %v", u)
	}
	revoke(tv.ClientID, body["refresh_token"].(string))
	standInWait(t, "HSTVDEVICE deleted", func() bool { return !slices.Contains(hs.devices("alice"), "HSTVDEVICE") })

	// The homeserver answers 503 for a while: changes of users and sessions
	// queue, then arrive in order, none lost.
	tok2, err := login("HSDEVICE02")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	upserts := func(device string) int {
		return len(opsOf(hs.callLog(0), func(c hsCall) bool { return c.Op == "upsert_device" && c.Body["device_id"] == device }))
	}
	standInWait(t, "the event-driven upsert of HSDEVICE02", func() bool { return upserts("HSDEVICE02") == 2 })
	hs.setMode("unavailable")
	outage := len(hs.callLog(0))
	steps := []func() error{
		func() error {
			_, err := accounts.SetDisplayName(ctx, &accountsv1.SetDisplayNameRequest{UserId: e.user.GetId(), DisplayName: "Alice One"})
			return err
		},
		func() error {
			_, err := accounts.LockUser(ctx, &accountsv1.LockUserRequest{UserId: bob.GetId(), Reason: "test"})
			return err
		},
		func() error { revoke(e.client.ClientID, tok2.RefreshToken); return nil },
		func() error {
			_, err := accounts.UnlockUser(ctx, &accountsv1.UnlockUserRequest{UserId: bob.GetId()})
			return err
		},
		func() error {
			_, err := accounts.SetDisplayName(ctx, &accountsv1.SetDisplayNameRequest{UserId: e.user.GetId(), DisplayName: "Alice Two"})
			return err
		},
		func() error {
			_, err := accounts.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: bob.GetId(), Erase: true})
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d during the outage: %v", i, err)
		}
	}
	standInWait(t, "retries against the unavailable homeserver", func() bool { return hs.refusedCount() >= 4 })
	time.Sleep(time.Second)
	if got := hs.callLog(outage); len(got) != 0 {
		t.Fatalf("calls accepted during the outage: %v", got)
	}
	hs.setMode("up")
	standInWait(t, "the queued changes", func() bool {
		u := hs.user("bob")
		return u.Deactivated && hs.user("alice").DisplayName == "Alice Two" && !slices.Contains(hs.devices("alice"), "HSDEVICE02")
	})
	profile := opsOf(hs.callLog(outage), func(c hsCall) bool { return c.Op == "provision_user" || c.Op == "delete_user" })
	if want := []string{
		`provision_user {"localpart":"alice","set_displayname":"Alice One"}`,
		`provision_user {"localpart":"bob","locked":true}`,
		`provision_user {"localpart":"bob","locked":false}`,
		`provision_user {"localpart":"alice","set_displayname":"Alice Two"}`,
		`delete_user {"erase":true,"localpart":"bob"}`,
	}; !slices.Equal(profile, want) {
		t.Fatalf("user changes after the outage:\n got %q\nwant %q", profile, want)
	}
	if got := opsOf(hs.callLog(outage), func(c hsCall) bool { return c.Op == "delete_device" }); !slices.Equal(got, []string{
		`delete_device {"device_id":"HSDEVICE02","localpart":"alice"}`,
	}) {
		t.Fatalf("device changes after the outage: %q", got)
	}
	if u := hs.user("bob"); !u.Erased {
		t.Fatalf("bob was not erased: %v", u)
	}

	// The homeserver is down: the token endpoint answers 503
	// temporarily_unavailable, and the session it started is over.
	hs.setMode("down")
	_, err = login("HSDEVICE03")
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != http.StatusServiceUnavailable || re.ErrorCode != "temporarily_unavailable" ||
		!strings.Contains(re.ErrorDescription, "homeserver") {
		t.Fatalf("login with the homeserver down: %v", err)
	}
	list, err := sessions.ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: e.user.GetId(), IncludeEnded: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list.GetSessions() {
		if s.GetDeviceId() == "HSDEVICE03" && s.GetEndedAt() == nil {
			t.Fatalf("the session of a token never handed out is live: %v", s)
		}
	}
	if !slices.ContainsFunc(list.GetSessions(), func(s *tokenv1.Session) bool { return s.GetDeviceId() == "HSDEVICE03" }) {
		t.Fatalf("no session for HSDEVICE03: %v", list.GetSessions())
	}
	hs.setMode("up")
	tok4, err := login("HSDEVICE04")
	if err != nil {
		t.Fatalf("login after the homeserver came back: %v", err)
	}
	if got := e.introspect(t, tok4.AccessToken); got["active"] != true {
		t.Fatalf("introspection: %v", got)
	}
	standInWait(t, "the event-driven upsert of HSDEVICE04", func() bool { return upserts("HSDEVICE04") == 2 })
	if got := hs.devices("alice"); !slices.Equal(got, []string{"HSDEVICE04"}) {
		t.Fatalf("alice's devices: %v", got)
	}

	// `gatehouse homeserver sync` reconciles a homeserver that went astray:
	// alice with a device no session holds and without her live one, bob
	// active again.
	hs.replaceUsers(map[string]*hsUser{
		"alice": {DisplayName: "alice", Devices: map[string]string{"STRAYDEV": ""}},
		"bob":   {DisplayName: "Bob", Devices: map[string]string{"OLDDEV": ""}},
	})
	out := mustCLI(t, e.s, "homeserver", "sync")
	if !strings.Contains(out, "1 users provisioned (0 created), 1 deactivated, 1 devices") {
		t.Fatalf("sync output: %s", out)
	}
	if u := hs.user("alice"); u.DisplayName != "Alice Two" || u.Locked || len(u.Emails) != 0 || !slices.Equal(hs.devices("alice"), []string{"HSDEVICE04"}) {
		t.Fatalf("alice after the sync: %v", u)
	}
	if u := hs.user("bob"); !u.Deactivated || !u.Erased || len(u.Devices) != 0 {
		t.Fatalf("bob after the sync: %v", u)
	}

	// A sync with the homeserver down fails clearly.
	hs.setMode("down")
	code, _, errOut := e.s.cli(t, "homeserver", "sync")
	if code != 1 || !strings.Contains(errOut, "no answer") {
		t.Fatalf("sync with the homeserver down: exit %d, %s", code, errOut)
	}
	hs.setMode("up")
}
