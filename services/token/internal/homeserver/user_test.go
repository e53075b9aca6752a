package homeserver

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// A user's history, event by event: the state after each event and the calls
// it needs.
func TestHomeserverUserChanges(t *testing.T) {
	steps := []struct {
		ev   proto.Message
		want []string
	}{
		{&eventsv1.PasswordChanged{UserId: "u"}, nil}, // before registration: nobody to provision
		{&eventsv1.UserRegistered{UserId: "u", Username: "alice", Email: "a@example.com", DisplayName: "Alice"},
			[]string{`provision_user {"localpart":"alice","locked":false,"set_displayname":"Alice","set_emails":["a@example.com"]}`}},
		{&eventsv1.PasswordChanged{UserId: "u"}, nil},
		{&eventsv1.AdminSet{UserId: "u", Admin: true}, nil},
		{&eventsv1.DisplayNameSet{UserId: "u", DisplayName: "Alice A."}, []string{`provision_user {"localpart":"alice","set_displayname":"Alice A."}`}},
		{&eventsv1.DisplayNameSet{UserId: "u"}, []string{`provision_user {"localpart":"alice","unset_displayname":true}`}},
		{&eventsv1.EmailAdded{UserId: "u", Email: "b@example.com"}, []string{`provision_user {"localpart":"alice","set_emails":["a@example.com","b@example.com"]}`}},
		{&eventsv1.PrimaryEmailSet{UserId: "u", Email: "b@example.com"}, []string{`provision_user {"localpart":"alice","set_emails":["b@example.com","a@example.com"]}`}},
		{&eventsv1.EmailRemoved{UserId: "u", Email: "a@example.com"}, []string{`provision_user {"localpart":"alice","set_emails":["b@example.com"]}`}},
		{&eventsv1.UserLocked{UserId: "u", Reason: "spam"}, []string{`provision_user {"localpart":"alice","locked":true}`}},
		{&eventsv1.UserUnlocked{UserId: "u"}, []string{`provision_user {"localpart":"alice","locked":false}`}},
		{&eventsv1.UserDeactivated{UserId: "u", Erase: true}, []string{`delete_user alice erase=true`}},
		// A deactivated user's profile is left alone...
		{&eventsv1.DisplayNameSet{UserId: "u", DisplayName: "Ghost"}, nil},
		{&eventsv1.UserLocked{UserId: "u"}, nil},
		{&eventsv1.EmailRemoved{UserId: "u", Email: "b@example.com"}, nil},
		// ...and reactivation provisions all of it again.
		{&eventsv1.UserReactivated{UserId: "u"}, []string{
			`reactivate_user alice`,
			`provision_user {"localpart":"alice","locked":true,"set_displayname":"Ghost","unset_emails":true}`,
		}},
		{&eventsv1.UserDeactivated{UserId: "u"}, []string{`delete_user alice erase=false`}},
	}
	var st UserState
	for i, step := range steps {
		st.Apply(step.ev)
		var got []string
		for _, ch := range UserChanges(st, step.ev) {
			got = append(got, ch.String())
		}
		if strings.Join(got, "\n") != strings.Join(step.want, "\n") {
			t.Errorf("step %d (%T):\ngot  %q\nwant %q", i, step.ev, got, step.want)
		}
		if _, ignored := step.ev.(*eventsv1.PasswordChanged); Concerns(step.ev) == ignored {
			if _, admin := step.ev.(*eventsv1.AdminSet); !admin {
				t.Errorf("step %d: Concerns(%T) = %v", i, step.ev, Concerns(step.ev))
			}
		}
	}
}

func TestHomeserverUserStateFull(t *testing.T) {
	st := UserState{Username: "bob"}
	if got, _ := st.Full().MarshalJSON(); string(got) != `{"localpart":"bob","locked":false,"unset_emails":true}` {
		t.Fatalf("bare user: %s", got)
	}
}
