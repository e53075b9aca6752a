package device

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func history(events ...proto.Message) []eventlog.Record {
	out := make([]eventlog.Record, len(events))
	for i, ev := range events {
		out[i] = eventlog.Record{Seq: uint64(10 + i), Event: ev}
	}
	return out
}

var (
	requested = &eventsv1.DeviceAuthorizationRequested{
		DeviceGrantId: "G", ClientId: "C", Scope: "openid", DeviceCodeHash: Hash("dc"), UserCodeHash: Hash("BCDFGHJK"),
		ExpiresAt: timestamppb.New(t0.Add(Lifetime)), Interval: 5,
	}
	approved = &eventsv1.DeviceApproved{DeviceGrantId: "G", UserId: "U", Username: "alice", Scope: "openid"}
	denied   = &eventsv1.DeviceDenied{DeviceGrantId: "G"}
	used     = &eventsv1.DeviceTokenIssued{DeviceGrantId: "G", SessionId: "S"}
)

func TestDeviceFold(t *testing.T) {
	tests := []struct {
		name    string
		events  []proto.Message
		status  Status
		version uint64
	}{
		{"empty", nil, Unknown, 0},
		{"requested", []proto.Message{requested}, Pending, 10},
		{"approved", []proto.Message{requested, approved}, Approved, 11},
		{"denied", []proto.Message{requested, denied}, Denied, 11},
		{"used", []proto.Message{requested, approved, used}, Used, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Fold(history(tt.events...))
			if s.Status != tt.status || s.Version != tt.version {
				t.Fatalf("status %v version %d, want %v %d", s.Status, s.Version, tt.status, tt.version)
			}
			if tt.status == Used && s.SessionID != "S" {
				t.Fatalf("session %q", s.SessionID)
			}
		})
	}
	// Unknown events (newer binaries) are skipped.
	if s := Fold([]eventlog.Record{{Seq: 1, Event: requested}, {Seq: 2}}); s.Status != Pending || s.Version != 2 {
		t.Fatalf("with an unknown event: %+v", s)
	}
}

func TestDeviceApproveAndDeny(t *testing.T) {
	tests := []struct {
		name     string
		events   []proto.Message
		now      time.Time
		approve  errs.Kind // 0: approves
		deny     errs.Kind // 0: denies (or nothing, when already denied)
		denyNoop bool
	}{
		{"unknown", nil, t0, errs.KindNotFound, errs.KindNotFound, false},
		{"pending", []proto.Message{requested}, t0.Add(time.Minute), 0, 0, false},
		{"pending at the last moment", []proto.Message{requested}, t0.Add(Lifetime - time.Nanosecond), 0, 0, false},
		{"expired", []proto.Message{requested}, t0.Add(Lifetime), errs.KindFailedPrecondition, errs.KindFailedPrecondition, false},
		{"approved", []proto.Message{requested, approved}, t0, errs.KindFailedPrecondition, errs.KindFailedPrecondition, false},
		{"denied", []proto.Message{requested, denied}, t0, errs.KindFailedPrecondition, 0, true},
		{"used", []proto.Message{requested, approved, used}, t0, errs.KindFailedPrecondition, errs.KindFailedPrecondition, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Fold(history(tt.events...))
			got, err := Approve(s, tt.now, approved)
			if tt.approve != 0 {
				if errs.KindOf(err) != tt.approve || got != nil {
					t.Fatalf("Approve: %v, %v; want kind %v", got, err, tt.approve)
				}
			} else if err != nil || len(got) != 1 || got[0] != approved {
				t.Fatalf("Approve: %v, %v", got, err)
			}
			got, err = Deny(s, tt.now)
			switch {
			case tt.deny != 0:
				if errs.KindOf(err) != tt.deny {
					t.Fatalf("Deny: %v, %v; want kind %v", got, err, tt.deny)
				}
			case tt.denyNoop:
				if err != nil || len(got) != 0 {
					t.Fatalf("Deny again: %v, %v", got, err)
				}
			default:
				if d, ok := got[0].(*eventsv1.DeviceDenied); err != nil || len(got) != 1 || !ok || d.GetDeviceGrantId() != "G" {
					t.Fatalf("Deny: %v, %v", got, err)
				}
			}
		})
	}
}

