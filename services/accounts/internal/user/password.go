package user

import (
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Password is a user's password hash as the events record it: sealed with the
// deployment's key-encryption key (platform/sealed), or, in events written
// before sealing, in clear. Opening it is the caller's business.
type Password struct {
	// Sealed is the sealed PHC string.
	Sealed *eventsv1.SealedSecret
	// Clear is the PHC string of events written before sealing.
	Clear string
}

// Set reports whether there is a password.
func (p Password) Set() bool { return p.Sealed != nil || p.Clear != "" }

// passwordOf returns what an event records of a password hash.
func passwordOf(sealed *eventsv1.SealedSecret, clear string) Password {
	if sealed != nil {
		return Password{Sealed: sealed}
	}
	return Password{Clear: clear}
}

// ResealPassword decides recording the user's password hash again, as reseal
// returns it: the same hash sealed under the current key-encryption key
// (PasswordChanged, reason RESEALED). reseal returns nil when the hash needs
// no sealing again; a user without a password changes nothing. Deactivated
// users' hashes are sealed again too, for a reactivation.
func ResealPassword(s State, reseal func(Password) (*eventsv1.SealedSecret, error)) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	if !s.Password.Set() {
		return nil, nil
	}
	sealed, err := reseal(s.Password)
	if err != nil {
		return nil, errs.Internalf("reseal the password hash of %s: %w", s.ID, err)
	}
	if sealed == nil {
		return nil, nil
	}
	return events(&eventsv1.PasswordChanged{
		UserId: s.ID, SealedPasswordHash: sealed, Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RESEALED,
	}), nil
}
