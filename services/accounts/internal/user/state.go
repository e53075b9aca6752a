package user

import (
	"time"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// State is a user as its events describe it.
type State struct {
	// ID is the user's id; empty until the user is registered.
	ID string
	// Username is the user's Matrix localpart.
	Username string
	// Email is the user's lower-cased email address, or empty.
	Email string
	// DisplayName is the user's display name, or empty.
	DisplayName string
	// PasswordHash is the PHC string of the password, or empty without one.
	PasswordHash string
	// Admin reports whether the user is an administrator.
	Admin bool
	// Locked reports whether the user is locked out of signing in.
	Locked bool
	// Deactivated reports whether the account is deactivated.
	Deactivated bool
	// Version is the sequence of the last record applied, 0 for none.
	Version uint64
	// CreatedAt is when the user registered.
	CreatedAt time.Time
	// UpdatedAt is when a known event last changed the user.
	UpdatedAt time.Time
}

// Exists reports whether the user has been registered.
func (s State) Exists() bool { return s.ID != "" }

// Fold replays a user's history, oldest first, into its State.
func Fold(history []eventlog.Record) State {
	var s State
	for _, rec := range history {
		s.Apply(rec)
	}
	return s
}

// Apply applies one record to the state. Every record advances Version, so it
// stays the aggregate's last subject sequence; records of event types this
// package does not know (including nil events from newer binaries) change
// nothing else.
func (s *State) Apply(rec eventlog.Record) {
	s.Version = rec.Seq
	switch ev := rec.Event.(type) {
	case *eventsv1.UserRegistered:
		s.ID = ev.GetUserId()
		s.Username = ev.GetUsername()
		s.Email = ev.GetEmail()
		s.PasswordHash = ev.GetPasswordHash()
		s.Admin = ev.GetAdmin()
		s.DisplayName = ev.GetDisplayName()
		s.CreatedAt = rec.OccurredAt()
	case *eventsv1.PasswordChanged:
		s.PasswordHash = ev.GetPasswordHash()
	case *eventsv1.UserLocked:
		s.Locked = true
	case *eventsv1.UserUnlocked:
		s.Locked = false
	case *eventsv1.UserDeactivated:
		s.Deactivated = true
	case *eventsv1.UserReactivated:
		s.Deactivated = false
	case *eventsv1.DisplayNameSet:
		s.DisplayName = ev.GetDisplayName()
	case *eventsv1.AdminSet:
		s.Admin = ev.GetAdmin()
	default:
		return
	}
	s.UpdatedAt = rec.OccurredAt()
}
