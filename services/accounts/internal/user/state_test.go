package user

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

var (
	t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Hour)
	t2 = t0.Add(2 * time.Hour)
)

// record builds a stored record of ev for user u1 at sequence seq; a nil ev
// stands for an event type this binary does not know.
func record(seq uint64, at time.Time, ev proto.Message) eventlog.Record {
	env := &eventsv1.Envelope{
		Id:            "ev",
		AggregateType: "user",
		AggregateId:   "u1",
		OccurredAt:    timestamppb.New(at),
	}
	typeName := "gatehouse.events.v9.FromTheFuture"
	if ev != nil {
		typeName = string(ev.ProtoReflect().Descriptor().FullName())
	}
	// Apply reads only Event and the envelope's metadata, so the payload
	// carries just its type.
	env.Payload = &anypb.Any{TypeUrl: "type.googleapis.com/" + typeName}
	return eventlog.Record{Seq: seq, Subject: "accounts.user.u1", Envelope: env, Event: ev}
}

// registered is the record that starts user u1.
func registered(seq uint64, at time.Time) eventlog.Record {
	return record(seq, at, &eventsv1.UserRegistered{
		UserId:       "u1",
		Username:     "alice",
		Email:        "alice@example.org",
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		DisplayName:  "Alice",
	})
}

// newHash stands for a sealed password hash, opaque to the aggregate.
var newHash = &eventsv1.SealedSecret{KeyId: "0123456789abcdef", Ciphertext: []byte("sealed new hash")}

