package grant

import (
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

func challenge(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// approved is a grant approved with code "the-code", optionally with a PKCE challenge.
func approved(withChallenge bool) State {
	req := &eventsv1.GrantRequested{GrantId: "g", ClientId: "client", RedirectUri: "http://127.0.0.1/cb", ExpiresAt: Timestamp(now.Add(time.Hour))}
	if withChallenge {
		req.CodeChallenge = challenge(verifier)
	}
	return Fold([]eventlog.Record{
		{Seq: 1, Event: req},
		{Seq: 2, Event: &eventsv1.GrantApproved{GrantId: "g", UserId: "u", CodeHash: CodeHash("the-code"), CodeExpiresAt: Timestamp(now.Add(10 * time.Minute))}},
	})
}

func TestDecideExchange(t *testing.T) {
	good := Exchange{Code: "the-code", ClientID: "client", RedirectURI: "http://127.0.0.1/cb", Verifier: verifier, SessionID: "s", Now: now}
	exchanged := approved(true)
	exchanged.Status, exchanged.SessionID = Exchanged, "first-session"
	tests := []struct {
		name     string
		state    State
		edit     func(*Exchange)
		ok       bool
		replayed string
	}{
		{"valid with PKCE", approved(true), nil, true, ""},
		{"confidential client without PKCE", approved(false), func(x *Exchange) { x.Verifier = "" }, true, ""},
		{"wrong code", approved(true), func(x *Exchange) { x.Code = "other" }, false, ""},
		{"expired code", approved(true), func(x *Exchange) { x.Now = now.Add(11 * time.Minute) }, false, ""},
		{"another client", approved(true), func(x *Exchange) { x.ClientID = "evil" }, false, ""},
		{"another redirect URI", approved(true), func(x *Exchange) { x.RedirectURI = "http://127.0.0.1/other" }, false, ""},
		{"missing verifier", approved(true), func(x *Exchange) { x.Verifier = "" }, false, ""},
		{"wrong verifier", approved(true), func(x *Exchange) { x.Verifier = verifier[:42] + "A" }, false, ""},
		{"PKCE downgrade: verifier without challenge", approved(false), nil, false, ""},
		{"pending grant", Fold([]eventlog.Record{{Seq: 1, Event: &eventsv1.GrantRequested{GrantId: "g"}}}), nil, false, ""},
		{"unknown grant", State{}, nil, false, ""},
		{"replay", exchanged, nil, false, "first-session"},
		{"replay with a wrong code is just invalid", exchanged, func(x *Exchange) { x.Code = "other" }, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := good
			if tt.edit != nil {
				tt.edit(&x)
			}
			events, replayed, err := DecideExchange(tt.state, x)
			switch {
			case tt.replayed != "":
				if replayed == nil || replayed.SessionID != tt.replayed || err != nil || len(events) != 0 {
					t.Fatalf("replay: events %v, replayed %v, err %v", events, replayed, err)
				}
			case tt.ok:
				ev, _ := events[0].(*eventsv1.GrantExchanged)
				if err != nil || len(events) != 1 || ev.GetSessionId() != "s" {
					t.Fatalf("events %v, err %v", events, err)
				}
			default:
				if err == nil || errs.KindOf(err) != errs.KindFailedPrecondition || replayed != nil || len(events) != 0 {
					t.Fatalf("events %v, replayed %v, err %v; want an invalid-grant error", events, replayed, err)
				}
			}
		})
	}
}

func TestApproveAndDeny(t *testing.T) {
	pending := Fold([]eventlog.Record{{Seq: 1, Event: &eventsv1.GrantRequested{GrantId: "g", ExpiresAt: Timestamp(now.Add(time.Minute))}}})
	a := &eventsv1.GrantApproved{GrantId: "g"}
	if evs, err := Approve(pending, now, a); err != nil || len(evs) != 1 {
		t.Fatalf("approve pending: %v %v", evs, err)
	}
	if _, err := Approve(pending, now.Add(2*time.Minute), a); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Fatalf("approve expired: %v", err)
	}
	if _, err := Approve(approved(true), now, a); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Fatalf("approve twice: %v", err)
	}
	if _, err := Approve(State{}, now, a); errs.KindOf(err) != errs.KindNotFound {
		t.Fatalf("approve unknown: %v", err)
	}
	if evs, err := Deny(pending); err != nil || len(evs) != 1 {
		t.Fatalf("deny: %v %v", evs, err)
	}
	if _, err := Deny(approved(true)); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Fatalf("deny approved: %v", err)
	}
}
