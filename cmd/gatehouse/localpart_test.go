package main

import (
	"context"
	"testing"

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
	hs.setMode("down")
	if _, err := c.IsLocalpartAvailable(ctx, &tokenv1.IsLocalpartAvailableRequest{Localpart: "newcomer"}); err == nil {
		t.Fatal("a down homeserver answered that a username is free")
	}
}
