package eventsv1_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Every event of a session says which session it is and how it started (the
// later ones through the state they carry), and whether it ended.
func TestSessionOf(t *testing.T) {
	start := &eventsv1.SessionStarted{SessionId: "s", Kind: "oauth", ClientId: "app", UserId: "u"}
	state := func(ended bool) *eventsv1.SessionSnapshot {
		return &eventsv1.SessionSnapshot{Session: start, Ended: ended}
	}
	tests := []struct {
		name   string
		ev     proto.Message
		ended  bool
		isSess bool
	}{
		{"started", start, false, true},
		{"imported", &eventsv1.SessionImported{Session: start}, false, true},
		{"tokens issued", &eventsv1.TokensIssued{SessionId: "s", State: state(false)}, false, true},
		{"renamed", &eventsv1.SessionRenamed{SessionId: "s", State: state(false)}, false, true},
		{"ended", &eventsv1.SessionEnded{SessionId: "s", State: state(true)}, true, true},
		{"snapshotted live", &eventsv1.SessionSnapshotted{SessionId: "s", State: state(false)}, false, true},
		{"snapshotted ended", &eventsv1.SessionSnapshotted{SessionId: "s", State: state(true)}, true, true},
		{"another aggregate's", &eventsv1.SessionsActive{}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, got, ended, ok := eventsv1.SessionOf(tt.ev)
			if ok != tt.isSess || ended != tt.ended {
				t.Fatalf("ok %v ended %v, want %v %v", ok, ended, tt.isSess, tt.ended)
			}
			if ok && (id != "s" || got.GetClientId() != "app" || got.GetUserId() != "u") {
				t.Fatalf("session %q started %v", id, got)
			}
			// The start and an import carry no state of their own.
			_, first := tt.ev.(*eventsv1.SessionStarted)
			_, imported := tt.ev.(*eventsv1.SessionImported)
			if snap := eventsv1.SnapshotOf(tt.ev); (snap != nil) != (ok && !first && !imported) {
				t.Fatalf("SnapshotOf = %v", snap)
			}
		})
	}
}
