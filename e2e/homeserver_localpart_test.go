package e2e

import (
	"context"
	"testing"

	"golang.org/x/oauth2"

	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// The homeserver is asked whether a username is free (it may hold users
// Gatehouse does not know) and told when a user may reset cross-signing.
func TestHomeserverLocalpartAndCrossSigning(t *testing.T) {
	hs := newStandIn(t)
	hs.replaceUsers(map[string]*hsUser{"bridgebot": {Devices: map[string]string{}}})
	e := newOAuthEnv(t, "GATEHOUSE_MATRIX_HOMESERVER_URL="+hs.URL())
	c := tokenv1.NewTokenServiceClient(e.conn)
	ctx := context.Background()
	for localpart, want := range map[string]bool{"bridgebot": false, "newcomer": true} {
		resp, err := c.IsLocalpartAvailable(ctx, &tokenv1.IsLocalpartAvailableRequest{Localpart: localpart})
		if err != nil || resp.GetAvailable() != want {
			t.Fatalf("IsLocalpartAvailable(%s) = %v, %v; want %v", localpart, resp.GetAvailable(), err, want)
		}
	}
	if _, err := c.AllowCrossSigningReset(ctx, &tokenv1.AllowCrossSigningResetRequest{Localpart: "alice"}); err != nil {
		t.Fatal(err)
	}
	allowed := opsOf(hs.callLog(0), func(c hsCall) bool { return c.Op == "allow_cross_signing_reset" })
	if len(allowed) != 1 {
		t.Fatalf("cross-signing reset calls: %v", allowed)
	}
	// Renaming a session renames its device on the homeserver.
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, e.client, oauth2.S256ChallengeOption(verifier))
	if _, err := e.client.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
	sessions, err := c.ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: e.user.GetId()})
	if err != nil || len(sessions.GetSessions()) != 1 {
		t.Fatalf("sessions: %v, %v", sessions, err)
	}
	sess := sessions.GetSessions()[0]
	if _, err := c.RenameSession(ctx, &tokenv1.RenameSessionRequest{SessionId: sess.GetSessionId(), UserId: "01J00000000000000000000000", DeviceDisplayName: "x"}); err == nil {
		t.Fatal("renamed another user's session")
	}
	if _, err := c.RenameSession(ctx, &tokenv1.RenameSessionRequest{SessionId: sess.GetSessionId(), UserId: e.user.GetId(), DeviceDisplayName: "Work laptop"}); err != nil {
		t.Fatal(err)
	}
	standInWait(t, "the device renamed on the homeserver", func() bool {
		u := hs.user("alice")
		return u != nil && u.Devices[sess.GetDeviceId()] == "Work laptop"
	})
	if listed, _ := c.ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: e.user.GetId()}); listed.GetSessions()[0].GetDeviceDisplayName() != "Work laptop" {
		t.Fatalf("listed name %q", listed.GetSessions()[0].GetDeviceDisplayName())
	}
	hs.setMode("down")
	if _, err := c.IsLocalpartAvailable(ctx, &tokenv1.IsLocalpartAvailableRequest{Localpart: "newcomer"}); err == nil {
		t.Fatal("a down homeserver answered that a username is free")
	}
}
