package user

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// twoEmails is alice with a second, non-primary address added at t1.
func twoEmails() State {
	return with(alice(), func(s *State) {
		s.Emails = []Email{
			{Address: "alice@example.org", Primary: true, AddedAt: t0},
			{Address: "liddell@example.net", AddedAt: t1},
		}
	})
}

// noEmail is u1 registered without an address.
func noEmail() State {
	return with(alice(), func(s *State) { s.Email, s.Emails = "", nil })
}

func TestEmailDecisions(t *testing.T) {
	tests := []struct {
		name      string
		decide    func() ([]proto.Message, error)
		want      []proto.Message
		wantKind  errs.Kind
		wantField string
		wantErr   bool
	}{
		// AddEmail.
		{
			name:   "add",
			decide: func() ([]proto.Message, error) { return AddEmail(alice(), " Liddell@Example.NET ", "01J0VERIFICATION") },
			want:   []proto.Message{&eventsv1.EmailAdded{UserId: "u1", Email: "liddell@example.net", VerificationId: "01J0VERIFICATION"}},
		},
		{
			name:   "add without verification id",
			decide: func() ([]proto.Message, error) { return AddEmail(noEmail(), "alice@example.org", "") },
			want:   []proto.Message{&eventsv1.EmailAdded{UserId: "u1", Email: "alice@example.org"}},
		},
		{
			name:   "add an address the user has",
			decide: func() ([]proto.Message, error) { return AddEmail(twoEmails(), "LIDDELL@example.net", "") },
		},
		{
			name: "add an address the deactivated user has",
			decide: func() ([]proto.Message, error) {
				return AddEmail(with(twoEmails(), func(s *State) { s.Deactivated = true }), "liddell@example.net", "")
			},
		},
		{
			name:     "add to unknown user",
			decide:   func() ([]proto.Message, error) { return AddEmail(State{}, "a@example.org", "") },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},
		{
			name:      "add invalid address",
			decide:    func() ([]proto.Message, error) { return AddEmail(alice(), "alice", "") },
			wantErr:   true,
			wantKind:  errs.KindInvalid,
			wantField: "email",
		},
		{
			name:      "add with bad verification id",
			decide:    func() ([]proto.Message, error) { return AddEmail(alice(), "b@example.org", "a b") },
			wantErr:   true,
			wantKind:  errs.KindInvalid,
			wantField: "verification_id",
		},
		{
			name: "add with overlong verification id",
			decide: func() ([]proto.Message, error) {
				return AddEmail(alice(), "b@example.org", strings.Repeat("a", MaxVerificationIDLength+1))
			},
			wantErr:   true,
			wantKind:  errs.KindInvalid,
			wantField: "verification_id",
		},
		{
			name:     "add to deactivated user",
			decide:   func() ([]proto.Message, error) { return AddEmail(deactivated(), "b@example.org", "") },
			wantErr:  true,
			wantKind: errs.KindFailedPrecondition,
		},

		// RemoveEmail.
		{
			name:   "remove",
			decide: func() ([]proto.Message, error) { return RemoveEmail(twoEmails(), "Liddell@example.net") },
			want:   []proto.Message{&eventsv1.EmailRemoved{UserId: "u1", Email: "liddell@example.net"}},
		},
		{
			name: "remove from deactivated user",
			decide: func() ([]proto.Message, error) {
				return RemoveEmail(with(twoEmails(), func(s *State) { s.Deactivated = true }), "liddell@example.net")
			},
			want: []proto.Message{&eventsv1.EmailRemoved{UserId: "u1", Email: "liddell@example.net"}},
		},
		{
			name:   "remove an address the user does not have",
			decide: func() ([]proto.Message, error) { return RemoveEmail(alice(), "liddell@example.net") },
		},
		{
			name:      "remove the primary address",
			decide:    func() ([]proto.Message, error) { return RemoveEmail(twoEmails(), "alice@example.org") },
			wantErr:   true,
			wantKind:  errs.KindFailedPrecondition,
			wantField: "email",
		},
		{
			name:      "remove the only address",
			decide:    func() ([]proto.Message, error) { return RemoveEmail(alice(), "ALICE@example.org") },
			wantErr:   true,
			wantKind:  errs.KindFailedPrecondition,
			wantField: "email",
		},
		{
			name:     "remove from unknown user",
			decide:   func() ([]proto.Message, error) { return RemoveEmail(State{}, "a@example.org") },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},
		{
			name:      "remove invalid address",
			decide:    func() ([]proto.Message, error) { return RemoveEmail(alice(), "") },
			wantErr:   true,
			wantKind:  errs.KindInvalid,
			wantField: "email",
		},

		// SetPrimaryEmail.
		{
			name:   "set primary",
			decide: func() ([]proto.Message, error) { return SetPrimaryEmail(twoEmails(), "liddell@EXAMPLE.net") },
			want:   []proto.Message{&eventsv1.PrimaryEmailSet{UserId: "u1", Email: "liddell@example.net"}},
		},
		{
			name:   "set the primary address primary",
			decide: func() ([]proto.Message, error) { return SetPrimaryEmail(twoEmails(), "alice@example.org") },
		},
		{
			name:      "set an address the user does not have primary",
			decide:    func() ([]proto.Message, error) { return SetPrimaryEmail(alice(), "eve@example.org") },
			wantErr:   true,
			wantKind:  errs.KindFailedPrecondition,
			wantField: "email",
		},
		{
			name: "set primary of deactivated user",
			decide: func() ([]proto.Message, error) {
				return SetPrimaryEmail(with(twoEmails(), func(s *State) { s.Deactivated = true }), "liddell@example.net")
			},
			wantErr:  true,
			wantKind: errs.KindFailedPrecondition,
		},
		{
			name:     "set primary of unknown user",
			decide:   func() ([]proto.Message, error) { return SetPrimaryEmail(State{}, "a@example.org") },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},
		{
			name:      "set invalid address primary",
			decide:    func() ([]proto.Message, error) { return SetPrimaryEmail(alice(), "Alice <alice@example.org>") },
			wantErr:   true,
			wantKind:  errs.KindInvalid,
			wantField: "email",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decide()
			if tt.wantErr {
				assertError(t, err, tt.wantKind, tt.wantField)
				if got != nil {
					t.Errorf("events %v with error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("events = %v, want %v", got, tt.want)
			}
			for i := range got {
				if !proto.Equal(got[i], tt.want[i]) {
					t.Errorf("event %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestFoldEmails(t *testing.T) {
	added := func(seq uint64, email string) eventlog.Record {
		return record(seq, t1, &eventsv1.EmailAdded{UserId: "u1", Email: email})
	}
	tests := []struct {
		name    string
		history []eventlog.Record
		want    State
	}{
		{
			name:    "added",
			history: []eventlog.Record{registered(1, t0), added(2, "liddell@example.net")},
			want:    with(twoEmails(), func(s *State) { s.Version, s.UpdatedAt = 2, t1 }),
		},
		{
			name:    "added twice",
			history: []eventlog.Record{registered(1, t0), added(2, "liddell@example.net"), added(3, "liddell@example.net")},
			want:    with(twoEmails(), func(s *State) { s.Version, s.UpdatedAt = 3, t1 }),
		},
		{
			name: "first address of a user without one becomes primary",
			history: []eventlog.Record{
				record(1, t0, &eventsv1.UserRegistered{UserId: "u1", Username: "alice"}),
				added(2, "liddell@example.net"),
				added(3, "alice@example.org"),
			},
			want: State{ID: "u1", Username: "alice", Email: "liddell@example.net", Emails: []Email{
				{Address: "liddell@example.net", Primary: true, AddedAt: t1},
				{Address: "alice@example.org", AddedAt: t1},
			}, Version: 3, CreatedAt: t0, UpdatedAt: t1},
		},
		{
			name: "primary set",
			history: []eventlog.Record{
				registered(1, t0), added(2, "liddell@example.net"),
				record(3, t2, &eventsv1.PrimaryEmailSet{UserId: "u1", Email: "liddell@example.net"}),
			},
			want: with(twoEmails(), func(s *State) {
				s.Email, s.Version, s.UpdatedAt = "liddell@example.net", 3, t2
				s.Emails[0].Primary, s.Emails[1].Primary = false, true
			}),
		},
		{
			name: "primary set to an unknown address changes nothing but the version",
			history: []eventlog.Record{
				registered(1, t0),
				record(2, t1, &eventsv1.PrimaryEmailSet{UserId: "u1", Email: "eve@example.org"}),
			},
			want: with(alice(), func(s *State) { s.Version, s.UpdatedAt = 2, t1 }),
		},
		{
			name: "removed",
			history: []eventlog.Record{
				registered(1, t0), added(2, "liddell@example.net"),
				record(3, t2, &eventsv1.EmailRemoved{UserId: "u1", Email: "liddell@example.net"}),
			},
			want: with(alice(), func(s *State) { s.Version, s.UpdatedAt = 3, t2 }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fold(tt.history); !sameState(got, tt.want) {
				t.Errorf("Fold() = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Apply never changes the Emails of a state it was copied from.
func TestApplyDoesNotShareEmails(t *testing.T) {
	before := twoEmails()
	after := before
	after.Apply(record(5, t2, &eventsv1.PrimaryEmailSet{UserId: "u1", Email: "liddell@example.net"}))
	after.Apply(record(6, t2, &eventsv1.EmailRemoved{UserId: "u1", Email: "alice@example.org"}))
	if !sameState(before, twoEmails()) {
		t.Fatalf("original changed: %+v", before)
	}
}

func TestFoldEmailClaim(t *testing.T) {
	reserved := func(seq uint64, userID string) eventlog.Record {
		return record(seq, t0, &eventsv1.EmailReserved{Email: "a@example.org", UserId: userID})
	}
	released := func(seq uint64, userID string) eventlog.Record {
		return record(seq, t1, &eventsv1.EmailReleased{Email: "a@example.org", UserId: userID})
	}
	tests := []struct {
		name    string
		history []eventlog.Record
		want    EmailClaim
	}{
		{name: "never claimed", want: EmailClaim{}},
		{name: "reserved", history: []eventlog.Record{reserved(3, "u1")}, want: EmailClaim{Holder: "u1", Version: 3}},
		{name: "released", history: []eventlog.Record{reserved(3, "u1"), released(9, "u1")}, want: EmailClaim{Version: 9}},
		{
			name:    "claimed again",
			history: []eventlog.Record{reserved(3, "u1"), released(9, "u1"), reserved(12, "u2")},
			want:    EmailClaim{Holder: "u2", Version: 12},
		},
		{
			name:    "unknown event type keeps the holder",
			history: []eventlog.Record{reserved(3, "u1"), record(4, t1, nil)},
			want:    EmailClaim{Holder: "u1", Version: 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FoldEmailClaim(tt.history); got != tt.want {
				t.Errorf("FoldEmailClaim() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