// alice is u1 as registered at t0 with sequence 1.
func alice() State {
	return State{
		ID:          "u1",
		Username:    "alice",
		Email:       "alice@example.org",
		Emails:      []Email{{Address: "alice@example.org", Primary: true, AddedAt: t0}},
		DisplayName: "Alice",
		Password:    Password{Clear: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"},
		Version:     1,
		CreatedAt:   t0,
		UpdatedAt:   t0,
	}
}

// with returns s changed by f, for building expected states.
func with(s State, f func(*State)) State {
	f(&s)
	return s
}

// sameState compares states, times by instant.
func sameState(a, b State) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) || !a.UpdatedAt.Equal(b.UpdatedAt) {
		return false
	}
	sameEmail := func(x, y Email) bool {
		return x.Address == y.Address && x.Primary == y.Primary && x.AddedAt.Equal(y.AddedAt)
	}
	if !slices.EqualFunc(a.Emails, b.Emails, sameEmail) {
		return false
	}
	a.CreatedAt, a.UpdatedAt, b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	a.Emails, b.Emails = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestFold(t *testing.T) {
	tests := []struct {
		name    string
		history []eventlog.Record
		want    State
	}{
		{name: "empty history", history: nil, want: State{}},
		{name: "registered", history: []eventlog.Record{registered(1, t0)}, want: alice()},
		{
			name: "registered admin without email",
			history: []eventlog.Record{record(7, t0, &eventsv1.UserRegistered{
				UserId: "u1", Username: "root", Admin: true,
			})},
			want: State{ID: "u1", Username: "root", Admin: true, Version: 7, CreatedAt: t0, UpdatedAt: t0},
		},
		{
			name: "password changed",
			history: []eventlog.Record{registered(1, t0), record(5, t1, &eventsv1.PasswordChanged{
				UserId: "u1", SealedPasswordHash: newHash, Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_USER,
			})},
			want: with(alice(), func(s *State) { s.Password, s.Version, s.UpdatedAt = Password{Sealed: newHash}, 5, t1 }),
		},
		{
			name: "password changed, in clear (before sealing)",
			history: []eventlog.Record{registered(1, t0), record(5, t1, &eventsv1.PasswordChanged{
				UserId: "u1", PasswordHash: "new", Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_USER,
			})},
			want: with(alice(), func(s *State) { s.Password, s.Version, s.UpdatedAt = Password{Clear: "new"}, 5, t1 }),
		},
		{
			name: "password sealed again",
			history: []eventlog.Record{registered(1, t0), record(5, t1, &eventsv1.PasswordChanged{
				UserId: "u1", SealedPasswordHash: newHash, Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RESEALED,
			})},
			want: with(alice(), func(s *State) { s.Password, s.Version, s.UpdatedAt = Password{Sealed: newHash}, 5, t1 }),
		},
		{
			name:    "locked",
			history: []eventlog.Record{registered(1, t0), record(2, t1, &eventsv1.UserLocked{UserId: "u1", Reason: "spam"})},
			want:    with(alice(), func(s *State) { s.Locked, s.Version, s.UpdatedAt = true, 2, t1 }),
		},
		{
			name: "locked then unlocked",
			history: []eventlog.Record{
				registered(1, t0),
				record(2, t1, &eventsv1.UserLocked{UserId: "u1"}),
				record(3, t2, &eventsv1.UserUnlocked{UserId: "u1"}),
			},
			want: with(alice(), func(s *State) { s.Version, s.UpdatedAt = 3, t2 }),
		},
		{
			name:    "deactivated",
			history: []eventlog.Record{registered(1, t0), record(2, t1, &eventsv1.UserDeactivated{UserId: "u1"})},
			want:    with(alice(), func(s *State) { s.Deactivated, s.Version, s.UpdatedAt = true, 2, t1 }),
		},
		{
			name:    "erased",
			history: []eventlog.Record{registered(1, t0), record(2, t1, &eventsv1.UserDeactivated{UserId: "u1", Erase: true})},
			want: with(alice(), func(s *State) {
				s.Deactivated, s.Erased, s.Version, s.UpdatedAt = true, true, 2, t1
				s.Email, s.Emails, s.DisplayName, s.Password = "", nil, "", Password{}
			}),
		},
		{
			name: "deactivated then reactivated",
			history: []eventlog.Record{
				registered(1, t0),
				record(2, t1, &eventsv1.UserDeactivated{UserId: "u1"}),
				record(3, t2, &eventsv1.UserReactivated{UserId: "u1"}),
			},
			want: with(alice(), func(s *State) { s.Version, s.UpdatedAt = 3, t2 }),
		},
		{
			name:    "display name cleared",
			history: []eventlog.Record{registered(1, t0), record(2, t1, &eventsv1.DisplayNameSet{UserId: "u1"})},
			want:    with(alice(), func(s *State) { s.DisplayName, s.Version, s.UpdatedAt = "", 2, t1 }),
		},
		{
			name:    "made admin",
			history: []eventlog.Record{registered(1, t0), record(2, t1, &eventsv1.AdminSet{UserId: "u1", Admin: true})},
			want:    with(alice(), func(s *State) { s.Admin, s.Version, s.UpdatedAt = true, 2, t1 }),
		},
		{
			name:    "unknown event type advances only the version",
			history: []eventlog.Record{registered(1, t0), record(9, t1, nil)},
			want:    with(alice(), func(s *State) { s.Version = 9 }),
		},
		{
			name: "event of another aggregate type advances only the version",
			history: []eventlog.Record{registered(1, t0), record(4, t1, &eventsv1.EmailReserved{
				Email: "eve@example.org", UserId: "u1",
			})},
			want: with(alice(), func(s *State) { s.Version = 4 }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fold(tt.history)
			if !sameState(got, tt.want) {
				t.Errorf("Fold() = %+v\nwant %+v", got, tt.want)
			}
			if got.Exists() != (tt.want.ID != "") {
				t.Errorf("Exists() = %v for ID %q", got.Exists(), got.ID)
			}
		})
	}
}

func TestApplyMatchesFold(t *testing.T) {
	history := []eventlog.Record{
		registered(1, t0),
		record(2, t1, &eventsv1.UserLocked{UserId: "u1"}),
		record(3, t2, &eventsv1.AdminSet{UserId: "u1", Admin: true}),
	}
	var s State
	for i, rec := range history {
		s.Apply(rec)
		if want := Fold(history[:i+1]); !sameState(s, want) {
			t.Fatalf("after %d records Apply gives %+v, Fold gives %+v", i+1, s, want)
		}
	}
}
