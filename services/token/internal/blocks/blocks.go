// Package blocks says whose tokens must not work: users who are locked (until
// they are unlocked) or deactivated (until they are reactivated), as the
// accounts service's user events tell it. A pure reducer; the token service
// keeps it in a projection (user_blocks) and in every replica's memory.
package blocks

import (
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// State is what the token service knows of one user.
type State struct {
	Locked, Deactivated bool
}

// Blocked reports whether the user's sessions must be refused: inactive at
// introspection, no refresh, no new session.
func (s State) Blocked() bool { return s.Locked || s.Deactivated }

// Apply returns the state after one event of the user aggregate
// (accounts.user.<id>) and whether the event bears on it. An event of a type
// this package does not handle is an error wrapping eventlog.ErrUnhandled.
func Apply(s State, rec eventlog.Record) (State, bool, error) {
	switch rec.Event.(type) {
	case *eventsv1.UserLocked:
		s.Locked = true
	case *eventsv1.UserUnlocked:
		s.Locked = false
	case *eventsv1.UserDeactivated:
		s.Deactivated = true
	case *eventsv1.UserReactivated:
		s.Deactivated = false
	case *eventsv1.UserImported:
		ev := rec.Event.(*eventsv1.UserImported)
		if !ev.GetLocked() && !ev.GetDeactivated() {
			return s, false, nil // an imported user free to sign in: nothing to know
		}
		s.Locked, s.Deactivated = ev.GetLocked(), ev.GetDeactivated()
	case *eventsv1.UserRegistered, *eventsv1.PasswordChanged, *eventsv1.DisplayNameSet, *eventsv1.AdminSet,
		*eventsv1.EmailAdded, *eventsv1.EmailRemoved, *eventsv1.PrimaryEmailSet,
		*eventsv1.UpstreamLinked, *eventsv1.UpstreamUnlinked:
		return s, false, nil // no bearing on whether the user's tokens work
	default:
		return s, false, eventlog.Unhandled(rec)
	}
	return s, true, nil
}
