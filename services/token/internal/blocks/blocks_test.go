package blocks

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name     string
		from     State
		ev       proto.Message
		want     State
		concerns bool
	}{
		{"lock", State{}, &eventsv1.UserLocked{}, State{Locked: true}, true},
		{"unlock", State{Locked: true}, &eventsv1.UserUnlocked{}, State{}, true},
		{"deactivate a locked user", State{Locked: true}, &eventsv1.UserDeactivated{}, State{Locked: true, Deactivated: true}, true},
		{"reactivate keeps the lock", State{Locked: true, Deactivated: true}, &eventsv1.UserReactivated{}, State{Locked: true}, true},
		{"unlock keeps the deactivation", State{Locked: true, Deactivated: true}, &eventsv1.UserUnlocked{}, State{Deactivated: true}, true},
		{"a password change changes nothing", State{Locked: true}, &eventsv1.PasswordChanged{}, State{Locked: true}, false},
		{"registration changes nothing", State{}, &eventsv1.UserRegistered{}, State{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, concerns, err := Apply(tt.from, eventlog.Record{Event: tt.ev})
			if err != nil || got != tt.want || concerns != tt.concerns {
				t.Fatalf("Apply = %+v, %v, %v; want %+v, %v", got, concerns, err, tt.want, tt.concerns)
			}
			if got.Blocked() != (tt.want.Locked || tt.want.Deactivated) {
				t.Fatalf("Blocked = %v", got.Blocked())
			}
		})
	}
}

// Every event of the user aggregate is handled; a browser event (another
// aggregate) is reported, and an event of an unknown type is skipped.
func TestApplyHandlesEveryUserEvent(t *testing.T) {
	for _, ev := range eventsv1.AccountsUser.Events {
		if _, _, err := Apply(State{}, eventlog.Record{Event: ev, Envelope: &eventsv1.Envelope{}}); err != nil {
			t.Errorf("%T: %v", ev, err)
		}
	}
	_, _, err := Apply(State{}, eventlog.Record{Event: &eventsv1.BrowserSessionStarted{}, Envelope: &eventsv1.Envelope{}})
	if !errors.Is(err, eventlog.ErrUnhandled) {
		t.Errorf("a browser event: %v", err)
	}
	if _, _, err := Apply(State{}, eventlog.Record{Envelope: &eventsv1.Envelope{}}); err != nil {
		t.Errorf("an unknown event: %v", err)
	}
}
