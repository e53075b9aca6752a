package session

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

var rotatedAt = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// rotatedOnce is a session whose first refresh token r1 was rotated to r2 at seq 2.
func rotatedOnce() State {
	return Fold([]eventlog.Record{
		{Seq: 1, Event: &eventsv1.SessionStarted{SessionId: "s", ClientId: "c", Tokens: &eventsv1.TokensIssued{AccessHash: "a1", RefreshHash: "r1"}}},
		{Seq: 2, Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(rotatedAt)},
			Event: &eventsv1.TokensIssued{AccessHash: "a2", RefreshHash: "r2", ReplacesRefreshHash: "r1", RevokesAccessHash: "a1"}},
	})
}

func TestRefresh(t *testing.T) {
	next := &eventsv1.TokensIssued{AccessHash: "a3", RefreshHash: "r3"}
	ended := rotatedOnce()
	ended.Ended = true
	tests := []struct {
		name    string
		state   State
		r       Rotation
		outcome Outcome
		events  int
		err     bool
	}{
		{"current token rotates", rotatedOnce(), Rotation{ClientID: "c", PresentedHash: "r2", FirstSeen: 2, Next: next}, Rotated, 1, false},
		{"consumed token ends the session", rotatedOnce(), Rotation{ClientID: "c", PresentedHash: "r1", FirstSeen: 2, Next: next, Now: rotatedAt.Add(time.Minute), Grace: 10 * time.Second}, Reused, 1, true},
		{"concurrent loser does not end it", rotatedOnce(), Rotation{ClientID: "c", PresentedHash: "r1", FirstSeen: 1, Next: next, Now: rotatedAt.Add(time.Minute), Grace: 10 * time.Second}, LostRace, 0, true},
		{"a second use within the grace does not end it", rotatedOnce(), Rotation{ClientID: "c", PresentedHash: "r1", FirstSeen: 2, Next: next, Now: rotatedAt.Add(3 * time.Second), Grace: 10 * time.Second}, LostRace, 0, true},
		{"no grace: an immediate replay ends it", rotatedOnce(), Rotation{ClientID: "c", PresentedHash: "r1", FirstSeen: 2, Next: next, Now: rotatedAt.Add(time.Second)}, Reused, 1, true},
		{"another client", rotatedOnce(), Rotation{ClientID: "evil", PresentedHash: "r2", Next: next}, 0, 0, true},
		{"unknown token", rotatedOnce(), Rotation{ClientID: "c", PresentedHash: "zz", Next: next}, 0, 0, true},
		{"ended session", ended, Rotation{ClientID: "c", PresentedHash: "r2", Next: next}, 0, 0, true},
		{"no session", State{}, Rotation{ClientID: "c", PresentedHash: "r2", Next: next}, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, outcome, err := Refresh(tt.state, tt.r)
			if outcome != tt.outcome || len(events) != tt.events || (err != nil) != tt.err {
				t.Fatalf("events %v, outcome %v, err %v", events, outcome, err)
			}
			if err != nil && errs.KindOf(err) != errs.KindFailedPrecondition {
				t.Fatalf("error kind %v", errs.KindOf(err))
			}
			if tt.outcome == Rotated {
				ev := events[0].(*eventsv1.TokensIssued)
				if ev.GetReplacesRefreshHash() != "r2" || ev.GetRevokesAccessHash() != "a2" || ev.GetSessionId() != "s" {
					t.Fatalf("rotation event %v", ev)
				}
			}
		})
	}
}

func TestEnd(t *testing.T) {
	s := rotatedOnce()
	if evs, err := End(s, "logout"); err != nil || len(evs) != 1 {
		t.Fatalf("end: %v %v", evs, err)
	}
	s.Ended = true
	if evs, err := End(s, "logout"); err != nil || len(evs) != 0 {
		t.Fatalf("end twice: %v %v", evs, err)
	}
	if _, err := End(State{}, "logout"); errs.KindOf(err) != errs.KindNotFound {
		t.Fatalf("end unknown: %v", err)
	}
}

func TestRename(t *testing.T) {
	live := rotatedOnce()
	live.Started.UserId = "u1"
	ended := rotatedOnce()
	ended.Ended = true
	tests := []struct {
		name   string
		state  State
		owner  string
		newN   string
		events int
		kind   errs.Kind
	}{
		{"rename", live, "u1", "Work laptop", 1, -1},
		{"no owner check", live, "", "Phone", 1, -1},
		{"another user's session looks missing", live, "u2", "x", 0, errs.KindNotFound},
		{"ended", ended, "", "x", 0, errs.KindFailedPrecondition},
		{"too long", live, "u1", strings.Repeat("x", MaxDisplayName+1), 0, errs.KindInvalid},
		{"newline", live, "u1", "a\nb", 0, errs.KindInvalid},
		{"unknown", State{}, "", "x", 0, errs.KindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := Rename(tt.state, tt.owner, tt.newN)
			if len(events) != tt.events || (tt.kind == -1) != (err == nil) || (err != nil && errs.KindOf(err) != tt.kind) {
				t.Fatalf("events %v, err %v", events, err)
			}
		})
	}
	renamed := Fold([]eventlog.Record{
		{Seq: 1, Event: &eventsv1.SessionStarted{SessionId: "s", DeviceDisplayName: "Old"}},
		{Seq: 2, Event: &eventsv1.SessionRenamed{SessionId: "s", DeviceDisplayName: "New"}},
	})
	if renamed.DisplayName != "New" {
		t.Fatalf("display name %q", renamed.DisplayName)
	}
	if events, err := Rename(renamed, "", "New"); err != nil || len(events) != 0 {
		t.Fatalf("renaming to the same name: %v %v", events, err)
	}
}
