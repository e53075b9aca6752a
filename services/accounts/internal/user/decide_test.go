package user

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

const (
	reasonUser    = eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_USER
	reasonUpgrade = eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_UPGRADE
)

// deactivated is alice after deactivation.
func deactivated() State { return with(alice(), func(s *State) { s.Deactivated = true }) }

// erased is alice after deactivation with erase.
func erased() State {
	s := alice()
	s.Apply(record(s.Version+1, t1, &eventsv1.UserDeactivated{UserId: "u1", Erase: true}))
	return s
}

// locked is alice after locking.
func locked() State { return with(alice(), func(s *State) { s.Locked = true }) }

// registerCmd is a valid command registering u1.
func registerCmd() RegisterCommand {
	return RegisterCommand{
		UserID:      "u1",
		Username:    "alice",
		ServerName:  "example.org",
		Email:       " Alice@Example.ORG ",
		Password:    registeredHash,
		DisplayName: "Alice",
	}
}

// registeredHash stands for a sealed password hash given at registration.
var registeredHash = &eventsv1.SealedSecret{KeyId: "0123456789abcdef", Ciphertext: []byte("sealed hash")}

// registerWith returns registerCmd changed by f.
func registerWith(f func(*RegisterCommand)) RegisterCommand {
	cmd := registerCmd()
	f(&cmd)
	return cmd
}

