package token

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// Sessions imported from Synapse: the tokens clients hold keep working
// (only their hashes were imported), with their user and device; a refresh
// token refreshes once into Gatehouse's own tokens; a locked user's tokens
// are inactive; a token in Synapse's format that was not imported is
// unknown; a run again changes nothing.
func TestImportSessions(t *testing.T) {
	e := newLockEnv(t)
	r := e.replica(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice, bob := ids.New(), ids.New()
	e.account(t, alice, &eventsv1.UserImported{UserId: alice, Username: "alice", Source: "synapse", ExternalId: "@alice:example.org"})
	e.account(t, bob, &eventsv1.UserImported{UserId: bob, Username: "bob", Source: "synapse", ExternalId: "@bob:example.org", Locked: true})

	const (
		access       = "syt_YWxpY2U_abcdefghijABCDEFGHIJ_0abcde"
		pairedAccess = "syt_YWxpY2U_zyxwvutsrqZYXWVUTSRQ_1abcde"
		refresh      = "syr_YWxpY2U_QWERTYUIOPasdfghjklz_2abcde"
		bobAccess    = "syt_Ym9i_abcdefghijABCDEFGHIJ_3abcde"
		deviceless   = "syt_YWxpY2U_deviceless0DEVICELESS_4abcde"
	)
	macaroon := base64.RawURLEncoding.EncodeToString([]byte("0019location example.org\n0013identifier key\n002fcid user_id = @alice:example.org\n"))
	h := tokenfmt.HashString
	created := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	sessions := []*tokenv1.ImportedSession{
		{SessionId: ids.Derive(created, "s1"), UserId: alice, Username: "alice", DeviceId: "ABCDEFGHIJ", DeviceDisplayName: "Alice's phone",
			CreatedAt: timestamppb.New(created), IpAddress: "192.0.2.1", UserAgent: "Element/1.0",
			Tokens: []*tokenv1.ImportedToken{{AccessHash: h(access)}, {AccessHash: h(macaroon)}, {AccessHash: h(pairedAccess), RefreshHash: h(refresh)}}},
		{SessionId: ids.Derive(created, "s2"), UserId: alice, Username: "alice", Tokens: []*tokenv1.ImportedToken{{AccessHash: h(deviceless)}}},
		{SessionId: ids.Derive(created, "s3"), UserId: bob, Username: "bob", DeviceId: "BOBDEVICE", Tokens: []*tokenv1.ImportedToken{{AccessHash: h(bobAccess)}}},
		{SessionId: "nope", UserId: bob, Username: "bob"},
		{SessionId: ids.Derive(created, "s5"), UserId: bob, Username: "bob", Tokens: []*tokenv1.ImportedToken{{AccessHash: "NOT A HASH"}}},
	}
	g := &grpcServer{svc: r.svc}
	want := []tokenv1.ImportSessionOutcome{
		tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_IMPORTED, tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_IMPORTED,
		tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_IMPORTED, tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_INVALID,
		tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_INVALID,
	}
	resp, err := g.ImportSessions(ctx, &tokenv1.ImportSessionsRequest{Source: "synapse", Sessions: sessions})
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range resp.GetResults() {
		if res.GetOutcome() != want[i] {
			t.Errorf("session %d: %v (%s), want %v", i, res.GetOutcome(), res.GetMessage(), want[i])
		}
	}

	for _, tc := range []struct {
		name, token, device string
		active              bool
	}{
		{"access token", access, "ABCDEFGHIJ", true},
		{"macaroon", macaroon, "ABCDEFGHIJ", true},
		{"access token of a refresh pair", pairedAccess, "ABCDEFGHIJ", true},
		{"deviceless token", deviceless, "", true},
		{"locked user's token", bobAccess, "", false},
		{"a token of Synapse's shape never imported", "syt_YWxpY2U_notimportednotimported_5abcde", "", false},
	} {
		res, err := r.svc.introspect(ctx, tc.token, true)
		if err != nil {
			t.Fatal(err)
		}
		if res.Active != tc.active {
			t.Errorf("%s: active %v, want %v", tc.name, res.Active, tc.active)
			continue
		}
		if tc.active && (res.Info.UserID != alice || res.Info.Username != "alice" || res.Info.DeviceID != tc.device || !res.Compat || res.TokenType != "access_token") {
			t.Errorf("%s: %+v", tc.name, res)
		}
		if got := r.introspectHTTP(t, tc.token); got != tc.active {
			t.Errorf("%s over HTTP: active %v", tc.name, got)
		}
	}
	// A refresh token is not an access token; the index does not hold it,
	// the session aggregate answers (index.lookupRefresh), and only for a
	// viewer who may see one.
	if res, err := r.svc.introspect(ctx, refresh, true); err != nil || !res.Active || res.TokenType != "refresh_token" ||
		res.Info.UserID != alice || res.Info.DeviceID != "ABCDEFGHIJ" {
		t.Errorf("the imported refresh token: %+v, %v", res, err)
	}
	if res, _ := r.svc.introspect(ctx, refresh, false); res.Active {
		t.Error("a refresh token was looked up for a viewer who may not see one")
	}

	// The refresh token refreshes once into Gatehouse's tokens; the access
	// token issued with it is then revoked, the others stay.
	code, body := r.compatRefresh(t, refresh)
	if code != http.StatusOK {
		t.Fatalf("compat refresh: %d %v", code, body)
	}
	next, _ := body["access_token"].(string)
	if res, _ := r.svc.introspect(ctx, next, true); !res.Active || res.Info.DeviceID != "ABCDEFGHIJ" {
		t.Errorf("the refreshed access token: %+v", res)
	}
	if r.introspectGRPC(t, pairedAccess) {
		t.Error("the access token of the refreshed pair still works")
	}
	if res, _ := r.svc.introspect(ctx, refresh, true); res.Active {
		t.Error("the imported refresh token still introspects active once used")
	}
	if !r.introspectGRPC(t, access) {
		t.Error("another token of the device stopped working")
	}

	// Again: nothing changes.
	again, err := g.ImportSessions(ctx, &tokenv1.ImportSessionsRequest{Source: "synapse", Sessions: sessions[:3]})
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range again.GetResults() {
		if res.GetOutcome() != tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_ALREADY_IMPORTED {
			t.Errorf("again, session %d: %v", i, res.GetOutcome())
		}
	}
	if r.introspectGRPC(t, pairedAccess) {
		t.Error("importing again brought a revoked token back")
	}
	var name, ip string
	if err := r.pool.QueryRow(ctx, `SELECT device_display_name, ip_address FROM sessions WHERE session_id = $1`, sessions[0].GetSessionId()).Scan(&name, &ip); err != nil {
		t.Fatal(err)
	}
	if name != "Alice's phone" {
		t.Errorf("device name %q", name)
	}
}

// A made-up token in Synapse's format (they carry no MAC) is inactive at
// once: unlike a miss on one of Gatehouse's tokens, it costs no catch-up
// with the stream, which here would never end (the tail is not running).
func TestMadeUpSynapseTokensCostNoCatchUp(t *testing.T) {
	e := newLockEnv(t)
	r := e.replica(t)
	x := newIndex(r.pool, r.svc.log, e.accounts, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	x.tail = x.log.Tail(eventlog.TailConfig{Name: "test", Subjects: []string{eventsv1.TokenSession.Subjects()}, From: 1, Handle: x.learn},
		slog.New(slog.DiscardHandler))
	close(x.ready)
	for _, token := range []string{"syt_bWFsbG9yeQ_madeupmadeupmadeupma_0abcde", "syr_bWFsbG9yeQ_madeupmadeupmadeupma_0abcde"} {
		_, live, err := x.lookupImported(ctx, tokenfmt.HashString(token))
		if err != nil || live {
			t.Errorf("%s: live %v, err %v; want inactive at once", token[:4], live, err)
		}
	}
}
