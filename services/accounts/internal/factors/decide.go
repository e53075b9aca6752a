package factors

import (
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Notice is where the email about a change goes: the user's primary
// address (empty: none) in the person's language.
type Notice struct {
	Email, Locale string
}

// NewPasskey is a verified registration, to be added.
type NewPasskey struct {
	UserID, PasskeyID               string
	CredentialID, PublicKey, AAGUID []byte
	SignCount                       uint32
	BackupEligible, BackupState, UV bool
	Transports                      []string
	AttestationFormat, Name         string
	UserHandle, ChallengeHash       string
	Notice                          Notice
}

// CleanName checks a passkey's name: trimmed, 1 to MaxNameLength
// characters, no control characters; empty becomes fallback.
func CleanName(name, fallback string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = fallback
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLength || strings.ContainsFunc(name, unicode.IsControl) {
		e := errs.Invalid("A passkey's name is at most 64 characters, without control characters.")
		e.Field = "name"
		return "", e
	}
	return name, nil
}

// AddPasskey decides adding a verified passkey.
func AddPasskey(s State, p NewPasskey, now time.Time) ([]proto.Message, error) {
	switch {
	case p.UserID == "" || p.PasskeyID == "" || len(p.CredentialID) == 0 || len(p.PublicKey) == 0:
		return nil, errs.Internalf("add passkey: user, id, credential and key are required")
	case s.ChallengeSpent(p.ChallengeHash, now):
		return nil, errs.PermissionDenied("This passkey registration was already used; try again.")
	case len(s.Passkeys) >= MaxPasskeys:
		return nil, errs.FailedPrecondition("This account has as many passkeys as it may have; remove one first.")
	}
	if _, dup := s.PasskeyByCredential(p.CredentialID); dup {
		return nil, errs.AlreadyExists("This passkey is already registered.")
	}
	name, err := CleanName(p.Name, "Passkey")
	if err != nil {
		return nil, err
	}
	handle := s.UserHandle
	if handle == "" {
		handle = p.UserHandle
	}
	return []proto.Message{&eventsv1.PasskeyAdded{
		UserId: p.UserID, PasskeyId: p.PasskeyID, CredentialId: p.CredentialID, PublicKey: p.PublicKey, Aaguid: p.AAGUID,
		SignCount: p.SignCount, BackupEligible: p.BackupEligible, BackupState: p.BackupState, UserVerified: p.UV,
		Transports: p.Transports, AttestationFormat: p.AttestationFormat, Name: name, UserHandle: handle,
		ChallengeHash: p.ChallengeHash, NoticeEmail: p.Notice.Email, NoticeLocale: p.Notice.Locale,
	}}, nil
}

// Assertion is a verified passkey assertion, to be recorded.
type Assertion struct {
	PasskeyID     string
	SignCount     uint32
	BackupState   bool
	UV            bool
	ChallengeHash string
	Purpose       string
}

// UsePasskey decides recording an assertion: its challenge unspent, its
// counter moving forward when the authenticator keeps one.
func UsePasskey(s State, a Assertion, now time.Time) ([]proto.Message, error) {
	p, ok := s.Passkey(a.PasskeyID)
	switch {
	case !ok:
		return nil, errs.PermissionDenied("This passkey is not registered to the account.")
	case a.ChallengeHash == "" || s.ChallengeSpent(a.ChallengeHash, now):
		return nil, errs.PermissionDenied("This passkey sign-in was already used; try again.")
	case (a.SignCount != 0 || p.SignCount != 0) && a.SignCount <= p.SignCount:
		// WebAuthn §6.1.1: a counter that does not increase means the
		// credential may have been cloned.
		return nil, errs.PermissionDenied("This passkey's counter went backwards: it may have been copied. Remove it and register it again.")
	}
	return []proto.Message{&eventsv1.PasskeyUsed{
		UserId: s.UserID, PasskeyId: p.ID, SignCount: a.SignCount, BackupState: a.BackupState, UserVerified: a.UV,
		ChallengeHash: a.ChallengeHash, Purpose: a.Purpose,
	}}, nil
}

// RenamePasskey decides a passkey's new name.
func RenamePasskey(s State, userID, id, name string) ([]proto.Message, error) {
	p, ok := s.Passkey(id)
	if !ok {
		return nil, errs.NotFound("No such passkey.")
	}
	name, err := CleanName(name, "")
	if err != nil {
		return nil, err
	}
	if name == "" {
		e := errs.Invalid("Give the passkey a name.")
		e.Field = "name"
		return nil, e
	}
	if name == p.Name {
		return nil, nil
	}
	return []proto.Message{&eventsv1.PasskeyRenamed{UserId: userID, PasskeyId: id, Name: name}}, nil
}

// RemovePasskey decides removing a passkey.
func RemovePasskey(s State, userID, id string, n Notice) ([]proto.Message, error) {
	if _, ok := s.Passkey(id); !ok {
		return nil, errs.NotFound("No such passkey.")
	}
	return []proto.Message{&eventsv1.PasskeyRemoved{UserId: userID, PasskeyId: id, NoticeEmail: n.Email, NoticeLocale: n.Locale}}, nil
}

// EnableTOTP decides enabling TOTP with a secret whose code for step was
// just checked.
func EnableTOTP(s State, userID, secret string, step int64, n Notice) ([]proto.Message, error) {
	if s.TOTPSecret != "" {
		return nil, errs.FailedPrecondition("An authenticator app is already set up; remove it first.")
	}
	if secret == "" {
		return nil, errs.Internalf("enable TOTP: no secret")
	}
	return []proto.Message{&eventsv1.TOTPEnabled{UserId: userID, Secret: secret, Step: step, NoticeEmail: n.Email, NoticeLocale: n.Locale}}, nil
}

// UseTOTP decides spending a step whose code was just checked: a step at or
// before the last one spent is a replay.
func UseTOTP(s State, step int64) ([]proto.Message, error) {
	if s.TOTPSecret == "" {
		return nil, errs.FailedPrecondition("No authenticator app is set up.")
	}
	if step <= s.TOTPLastStep {
		return nil, errs.Unauthenticated("This code was already used; wait for the next one.")
	}
	return []proto.Message{&eventsv1.TOTPUsed{UserId: s.UserID, Step: step}}, nil
}

// DisableTOTP decides removing TOTP.
func DisableTOTP(s State, userID string, n Notice) ([]proto.Message, error) {
	if s.TOTPSecret == "" {
		return nil, errs.NotFound("No authenticator app is set up.")
	}
	return []proto.Message{&eventsv1.TOTPDisabled{UserId: userID, NoticeEmail: n.Email, NoticeLocale: n.Locale}}, nil
}

// GenerateRecoveryCodes decides replacing the recovery codes with hashes.
func GenerateRecoveryCodes(userID string, hashes []string, n Notice) ([]proto.Message, error) {
	if len(hashes) != RecoveryCodeCount {
		return nil, errs.Internalf("recovery codes: %d hashes, want %d", len(hashes), RecoveryCodeCount)
	}
	return []proto.Message{&eventsv1.RecoveryCodesGenerated{UserId: userID, CodeHashes: hashes, NoticeEmail: n.Email, NoticeLocale: n.Locale}}, nil
}

// UseRecoveryCode decides spending the code whose keyed hash is hash
// (compared by the caller in constant time: index is its position).
func UseRecoveryCode(s State, index int, n Notice) ([]proto.Message, error) {
	if index < 0 || index >= len(s.RecoveryCodes) || s.RecoveryCodes[index].Used {
		return nil, errs.Unauthenticated("This recovery code is wrong or was already used.")
	}
	return []proto.Message{&eventsv1.RecoveryCodeUsed{UserId: s.UserID, Index: int32(index), NoticeEmail: n.Email, NoticeLocale: n.Locale}}, nil
}

// SetRequired decides a requirement change, by the person or by an administrator.
func SetRequired(s State, userID string, required, byAdmin bool) ([]proto.Message, error) {
	if byAdmin && s.RequiredByAdmin == required || !byAdmin && s.RequiredByUser == required {
		return nil, nil
	}
	return []proto.Message{&eventsv1.SecondFactorRequirementSet{UserId: userID, Required: required, ByAdmin: byAdmin}}, nil
}

// Reset decides removing every factor (an administrator's recovery).
func Reset(s State, userID string, n Notice) ([]proto.Message, error) {
	if !s.HasSecondFactor() && len(s.RecoveryCodes) == 0 {
		return nil, nil
	}
	return []proto.Message{&eventsv1.SecondFactorsReset{UserId: userID, NoticeEmail: n.Email, NoticeLocale: n.Locale}}, nil
}

// Policy is the server's second-factor policy (account.second_factor).
type Policy string

// The policies.
const (
	Optional          Policy = "optional"
	RequiredForAdmins Policy = "required_for_admins"
	Required          Policy = "required"
)

// Need is what a sign-in needs after its first factor.
type Need int

// What a sign-in may need.
const (
	NeedNothing Need = iota
	// NeedVerify: a passkey, a TOTP code or a recovery code.
	NeedVerify
	// NeedEnrol: a second factor is required and the user has none: set one up.
	NeedEnrol
)

// RequiredByPolicy reports whether the server's policy requires a second
// factor of a user.
func (p Policy) RequiredByPolicy(admin bool) bool {
	return p == Required || p == RequiredForAdmins && admin
}

// NeedOf says what a user's sign-in needs beyond its first factor.
func NeedOf(p Policy, admin bool, s State) Need {
	switch {
	case s.HasSecondFactor():
		return NeedVerify
	case s.RequiredByUser || s.RequiredByAdmin || p.RequiredByPolicy(admin):
		return NeedEnrol
	}
	return NeedNothing
}

// Satisfies reports whether methods include a second factor: a passkey (a
// passwordless one is verified by the authenticator: something held and
// something known or been), a TOTP code or a recovery code.
func Satisfies(methods []string) bool {
	return slices.ContainsFunc(methods, func(m string) bool {
		return m == MethodPasskey || m == MethodTOTP || m == MethodRecoveryCode
	})
}
