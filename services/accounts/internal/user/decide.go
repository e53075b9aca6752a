package user

import (
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// RegisterCommand asks to create a user.
type RegisterCommand struct {
	// UserID is the new user's id, chosen by the caller (a ULID).
	UserID string
	// Username is the Matrix localpart; see ValidateUsername.
	Username string
	// ServerName is the homeserver's name, which bounds the username's length.
	ServerName string
	// Email is an optional email address; it is stored normalized.
	Email string
	// Password is the PHC string of the password, sealed for the user's
	// aggregate (see Password), or nil for none.
	Password *eventsv1.SealedSecret
	// Admin makes the user an administrator.
	Admin bool
	// DisplayName is an optional display name; see ValidateDisplayName.
	DisplayName string
	// EmailVerificationID is the confirmed verification that proved Email;
	// empty when an administrator vouched for it.
	EmailVerificationID string
}

// Register decides the creation of a user who does not exist yet.
func Register(s State, cmd RegisterCommand) ([]proto.Message, error) {
	if s.Exists() {
		return nil, errs.AlreadyExists("This account already exists")
	}
	if cmd.UserID == "" || cmd.ServerName == "" {
		return nil, errs.Internalf("register: user id %q and server name %q are required",
			cmd.UserID, cmd.ServerName)
	}
	if err := ValidateUsername(cmd.Username, cmd.ServerName); err != nil {
		return nil, err
	}
	email := ""
	if cmd.Email != "" {
		var err error
		if email, err = NormalizeEmail(cmd.Email); err != nil {
			return nil, err
		}
	}
	if err := ValidateDisplayName(cmd.DisplayName); err != nil {
		return nil, err
	}
	if !ValidVerificationID(cmd.EmailVerificationID) || (email == "" && cmd.EmailVerificationID != "") {
		return nil, errs.InvalidField("verification_id", "verification_id must be the id of a verification of the email address")
	}
	return events(&eventsv1.UserRegistered{
		UserId:              cmd.UserID,
		Username:            cmd.Username,
		Email:               email,
		SealedPasswordHash:  cmd.Password,
		Admin:               cmd.Admin,
		DisplayName:         cmd.DisplayName,
		EmailVerificationId: cmd.EmailVerificationID,
	}), nil
}

// ChangePassword decides replacing the user's password hash, sealed, for reason.
func ChangePassword(s State, hash *eventsv1.SealedSecret, reason eventsv1.PasswordChangeReason) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	if hash == nil {
		return nil, errs.Internalf("change password of %s: no password hash", s.ID)
	}
	switch reason {
	case eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_USER,
		eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_ADMIN,
		eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_UPGRADE,
		eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RECOVERY:
	default:
		return nil, errs.Internalf("change password of %s: unsupported reason %v", s.ID, reason)
	}
	if proto.Equal(hash, s.Password.Sealed) {
		return nil, nil
	}
	if s.Deactivated {
		return nil, errs.FailedPrecondition("The password of a deactivated account cannot be changed")
	}
	return events(&eventsv1.PasswordChanged{UserId: s.ID, SealedPasswordHash: hash, Reason: reason}), nil
}

// Lock decides locking the user out of signing in, recording why.
func Lock(s State, reason string) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	if err := validateText("reason", "Lock reasons", reason); err != nil {
		return nil, err
	}
	if s.Locked {
		return nil, nil
	}
	return events(&eventsv1.UserLocked{UserId: s.ID, Reason: reason}), nil
}

// Unlock decides lifting the user's lock.
func Unlock(s State) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	if !s.Locked {
		return nil, nil
	}
	return events(&eventsv1.UserUnlocked{UserId: s.ID}), nil
}

// Deactivate decides deactivating the account; erase also erases the user's
// personal data (see UserDeactivated). An account deactivated without erase
// may be erased later; an erased one stays erased.
func Deactivate(s State, erase bool) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	if s.Deactivated && (!erase || s.Erased) {
		return nil, nil
	}
	return events(&eventsv1.UserDeactivated{UserId: s.ID, Erase: erase}), nil
}

// Reactivate decides re-enabling a deactivated account. An erased account
// cannot come back: its personal data is gone for good.
func Reactivate(s State) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	if !s.Deactivated {
		return nil, nil
	}
	if s.Erased {
		return nil, errs.FailedPrecondition("An erased account cannot be reactivated; its username stays reserved")
	}
	return events(&eventsv1.UserReactivated{UserId: s.ID}), nil
}

// SetDisplayName decides changing the display name; the empty name clears it.
func SetDisplayName(s State, name string) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	if err := ValidateDisplayName(name); err != nil {
		return nil, err
	}
	if name == s.DisplayName {
		return nil, nil
	}
	if s.Deactivated {
		return nil, errs.FailedPrecondition("The display name of a deactivated account cannot be changed")
	}
	return events(&eventsv1.DisplayNameSet{UserId: s.ID, DisplayName: name}), nil
}

// SetAdmin decides granting or removing administrator rights.
func SetAdmin(s State, admin bool) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	if admin == s.Admin {
		return nil, nil
	}
	if admin && s.Deactivated {
		return nil, errs.FailedPrecondition("A deactivated account cannot be made an administrator")
	}
	return events(&eventsv1.AdminSet{UserId: s.ID, Admin: admin}), nil
}

// mustExist fails with errs.KindNotFound unless the user is registered.
func mustExist(s State) error {
	if !s.Exists() {
		return errs.NotFound("No such user")
	}
	return nil
}

// events returns its arguments as a slice, the shape every decision returns.
func events(evs ...proto.Message) []proto.Message { return evs }
