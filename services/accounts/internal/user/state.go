package user

import (
	"slices"
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
	// Email is the user's primary email address (lower-cased), or empty
	// without one. It is always one of Emails.
	Email string
	// Emails are the user's addresses in the order they were added, the
	// primary one flagged. They are all verified: the address given at
	// registration and every address added after the caller verified it.
	Emails []Email
	// DisplayName is the user's display name, or empty.
	DisplayName string
	// Password is the password hash as recorded (sealed), unset without one.
	Password Password
	// Admin reports whether the user is an administrator.
	Admin bool
	// Locked reports whether the user is locked out of signing in.
	Locked bool
	// Deactivated reports whether the account is deactivated.
	Deactivated bool
	// Erased reports whether the account was deactivated with erase: its
	// personal key is destroyed, its addresses released, its display name and
	// password gone for good. Only the username remains, reserved.
	Erased bool
	// Links are the user's upstream links, in the order they were made.
	Links []Link
	// Version is the sequence of the last record applied, 0 for none.
	Version uint64
	// CreatedAt is when the user registered.
	CreatedAt time.Time
	// UpdatedAt is when a known event last changed the user.
	UpdatedAt time.Time
}

// Email is one of a user's email addresses.
type Email struct {
	// Address is the lower-cased address.
	Address string
	// Primary marks the address notices go to; a user with addresses has
	// exactly one primary address.
	Primary bool
	// AddedAt is when the address was registered or added.
	AddedAt time.Time
}

// HasEmail reports whether address (normalized) is one of the user's addresses.
func (s State) HasEmail(address string) bool {
	return slices.ContainsFunc(s.Emails, func(e Email) bool { return e.Address == address })
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
		s.Emails = nil
		if s.Email != "" {
			s.Emails = []Email{{Address: s.Email, Primary: true, AddedAt: rec.OccurredAt()}}
		}
		s.Password = passwordOf(ev.GetSealedPasswordHash(), ev.GetPasswordHash())
		s.Admin = ev.GetAdmin()
		s.DisplayName = ev.GetDisplayName()
		s.CreatedAt = rec.OccurredAt()
	case *eventsv1.UserImported:
		s.applyImported(ev)
	case *eventsv1.PasswordChanged:
		s.Password = passwordOf(ev.GetSealedPasswordHash(), ev.GetPasswordHash())
	case *eventsv1.UserLocked:
		s.Locked = true
	case *eventsv1.UserUnlocked:
		s.Locked = false
	case *eventsv1.UserDeactivated:
		s.Deactivated = true
		if ev.GetErase() {
			s.Erased = true
			s.Email, s.Emails, s.DisplayName, s.Password = "", nil, "", Password{}
		}
	case *eventsv1.UserReactivated:
		s.Deactivated = false
	case *eventsv1.DisplayNameSet:
		s.DisplayName = ev.GetDisplayName()
	case *eventsv1.AdminSet:
		s.Admin = ev.GetAdmin()
	case *eventsv1.EmailAdded:
		s.addEmail(ev.GetEmail(), rec.OccurredAt())
	case *eventsv1.EmailRemoved:
		s.Emails = slices.DeleteFunc(slices.Clone(s.Emails), func(e Email) bool { return e.Address == ev.GetEmail() })
		if s.Email == ev.GetEmail() { // not decided, but keep Email one of Emails
			s.Email = ""
		}
	case *eventsv1.PrimaryEmailSet:
		s.setPrimary(ev.GetEmail())
	case *eventsv1.UpstreamLinked:
		if !s.HasLinkClaim(ev.GetClaimKey()) {
			s.Links = append(slices.Clone(s.Links), Link{ID: ev.GetLinkId(), Provider: ev.GetProvider(), ClaimKey: ev.GetClaimKey()})
		}
	case *eventsv1.UpstreamUnlinked:
		s.Links = slices.DeleteFunc(slices.Clone(s.Links), func(l Link) bool { return l.ID == ev.GetLinkId() })
	default:
		return
	}
	s.UpdatedAt = rec.OccurredAt()
}

// addEmail adds an address. A user's first address becomes the primary one:
// that is how a user registered without an address gets one.
func (s *State) addEmail(address string, at time.Time) {
	if s.HasEmail(address) {
		return
	}
	first := s.Email == ""
	s.Emails = append(slices.Clone(s.Emails), Email{Address: address, Primary: first, AddedAt: at})
	if first {
		s.Email = address
	}
}

// setPrimary makes address, which must be one of the user's, the primary one.
func (s *State) setPrimary(address string) {
	if !s.HasEmail(address) {
		return
	}
	emails := slices.Clone(s.Emails)
	for i := range emails {
		emails[i].Primary = emails[i].Address == address
	}
	s.Emails, s.Email = emails, address
}

// applyImported starts the user with an account moved from another
// homeserver, as it was there.
func (s *State) applyImported(ev *eventsv1.UserImported) {
	s.ID, s.Username = ev.GetUserId(), ev.GetUsername()
	s.Email, s.Emails = "", nil
	for _, e := range ev.GetEmails() {
		s.addEmail(e.GetEmail(), e.GetAddedAt().AsTime())
	}
	s.Password = passwordOf(ev.GetSealedPasswordHash(), "")
	s.Admin, s.Locked, s.Deactivated = ev.GetAdmin(), ev.GetLocked(), ev.GetDeactivated()
	s.DisplayName = ev.GetDisplayName()
	s.Links = nil
	for _, l := range ev.GetLinks() {
		s.Links = append(s.Links, Link{ID: l.GetLinkId(), Provider: l.GetProvider(), ClaimKey: l.GetClaimKey()})
	}
	s.CreatedAt = ev.GetCreatedAt().AsTime()
}