func TestDeviceDecidePoll(t *testing.T) {
	tests := []struct {
		name    string
		events  []proto.Message
		client  string
		now     time.Time
		outcome Outcome
		invalid bool
	}{
		{"unknown", nil, "C", t0, 0, true},
		{"pending", []proto.Message{requested}, "C", t0, OutcomePending, false},
		{"another client's pending code", []proto.Message{requested}, "X", t0, 0, true},
		{"another client's approved code", []proto.Message{requested, approved}, "X", t0, 0, true},
		{"pending expired", []proto.Message{requested}, "C", t0.Add(Lifetime), OutcomeExpired, false},
		{"approved", []proto.Message{requested, approved}, "C", t0.Add(time.Minute), OutcomeApproved, false},
		{"approved but expired", []proto.Message{requested, approved}, "C", t0.Add(Lifetime + time.Second), OutcomeExpired, false},
		{"denied", []proto.Message{requested, denied}, "C", t0, OutcomeDenied, false},
		{"denied and expired", []proto.Message{requested, denied}, "C", t0.Add(2 * Lifetime), OutcomeDenied, false},
		{"used", []proto.Message{requested, approved, used}, "C", t0, OutcomeUsed, false},
		{"used and expired", []proto.Message{requested, approved, used}, "C", t0.Add(2 * Lifetime), OutcomeUsed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, outcome, err := DecidePoll(Fold(history(tt.events...)), Poll{ClientID: tt.client, SessionID: "S2", Now: tt.now})
			if tt.invalid {
				if errs.KindOf(err) != errs.KindFailedPrecondition || got != nil {
					t.Fatalf("got %v, %v, %v; want invalid grant", got, outcome, err)
				}
				if errs.PublicMessage(err) != "The device code is invalid." {
					t.Fatalf("the error reveals something: %q", errs.PublicMessage(err))
				}
				return
			}
			if err != nil || outcome != tt.outcome {
				t.Fatalf("got %v, %v; want %v", outcome, err, tt.outcome)
			}
			if outcome == OutcomeApproved {
				ev, ok := got[0].(*eventsv1.DeviceTokenIssued)
				if len(got) != 1 || !ok || ev.GetSessionId() != "S2" || ev.GetDeviceGrantId() != "G" {
					t.Fatalf("events %v", got)
				}
			} else if len(got) != 0 {
				t.Fatalf("a %v poll appends %v", outcome, got)
			}
		})
	}
}

func TestDeviceUserCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		c := NewUserCode()
		if len(c) != UserCodeLength {
			t.Fatalf("user code %q", c)
		}
		for _, r := range c {
			if !strings.ContainsRune(UserCodeAlphabet, r) {
				t.Fatalf("user code %q has %q", c, r)
			}
		}
		seen[c] = true
		n, ok := NormalizeUserCode(strings.ToLower(FormatUserCode(c)))
		if !ok || n != c {
			t.Fatalf("round trip of %q: %q %v", c, n, ok)
		}
	}
	if len(seen) < 1990 {
		t.Fatalf("only %d distinct codes in 2000", len(seen))
	}
	for _, r := range "AEIOUY0123456789" {
		if strings.ContainsRune(UserCodeAlphabet, r) {
			t.Fatalf("ambiguous character %q in the alphabet", r)
		}
	}
	if FormatUserCode("BCDFGHJK") != "BCDF-GHJK" {
		t.Fatal(FormatUserCode("BCDFGHJK"))
	}
	norm := []struct {
		in   string
		want string
		ok   bool
	}{
		{"BCDF-GHJK", "BCDFGHJK", true},
		{"bcdf ghjk", "BCDFGHJK", true},
		{" bcdfghjk ", "BCDFGHJK", true},
		{"BCDF-GHJ", "", false},
		{"BCDF-GHJKL", "", false},
		{"BCDF-GHJA", "", false}, // a vowel is never in a code
		{"BCDF-GHJ1", "", false}, // nor a digit
		{"BCDF_GHJK", "", false}, // nor other punctuation
		{"ＢCDF-GHJK", "", false}, // nor fullwidth letters
		{"", "", false},
		{strings.Repeat("-", 100) + "BCDFGHJK", "", false},
	}
	for _, tt := range norm {
		got, ok := NormalizeUserCode(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NormalizeUserCode(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestDeviceCodes(t *testing.T) {
	a, b := NewDeviceCode(), NewDeviceCode()
	if len(a) != DeviceCodeLength || a == b {
		t.Fatalf("device codes %q %q", a, b)
	}
	if h := Hash(a); len(h) != 64 || h == Hash(b) || h != Hash(a) {
		t.Fatalf("hash %q", h)
	}
}

func TestDevicePacer(t *testing.T) {
	p := NewPacer()
	until := t0.Add(Lifetime)
	steps := []struct {
		at       time.Duration
		slow     bool
		interval time.Duration
	}{
		{0, false, 5 * time.Second},                                    // first poll
		{5 * time.Second, false, 5 * time.Second},                      // on time
		{9*time.Second + 500*time.Millisecond, false, 5 * time.Second}, // 4.5 s: within the slack
		{10 * time.Second, true, 10 * time.Second},                     // 0.5 s: slow down, +5 s
		{15 * time.Second, true, 15 * time.Second},                     // 5 s is now too fast: +5 s again
		{30 * time.Second, false, 15 * time.Second},                    // 15 s: fine, and the interval stays
		{44 * time.Second, false, 15 * time.Second},                    // 14 s: within the slack
	}
	for i, s := range steps {
		slow, interval := p.Poll("G", t0.Add(s.at), until)
		if slow != s.slow || interval != s.interval {
			t.Fatalf("step %d (t+%v): slow %v interval %v; want %v %v", i, s.at, slow, interval, s.slow, s.interval)
		}
	}
	if p.Interval("G") != 15*time.Second || p.Interval("other") != Interval {
		t.Fatal("Interval")
	}
	// Another grant has its own pace.
	if slow, _ := p.Poll("H", t0.Add(44*time.Second), until); slow {
		t.Fatal("a first poll is never too fast")
	}
	p.Forget("G")
	if p.Interval("G") != Interval || p.Len() != 1 {
		t.Fatal("Forget")
	}
	// Expired grants are swept when new ones arrive.
	p.Poll("late", until.Add(2*time.Minute), until.Add(Lifetime))
	if p.Len() != 1 {
		t.Fatalf("after the sweep: %d entries", p.Len())
	}
}
