package session

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// FuzzFold folds any history of session events — any order, any field
// values, a snapshot of another session, a token issued before any start —
// and decides on the state it gives: nothing panics, whatever a stream
// holds. The input is a run of records, each a byte choosing the event type,
// two bytes of length and that many bytes of the event's protobuf.
func FuzzFold(f *testing.F) {
	types := eventsv1.TokenSession.Events
	record := func(typ int, ev proto.Message) []byte {
		raw, err := proto.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		return append(binary.BigEndian.AppendUint16([]byte{byte(typ)}, uint16(len(raw))), raw...)
	}
	indexOf := func(ev proto.Message) int {
		for i, t := range types {
			if proto.MessageName(t) == proto.MessageName(ev) {
				return i
			}
		}
		f.Fatalf("%T is not a session event", ev)
		return 0
	}
	var seed []byte
	for _, ev := range []proto.Message{
		&eventsv1.SessionStarted{SessionId: "s", ClientId: "c", UserId: "u", Tokens: &eventsv1.TokensIssued{AccessHash: "a1", RefreshHash: "r1"}},
		&eventsv1.TokensIssued{AccessHash: "a2", RefreshHash: "r2", ReplacesRefreshHash: "r1", RevokesAccessHash: "a1"},
		&eventsv1.SessionRenamed{SessionId: "s", DeviceDisplayName: "phone"},
		&eventsv1.SessionEnded{SessionId: "s", Reason: "revoked"},
	} {
		seed = append(seed, record(indexOf(ev), ev)...)
		f.Add(seed)
	}
	f.Add(record(indexOf(&eventsv1.TokensIssued{}), &eventsv1.TokensIssued{AccessHash: "a", RefreshHash: "r", State: &eventsv1.SessionSnapshot{}}))
	f.Add(record(indexOf(&eventsv1.SessionImported{}), &eventsv1.SessionImported{Tokens: []*eventsv1.TokensIssued{{RefreshHash: "r"}, {RefreshHash: "r"}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var history []eventlog.Record
		for len(data) >= 3 && len(history) < 16 {
			typ := types[int(data[0])%len(types)]
			n := min(int(binary.BigEndian.Uint16(data[1:3])), len(data)-3)
			raw := data[3 : 3+n]
			data = data[3+n:]
			ev := typ.ProtoReflect().New().Interface()
			if proto.Unmarshal(raw, ev) != nil {
				continue
			}
			at := time.Unix(1_800_000_000+int64(len(history)), 0)
			history = append(history, eventlog.Record{Seq: uint64(len(history) + 1), Subject: "token.session.s",
				Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(at)}, Event: ev})
		}
		s := Fold(history)
		now := time.Unix(1_800_000_100, 0)
		for _, h := range []string{"", "r1", "r2", "r", s.CurrentRefresh} {
			s.LiveRefresh(h)
			decided, _, _ := Refresh(s, Rotation{ClientID: s.Started.GetClientId(), PresentedHash: h, FirstSeen: s.Version,
				Next: &eventsv1.TokensIssued{AccessHash: "an", RefreshHash: "rn"}, Now: now, Grace: 10 * time.Second})
			WithState(s, s.Version, now, decided)
		}
		ended, _ := End(s, "revoked")
		WithState(s, s.Version, now, ended)
		renamed, _ := Rename(s, "", fmt.Sprintf("device %d", len(history)))
		WithState(s, s.Version, now, renamed)
		if s.Exists() {
			s.NoteUse(now, "192.0.2.1", now)
			_ = s.Snapshot()
		}
		s.LastUse()
	})
}

// FuzzStateAgreesWithHistory drives a session through decisions as the
// service makes them — refreshes with its live token, with a rotated-out
// one (a replay ends it), renames, an end — each event carrying the state it
// leads to (WithState), as the TOKEN stream keeps only the last. The last
// event alone (a compacted stream) must fold to the session its whole
// history folds to without any state (events of a binary from before
// snapshots): so either stream gives one session. One byte per
// decision: its low bits choose it, the rest how long after the last one.
func FuzzStateAgreesWithHistory(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 0})
	f.Add([]byte{0, 0x11, 0, 3})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1 | 0xf0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		at := time.Unix(1_800_000_000, 0)
		started := &eventsv1.SessionStarted{SessionId: "s", ClientId: "c", UserId: "u", Kind: "oauth",
			Tokens: &eventsv1.TokensIssued{SessionId: "s", AccessHash: "a0", RefreshHash: "r0"}}
		history := []eventlog.Record{{Seq: 1, Subject: "token.session.s", Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(at)}, Event: started}}
		var refreshes []string
		for i, op := range ops[:min(len(ops), 24)] {
			s := Fold(history)
			at = at.Add(time.Duration(op>>2) * time.Second)
			var decided []proto.Message
			switch op & 3 {
			case 0, 1: // the live refresh token, or (1) one rotated out before it
				presented := s.CurrentRefresh
				if op&3 == 1 && len(refreshes) > 0 {
					presented = refreshes[int(op>>2)%len(refreshes)]
				}
				decided, _, _ = Refresh(s, Rotation{ClientID: "c", PresentedHash: presented, FirstSeen: s.Version, Now: at, Grace: 10 * time.Second,
					Next: &eventsv1.TokensIssued{AccessHash: fmt.Sprintf("a%d", i+1), RefreshHash: fmt.Sprintf("r%d", i+1)}})
				if len(decided) > 0 && op&3 == 0 {
					refreshes = append(refreshes, presented)
				}
			case 2:
				decided, _ = Rename(s, "", fmt.Sprintf("device %d", i))
			case 3:
				decided, _ = End(s, "revoked")
			}
			for _, ev := range WithState(s, s.Version, at, decided) {
				history = append(history, eventlog.Record{Seq: s.Version + 1, Subject: "token.session.s",
					Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(at)}, Event: ev})
			}
		}
		if eventsv1.SnapshotOf(history[len(history)-1].Event) == nil {
			return // nothing decided after the start
		}
		compacted := Fold(history[len(history)-1:]).Snapshot()
		bare := make([]eventlog.Record, len(history))
		for i, rec := range history {
			ev := proto.Clone(rec.Event)
			if snap := eventsv1.SnapshotOf(ev); snap != nil {
				clearState(ev)
			}
			bare[i] = eventlog.Record{Seq: rec.Seq, Subject: rec.Subject, Envelope: rec.Envelope, Event: ev}
		}
		folded := Fold(bare).Snapshot()
		if !proto.Equal(folded, compacted) {
			t.Fatalf("the last event alone folds to another session than its history:\nlast    %v\nhistory %v", compacted, folded)
		}
	})
}

// clearState removes the state an event carries.
func clearState(ev proto.Message) {
	switch ev := ev.(type) { //eventcheck:partial — the session events that carry a state
	case *eventsv1.TokensIssued:
		ev.State = nil
	case *eventsv1.SessionRenamed:
		ev.State = nil
	case *eventsv1.SessionEnded:
		ev.State = nil
	case *eventsv1.SessionSnapshotted:
		ev.State = nil
	}
}
