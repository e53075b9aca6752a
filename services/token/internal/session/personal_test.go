package session

import (
	"strings"
	"testing"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

func TestPersonalScope(t *testing.T) {
	tests := []struct {
		scope      string
		admin      bool
		want, dev  string
		wantFailed bool
	}{
		{scope: "urn:matrix:client:api:*", want: "urn:matrix:client:api:*"},
		{scope: "urn:matrix:client:api:*  urn:matrix:client:device:BOTDEVICE01 urn:matrix:client:api:*",
			want: "urn:matrix:client:api:* urn:matrix:client:device:BOTDEVICE01", dev: "BOTDEVICE01"},
		{scope: "urn:matrix:org.matrix.msc2967.client:api:* urn:matrix:org.matrix.msc2967.client:device:ABC",
			want: "urn:matrix:org.matrix.msc2967.client:api:* urn:matrix:org.matrix.msc2967.client:device:ABC", dev: "ABC"},
		{scope: "urn:gatehouse:admin", admin: true, want: "urn:gatehouse:admin"},
		{scope: "urn:mas:admin urn:synapse:admin:* urn:matrix:client:api:*", admin: true, want: "urn:mas:admin urn:synapse:admin:* urn:matrix:client:api:*"},
		{scope: "urn:mas:admin", wantFailed: true},                               // not an administrator
		{scope: "urn:matrix:client:api:* urn:synapse:admin:*", wantFailed: true}, // same
		{scope: "", wantFailed: true},                               // grants nothing
		{scope: "urn:matrix:client:device:ABC", wantFailed: true},   // a device alone
		{scope: "openid urn:matrix:client:api:*", wantFailed: true}, // not for personal tokens
		{scope: "urn:matrix:client:api:* urn:matrix:client:device:A urn:matrix:client:device:B", wantFailed: true},
		{scope: "urn:matrix:client:api:* urn:matrix:client:device:bad\x01", wantFailed: true},
	}
	for _, tt := range tests {
		got, dev, err := PersonalScope(tt.scope, tt.admin)
		if (err != nil) != tt.wantFailed || got != tt.want || dev != tt.dev {
			t.Errorf("PersonalScope(%q, admin=%v) = %q, %q, %v", tt.scope, tt.admin, got, dev, err)
		}
		if err != nil && errs.KindOf(err) != errs.KindInvalid {
			t.Errorf("PersonalScope(%q): kind %v", tt.scope, errs.KindOf(err))
		}
	}
}

func TestCheckNameAndTTL(t *testing.T) {
	for _, bad := range []string{"", "   ", "a\nb", strings.Repeat("x", MaxDisplayName+1)} {
		if CheckName(bad) == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	if err := CheckName("CI bot"); err != nil {
		t.Error(err)
	}
	for _, bad := range []time.Duration{-time.Second, time.Millisecond, MaxPersonalTTL + time.Second} {
		if CheckTTL(bad) == nil {
			t.Errorf("ttl %v accepted", bad)
		}
	}
	for _, ok := range []time.Duration{0, time.Second, MaxPersonalTTL} {
		if err := CheckTTL(ok); err != nil {
			t.Errorf("ttl %v: %v", ok, err)
		}
	}
}

func TestRegenerate(t *testing.T) {
	personal := Fold([]eventlog.Record{{Seq: 1, Event: &eventsv1.SessionStarted{
		SessionId: "s", Kind: PersonalKind, UserId: "u1", Tokens: &eventsv1.TokensIssued{SessionId: "s", AccessHash: "a1"}}}})
	oauth := Fold([]eventlog.Record{{Seq: 1, Event: &eventsv1.SessionStarted{SessionId: "o", Kind: "oauth", UserId: "u1"}}})
	revoked := personal
	revoked.Ended = true
	next := &eventsv1.TokensIssued{AccessHash: "a2"}
	evs, err := Regenerate(personal, "u1", next)
	if err != nil || len(evs) != 1 {
		t.Fatalf("regenerate: %v %v", evs, err)
	}
	if ev := evs[0].(*eventsv1.TokensIssued); ev.GetSessionId() != "s" || ev.GetAccessHash() != "a2" || ev.GetRevokesAccessHash() != "a1" {
		t.Fatalf("event %v", ev)
	}
	for name, tc := range map[string]struct {
		s     State
		owner string
		kind  errs.Kind
	}{
		"someone else's": {personal, "u2", errs.KindNotFound},
		"unknown":        {State{}, "", errs.KindNotFound},
		"not personal":   {oauth, "", errs.KindFailedPrecondition},
		"revoked":        {revoked, "", errs.KindFailedPrecondition},
	} {
		if _, err := Regenerate(tc.s, tc.owner, next); errs.KindOf(err) != tc.kind {
			t.Errorf("%s: %v, want %v", name, err, tc.kind)
		}
	}
}
