package session

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

func TestExpire(t *testing.T) {
	started := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	expires := started.Add(5 * time.Minute)
	start := func(kind string, refresh bool, expiry *time.Time) []eventlog.Record {
		tokens := &eventsv1.TokensIssued{SessionId: "s", AccessHash: "a1"}
		if refresh {
			tokens.RefreshHash = "r1"
		}
		if expiry != nil {
			tokens.AccessExpiresAt = timestamppb.New(*expiry)
		}
		return []eventlog.Record{{Seq: 1, Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(started)},
			Event: &eventsv1.SessionStarted{SessionId: "s", Kind: kind, ClientId: "c", Tokens: tokens}}}
	}
	ended := append(start("client_credentials", false, &expires), eventlog.Record{Seq: 2,
		Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(started.Add(time.Minute))},
		Event:    &eventsv1.SessionEnded{SessionId: "s", Reason: "revoked"}})
	after, before := expires.Add(time.Second), expires.Add(-time.Second)
	for _, tc := range []struct {
		name    string
		history []eventlog.Record
		now     time.Time
		mortal  bool // UsableUntil reports expires
		ends    bool
	}{
		{"a client's own session, its token expired", start("client_credentials", false, &expires), after, true, true},
		{"a client's own session, its token still live", start("client_credentials", false, &expires), before, true, false},
		{"a client's own session, at its token's expiry", start("client_credentials", false, &expires), expires, true, true},
		{"a person's OAuth session without a refresh token, expired", start("oauth", false, &expires), after, true, true},
		{"a person's OAuth session with a refresh token", start("oauth", true, &expires), after.Add(24 * time.Hour), false, false},
		{"a compat session whose access token never expires", start("compat", false, nil), after, false, false},
		{"a refreshed compat session", start("compat", true, &expires), after, false, false},
		{"a personal session past its expiry (it may be regenerated)", start("personal", false, &expires), after, false, false},
		{"a client's own session revoked before", ended, after, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Fold(tc.history)
			decided := Expire(st, tc.now)
			if got := len(decided) == 1; got != tc.ends {
				t.Fatalf("Expire at %s: %v, want an end: %v", tc.now, decided, tc.ends)
			}
			if tc.ends {
				end, ok := decided[0].(*eventsv1.SessionEnded)
				if !ok || end.GetReason() != ExpiredReason || end.GetSessionId() != "s" {
					t.Fatalf("Expire decided %v", decided[0])
				}
			}
			// The read model learns when a session dies from its start, or
			// from the state the last event of a compacted stream carries:
			// the two agree.
			at, ok := UsableUntil(tc.history[0].Event.(*eventsv1.SessionStarted))
			if ok != tc.mortal || (ok && !at.Equal(expires)) {
				t.Fatalf("UsableUntil = %s, %v; want %s, %v", at, ok, expires, tc.mortal)
			}
			snapAt, snapOK := SnapshotUsableUntil(st.Snapshot())
			if snapOK != ok || !snapAt.Equal(at) {
				t.Fatalf("SnapshotUsableUntil = %s, %v; UsableUntil %s, %v", snapAt, snapOK, at, ok)
			}
		})
	}
}

func TestExpireInactive(t *testing.T) {
	started := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cut := started.Add(time.Hour)
	history := func(kind string, more ...eventlog.Record) []eventlog.Record {
		return append([]eventlog.Record{{Seq: 1, Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(started)},
			Event: &eventsv1.SessionStarted{SessionId: "s", Kind: kind, ClientId: "c", UserId: "u", Tokens: &eventsv1.TokensIssued{AccessHash: "a1", RefreshHash: "r1"}}}}, more...)
	}
	imported := []eventlog.Record{{Seq: 1, Event: &eventsv1.SessionImported{
		Session:   &eventsv1.SessionStarted{SessionId: "s", Kind: "compat", ClientId: "c", UserId: "u"},
		CreatedAt: timestamppb.New(started.Add(-48 * time.Hour)), LastActiveAt: timestamppb.New(cut.Add(time.Minute))}}}
	ended := eventlog.Record{Seq: 2, Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(started)}, Event: &eventsv1.SessionEnded{SessionId: "s", Reason: "logout"}}
	for _, tc := range []struct {
		name    string
		history []eventlog.Record
		usedAt  time.Time // a use noted on the state; zero: none
		ends    bool
	}{
		{"an OAuth session unused since it started", history("oauth"), time.Time{}, true},
		{"a compat session unused since it started", history("compat"), time.Time{}, true},
		{"an OAuth session used after the cut", history("oauth"), cut.Add(time.Second), false},
		{"an OAuth session used before the cut", history("oauth"), cut.Add(-time.Second), true},
		{"an imported session its homeserver saw used after the cut", imported, time.Time{}, false},
		{"a client's own session", history("client_credentials"), time.Time{}, false},
		{"a personal session", history(PersonalKind), time.Time{}, false},
		{"an ended session", history("oauth", ended), time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Fold(tc.history)
			if !tc.usedAt.IsZero() {
				st.NoteUse(tc.usedAt, "", time.Time{})
			}
			decided := ExpireInactive(st, cut)
			if got := len(decided) == 1; got != tc.ends {
				t.Fatalf("ExpireInactive: %v, want an end: %v", decided, tc.ends)
			}
			if tc.ends && decided[0].(*eventsv1.SessionEnded).GetReason() != InactiveReason {
				t.Fatalf("ExpireInactive decided %v", decided[0])
			}
		})
	}
}