func TestDecisions(t *testing.T) {
	tests := []struct {
		name      string
		decide    func() ([]proto.Message, error)
		want      []proto.Message
		wantErr   bool
		wantKind  errs.Kind
		wantField string
	}{
		// Register.
		{
			name:   "register",
			decide: func() ([]proto.Message, error) { return Register(State{}, registerCmd()) },
			want: []proto.Message{&eventsv1.UserRegistered{
				UserId: "u1", Username: "alice", Email: "alice@example.org",
				SealedPasswordHash: registeredHash, DisplayName: "Alice",
			}},
		},
		{
			name: "register admin without email, password or display name",
			decide: func() ([]proto.Message, error) {
				return Register(State{}, RegisterCommand{UserID: "u2", Username: "root", ServerName: "example.org", Admin: true})
			},
			want: []proto.Message{&eventsv1.UserRegistered{UserId: "u2", Username: "root", Admin: true}},
		},
		{
			name:     "register existing user",
			decide:   func() ([]proto.Message, error) { return Register(alice(), registerCmd()) },
			wantErr:  true,
			wantKind: errs.KindAlreadyExists,
		},
		{
			name: "register invalid username",
			decide: func() ([]proto.Message, error) {
				return Register(State{}, registerWith(func(c *RegisterCommand) { c.Username = "Alice" }))
			},
			wantErr: true, wantKind: errs.KindInvalid, wantField: "username",
		},
		{
			name: "register invalid email",
			decide: func() ([]proto.Message, error) {
				return Register(State{}, registerWith(func(c *RegisterCommand) { c.Email = "alice" }))
			},
			wantErr: true, wantKind: errs.KindInvalid, wantField: "email",
		},
		{
			name: "register invalid display name",
			decide: func() ([]proto.Message, error) {
				return Register(State{}, registerWith(func(c *RegisterCommand) { c.DisplayName = "a\nb" }))
			},
			wantErr: true, wantKind: errs.KindInvalid, wantField: "display_name",
		},
		{
			name: "register without user id",
			decide: func() ([]proto.Message, error) {
				return Register(State{}, registerWith(func(c *RegisterCommand) { c.UserID = "" }))
			},
			wantErr: true, wantKind: errs.KindInternal,
		},
		{
			name: "register without server name",
			decide: func() ([]proto.Message, error) {
				return Register(State{}, registerWith(func(c *RegisterCommand) { c.ServerName = "" }))
			},
			wantErr: true, wantKind: errs.KindInternal,
		},

		// ChangePassword.
		{
			name:   "change password",
			decide: func() ([]proto.Message, error) { return ChangePassword(alice(), newHash, reasonUser) },
			want:   []proto.Message{&eventsv1.PasswordChanged{UserId: "u1", SealedPasswordHash: newHash, Reason: reasonUser}},
		},
		{
			name: "change password to the current hash",
			decide: func() ([]proto.Message, error) {
				return ChangePassword(with(alice(), func(s *State) { s.Password = Password{Sealed: newHash} }), newHash, reasonUser)
			},
		},
		{
			name:   "change password of locked user",
			decide: func() ([]proto.Message, error) { return ChangePassword(locked(), newHash, reasonUpgrade) },
			want:   []proto.Message{&eventsv1.PasswordChanged{UserId: "u1", SealedPasswordHash: newHash, Reason: reasonUpgrade}},
		},
		{
			name:     "change password of unknown user",
			decide:   func() ([]proto.Message, error) { return ChangePassword(State{}, newHash, reasonUser) },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},
		{
			name:     "change password of deactivated user",
			decide:   func() ([]proto.Message, error) { return ChangePassword(deactivated(), newHash, reasonUser) },
			wantErr:  true,
			wantKind: errs.KindFailedPrecondition,
		},
		{
			name:     "change password to no hash",
			decide:   func() ([]proto.Message, error) { return ChangePassword(alice(), nil, reasonUser) },
			wantErr:  true,
			wantKind: errs.KindInternal,
		},
		{
			name: "change password without reason",
			decide: func() ([]proto.Message, error) {
				return ChangePassword(alice(), newHash, eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_UNSPECIFIED)
			},
			wantErr:  true,
			wantKind: errs.KindInternal,
		},
		{
			name: "change password as a reseal",
			decide: func() ([]proto.Message, error) {
				return ChangePassword(alice(), newHash, eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RESEALED)
			},
			wantErr:  true,
			wantKind: errs.KindInternal,
		},

		// ResealPassword.
		{
			name: "reseal a hash kept in clear",
			decide: func() ([]proto.Message, error) {
				return ResealPassword(alice(), func(p Password) (*eventsv1.SealedSecret, error) {
					if p.Clear != alice().Password.Clear {
						t.Errorf("reseal got %+v", p)
					}
					return newHash, nil
				})
			},
			want: []proto.Message{&eventsv1.PasswordChanged{UserId: "u1", SealedPasswordHash: newHash, Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RESEALED}},
		},
		{
			name: "reseal the hash of a deactivated user",
			decide: func() ([]proto.Message, error) {
				return ResealPassword(deactivated(), func(Password) (*eventsv1.SealedSecret, error) { return newHash, nil })
			},
			want: []proto.Message{&eventsv1.PasswordChanged{UserId: "u1", SealedPasswordHash: newHash, Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RESEALED}},
		},
		{
			name: "reseal a current hash",
			decide: func() ([]proto.Message, error) {
				return ResealPassword(alice(), func(Password) (*eventsv1.SealedSecret, error) { return nil, nil })
			},
		},
		{
			name: "reseal without a password",
			decide: func() ([]proto.Message, error) {
				return ResealPassword(with(alice(), func(s *State) { s.Password = Password{} }), func(Password) (*eventsv1.SealedSecret, error) {
					t.Error("reseal called without a password")
					return newHash, nil
				})
			},
		},
		{
			name: "reseal a hash that does not open",
			decide: func() ([]proto.Message, error) {
				return ResealPassword(alice(), func(Password) (*eventsv1.SealedSecret, error) { return nil, errs.Internalf("unknown key") })
			},
			wantErr: true, wantKind: errs.KindInternal,
		},
		{
			name: "reseal for an unknown user",
			decide: func() ([]proto.Message, error) {
				return ResealPassword(State{}, func(Password) (*eventsv1.SealedSecret, error) { return newHash, nil })
			},
			wantErr: true, wantKind: errs.KindNotFound,
		},

		// Lock and Unlock.
		{
			name:   "lock",
			decide: func() ([]proto.Message, error) { return Lock(alice(), "spam") },
			want:   []proto.Message{&eventsv1.UserLocked{UserId: "u1", Reason: "spam"}},
		},
		{
			name:   "lock deactivated user",
			decide: func() ([]proto.Message, error) { return Lock(deactivated(), "") },
			want:   []proto.Message{&eventsv1.UserLocked{UserId: "u1"}},
		},
		{
			name:   "lock locked user",
			decide: func() ([]proto.Message, error) { return Lock(locked(), "again") },
		},
		{
			name:     "lock unknown user",
			decide:   func() ([]proto.Message, error) { return Lock(State{}, "spam") },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},
		{
			name:      "lock with overlong reason",
			decide:    func() ([]proto.Message, error) { return Lock(alice(), strings.Repeat("x", MaxTextLength+1)) },
			wantErr:   true,
			wantKind:  errs.KindInvalid,
			wantField: "reason",
		},
		{
			name:   "unlock",
			decide: func() ([]proto.Message, error) { return Unlock(locked()) },
			want:   []proto.Message{&eventsv1.UserUnlocked{UserId: "u1"}},
		},
		{
			name:   "unlock unlocked user",
			decide: func() ([]proto.Message, error) { return Unlock(alice()) },
		},
		{
			name:     "unlock unknown user",
			decide:   func() ([]proto.Message, error) { return Unlock(State{}) },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},

		// Deactivate and Reactivate.
		{
			name:   "deactivate and erase",
			decide: func() ([]proto.Message, error) { return Deactivate(alice(), true) },
			want:   []proto.Message{&eventsv1.UserDeactivated{UserId: "u1", Erase: true}},
		},
		{
			name:   "deactivate locked user",
			decide: func() ([]proto.Message, error) { return Deactivate(locked(), false) },
			want:   []proto.Message{&eventsv1.UserDeactivated{UserId: "u1"}},
		},
		{
			name:   "deactivate deactivated user",
			decide: func() ([]proto.Message, error) { return Deactivate(deactivated(), false) },
		},
		{
			name:   "erase a deactivated user",
			decide: func() ([]proto.Message, error) { return Deactivate(deactivated(), true) },
			want:   []proto.Message{&eventsv1.UserDeactivated{UserId: "u1", Erase: true}},
		},
		{
			name:   "erase an erased user",
			decide: func() ([]proto.Message, error) { return Deactivate(erased(), true) },
		},
		{
			name:   "deactivate an erased user",
			decide: func() ([]proto.Message, error) { return Deactivate(erased(), false) },
		},
		{
			name:     "reactivate an erased user",
			decide:   func() ([]proto.Message, error) { return Reactivate(erased()) },
			wantErr:  true,
			wantKind: errs.KindFailedPrecondition,
		},
		{
			name:     "deactivate unknown user",
			decide:   func() ([]proto.Message, error) { return Deactivate(State{}, false) },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},
		{
			name:   "reactivate",
			decide: func() ([]proto.Message, error) { return Reactivate(deactivated()) },
			want:   []proto.Message{&eventsv1.UserReactivated{UserId: "u1"}},
		},
		{
			name:   "reactivate active user",
			decide: func() ([]proto.Message, error) { return Reactivate(alice()) },
		},
		{
			name:     "reactivate unknown user",
			decide:   func() ([]proto.Message, error) { return Reactivate(State{}) },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},

		// SetDisplayName.
		{
			name:   "set display name",
			decide: func() ([]proto.Message, error) { return SetDisplayName(alice(), "Alice Liddell") },
			want:   []proto.Message{&eventsv1.DisplayNameSet{UserId: "u1", DisplayName: "Alice Liddell"}},
		},
		{
			name:   "clear display name",
			decide: func() ([]proto.Message, error) { return SetDisplayName(alice(), "") },
			want:   []proto.Message{&eventsv1.DisplayNameSet{UserId: "u1"}},
		},
		{
			name:   "set the current display name",
			decide: func() ([]proto.Message, error) { return SetDisplayName(alice(), "Alice") },
		},
		{
			name:     "set display name of unknown user",
			decide:   func() ([]proto.Message, error) { return SetDisplayName(State{}, "Eve") },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},
		{
			name:     "set display name of deactivated user",
			decide:   func() ([]proto.Message, error) { return SetDisplayName(deactivated(), "Eve") },
			wantErr:  true,
			wantKind: errs.KindFailedPrecondition,
		},
		{
			name:      "set display name with control character",
			decide:    func() ([]proto.Message, error) { return SetDisplayName(alice(), "Alice\x00") },
			wantErr:   true,
			wantKind:  errs.KindInvalid,
			wantField: "display_name",
		},

		// SetAdmin.
		{
			name:   "grant admin",
			decide: func() ([]proto.Message, error) { return SetAdmin(alice(), true) },
			want:   []proto.Message{&eventsv1.AdminSet{UserId: "u1", Admin: true}},
		},
		{
			name: "revoke admin of deactivated user",
			decide: func() ([]proto.Message, error) {
				return SetAdmin(with(deactivated(), func(s *State) { s.Admin = true }), false)
			},
			want: []proto.Message{&eventsv1.AdminSet{UserId: "u1", Admin: false}},
		},
		{
			name:   "revoke admin of non-admin",
			decide: func() ([]proto.Message, error) { return SetAdmin(alice(), false) },
		},
		{
			name:     "grant admin to unknown user",
			decide:   func() ([]proto.Message, error) { return SetAdmin(State{}, true) },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},
		{
			name:     "grant admin to deactivated user",
			decide:   func() ([]proto.Message, error) { return SetAdmin(deactivated(), true) },
			wantErr:  true,
			wantKind: errs.KindFailedPrecondition,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decide()
			if tt.wantErr {
				assertError(t, err, tt.wantKind, tt.wantField)
				if got != nil {
					t.Errorf("events = %v alongside error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			assertEvents(t, got, tt.want)
		})
	}
}

// TestDecisionsAreIdempotent applies each decision's events and decides the
// same command again: the second decision must find nothing to do.
func TestDecisionsAreIdempotent(t *testing.T) {
	tests := []struct {
		name   string
		state  State
		decide func(State) ([]proto.Message, error)
	}{
		{"change password", alice(), func(s State) ([]proto.Message, error) { return ChangePassword(s, newHash, reasonUser) }},
		{"reseal password", alice(), func(s State) ([]proto.Message, error) {
			return ResealPassword(s, func(p Password) (*eventsv1.SealedSecret, error) {
				if p.Sealed == newHash {
					return nil, nil
				}
				return newHash, nil
			})
		}},
		{"lock", alice(), func(s State) ([]proto.Message, error) { return Lock(s, "spam") }},
		{"unlock", locked(), Unlock},
		{"deactivate", alice(), func(s State) ([]proto.Message, error) { return Deactivate(s, true) }},
		{"reactivate", deactivated(), Reactivate},
		{"set display name", alice(), func(s State) ([]proto.Message, error) { return SetDisplayName(s, "Al") }},
		{"grant admin", alice(), func(s State) ([]proto.Message, error) { return SetAdmin(s, true) }},
		{"revoke admin", with(alice(), func(s *State) { s.Admin = true }),
			func(s State) ([]proto.Message, error) { return SetAdmin(s, false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, err := tt.decide(tt.state)
			if err != nil || len(first) != 1 {
				t.Fatalf("first decision = %v, %v; want one event", first, err)
			}
			s := tt.state
			s.Apply(record(s.Version+1, t1, first[0]))
			if s.Version != tt.state.Version+1 || !s.UpdatedAt.Equal(t1) {
				t.Errorf("Apply left Version %d, UpdatedAt %v", s.Version, s.UpdatedAt)
			}
			again, err := tt.decide(s)
			if err != nil || len(again) != 0 {
				t.Errorf("second decision = %v, %v; want no events and no error", again, err)
			}
		})
	}
}

// TestRegisterThenFold checks that the registered state holds the normalized
// command.
func TestRegisterThenFold(t *testing.T) {
	evs, err := Register(State{}, registerCmd())
	if err != nil {
		t.Fatal(err)
	}
	got := Fold([]eventlog.Record{record(1, t0, evs[0])})
	want := with(alice(), func(s *State) { s.Password = Password{Sealed: registeredHash} })
	if !sameState(got, want) {
		t.Errorf("state = %+v\nwant %+v", got, want)
	}
}

// assertError checks that err is an errs error of kind, naming field, with a
// public message.
func assertError(t *testing.T, err error, kind errs.Kind, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want kind %v", kind)
	}
	if got := errs.KindOf(err); got != kind {
		t.Errorf("kind = %v, want %v (error %v)", got, kind, err)
	}
	if got := errs.FieldOf(err); got != field {
		t.Errorf("field = %q, want %q", got, field)
	}
	generic := errs.PublicMessage(&errs.Error{Kind: kind})
	if kind != errs.KindInternal && errs.PublicMessage(err) == generic {
		t.Errorf("public message %q is the kind's default", generic)
	}
}

// assertEvents compares decided events with the expected ones.
func assertEvents(t *testing.T, got, want []proto.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("event %d = %v, want %v", i, got[i], want[i])
		}
	}
}
