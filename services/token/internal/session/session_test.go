package session

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
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

func TestLiveRefresh(t *testing.T) {
	ended := rotatedOnce()
	ended.Ended = true
	start := eventlog.Record{Seq: 1, Event: &eventsv1.SessionImported{
		Session: &eventsv1.SessionStarted{SessionId: "s", ClientId: "c"},
		Tokens:  []*eventsv1.TokensIssued{{AccessHash: "ia1", RefreshHash: "ir1"}, {AccessHash: "ia2", RefreshHash: "ir2"}},
	}}
	imported := Fold([]eventlog.Record{start})
	importedUsed := Fold([]eventlog.Record{start, {Seq: 2,
		Event: &eventsv1.TokensIssued{AccessHash: "a3", RefreshHash: "r3", ReplacesRefreshHash: "ir1", RevokesAccessHash: "ia1"}}})
	tests := []struct {
		name  string
		state State
		hash  string
		live  bool
	}{
		{"the current refresh token", rotatedOnce(), "r2", true},
		{"a rotated-out one", rotatedOnce(), "r1", false},
		{"an access token", rotatedOnce(), "a2", false},
		{"an unknown hash", rotatedOnce(), "zz", false},
		{"no hash", rotatedOnce(), "", false},
		{"the current one of an ended session", ended, "r2", false},
		{"no session", State{}, "r2", false},
		{"an imported one not used yet", imported, "ir2", true},
		{"the other imported one", imported, "ir1", true},
		{"an imported one used", importedUsed, "ir1", false},
		{"the one it was exchanged for", importedUsed, "r3", true},
		{"an imported one left", importedUsed, "ir2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, live := tt.state.LiveRefresh(tt.hash)
			if live != tt.live || (live && (tok.GetHash() != tt.hash || !tok.GetRefresh())) {
				t.Fatalf("LiveRefresh(%q) = %v, %v; want live %v", tt.hash, tok, live, tt.live)
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

// A session's last event carries its whole state: folding that event alone
// gives what folding the whole history gives — the stream keeps only it
// (issue 16). Rotated-out refresh tokens are remembered, ReuseMemory of
// them, so a replay of a recent one still ends the session after the
// history is gone; an older one is merely invalid.
func TestSnapshotFoldsLikeHistory(t *testing.T) {
	at := rotatedAt
	history := []eventlog.Record{{Seq: 1, Subject: "token.session.s", Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(at)},
		Event: &eventsv1.SessionStarted{SessionId: "s", ClientId: "c", Kind: "oauth", UserId: "u", Scope: "openid",
			Tokens: &eventsv1.TokensIssued{SessionId: "s", AccessHash: "a0", RefreshHash: "r0", AccessExpiresAt: timestamppb.New(at.Add(time.Minute))}}}}
	appendDecided := func(evs []proto.Message) {
		for _, ev := range evs {
			seq := history[len(history)-1].Seq + 3 // other aggregates' events between
			at = at.Add(time.Minute)
			history = append(history, eventlog.Record{Seq: seq, Subject: "token.session.s", Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(at)}, Event: ev})
		}
	}
	const rotations = 3 * ReuseMemory
	for i := 1; i <= rotations; i++ {
		st := Fold(history)
		next := &eventsv1.TokensIssued{AccessHash: fmt.Sprintf("a%d", i), RefreshHash: fmt.Sprintf("r%d", i), AccessExpiresAt: timestamppb.New(at.Add(time.Hour))}
		decided, o, err := Refresh(st, Rotation{ClientID: "c", PresentedHash: fmt.Sprintf("r%d", i-1), FirstSeen: st.Version, Next: next, Now: at})
		if err != nil || o != Rotated {
			t.Fatalf("rotation %d: %v %v", i, o, err)
		}
		appendDecided(WithState(st, st.Version, at.Add(time.Minute), decided))
		if i == rotations/2 {
			st := Fold(history)
			renamed, err := Rename(st, "", "Laptop")
			if err != nil {
				t.Fatal(err)
			}
			appendDecided(WithState(st, st.Version, at.Add(time.Minute), renamed))
		}
	}
	full, last := Fold(history), Fold(history[len(history)-1:])
	if !proto.Equal(full.Snapshot(), last.Snapshot()) || full.Version != last.Version || full.SealedAt != last.SealedAt {
		t.Fatalf("the last event folds to\n%v\nthe history to\n%v", last.Snapshot(), full.Snapshot())
	}
	want := fmt.Sprintf("r%d", rotations)
	if last.CurrentRefresh != want || last.CurrentAccess != fmt.Sprintf("a%d", rotations) || last.DisplayName != "Laptop" || last.Started.GetUserId() != "u" {
		t.Fatalf("state %+v", last)
	}
	if n := len(last.Snapshot().GetTokens()); n != ReuseMemory+2 {
		t.Fatalf("snapshot holds %d tokens, want the pair and %d rotated out", n, ReuseMemory)
	}
	replay := func(hash string) Outcome {
		_, o, _ := Refresh(last, Rotation{ClientID: "c", PresentedHash: hash, FirstSeen: last.Version, Next: &eventsv1.TokensIssued{AccessHash: "x"}, Now: at.Add(time.Hour)})
		return o
	}
	if o := replay(fmt.Sprintf("r%d", rotations-1)); o != Reused {
		t.Fatalf("replay of the last rotated-out token: %v, want Reused", o)
	}
	if o := replay(fmt.Sprintf("r%d", rotations-ReuseMemory)); o != Reused {
		t.Fatalf("replay of the oldest remembered token: %v, want Reused", o)
	}
	if o := replay(fmt.Sprintf("r%d", rotations-ReuseMemory-1)); o != 0 {
		t.Fatalf("replay of a forgotten token: %v, want merely invalid", o)
	}
	// A concurrent request that read the session before the last rotation lost a race.
	if _, o, _ := Refresh(last, Rotation{ClientID: "c", PresentedHash: fmt.Sprintf("r%d", rotations-1), FirstSeen: history[len(history)-2].Seq, Next: &eventsv1.TokensIssued{}, Now: at.Add(time.Hour)}); o != LostRace {
		t.Fatalf("concurrent loser: %v", o)
	}

	ended, err := End(last, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	appendDecided(WithState(last, last.Version, at, ended))
	if st := Fold(history[len(history)-1:]); !st.Ended || st.Started.GetSessionId() != "s" || st.CurrentRefresh != want {
		t.Fatalf("ended session from its last event: %+v", st)
	}
}

// A session's last use only moves forward, travels in every snapshot, and
// is what the session's last event alone folds to; of two addresses noted
// at the same second the greater string wins, as in the read model.
func TestLastUseTravelsInSnapshots(t *testing.T) {
	t0 := rotatedAt
	s := rotatedOnce()
	s.Started.UserId = "u"
	s.NoteUse(t0, "192.0.2.1", t0)
	s.NoteUse(t0.Add(-time.Minute), "192.0.2.9", t0.Add(-time.Minute)) // older: nothing changes
	s.NoteUse(t0.Add(time.Minute), "", time.Time{})                    // later, no address: the address stays
	s.NoteUse(t0, "192.0.2.0", t0)                                     // same second, smaller: stays
	snap := s.Snapshot()
	lu := snap.GetLastUse()
	if !lu.GetAt().AsTime().Equal(t0.Add(time.Minute)) || lu.GetIpAddress() != "192.0.2.1" || !lu.GetIpAt().AsTime().Equal(t0) || lu.GetUserId() != "u" {
		t.Fatalf("last use %v", lu)
	}
	folded := Fold([]eventlog.Record{{Seq: 7, Subject: "token.session.s", Event: &eventsv1.SessionSnapshotted{SessionId: "s", State: snap}}})
	at, ipAt := folded.LastUse()
	if !at.Equal(t0.Add(time.Minute)) || !ipAt.Equal(t0) {
		t.Fatalf("folded from the snapshot: %v, %v", at, ipAt)
	}
	ended := WithState(folded, 7, t0.Add(time.Hour), []proto.Message{&eventsv1.SessionEnded{SessionId: "s", Reason: "revoked"}})
	if got := ended[0].(*eventsv1.SessionEnded).GetState().GetLastUse(); !proto.Equal(got, lu) {
		t.Fatalf("the end carries %v, want %v", got, lu)
	}
	if never := rotatedOnce().Snapshot().GetLastUse(); never != nil {
		t.Fatalf("a session never used carries %v", never)
	}
}
