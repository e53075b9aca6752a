// Package factors is the second-factor aggregate of the accounts service: a
// user's passkeys (WebAuthn credentials), TOTP authenticator, recovery codes
// and second-factor requirement, one aggregate per user (subject
// accounts.factors.<user id>). Like package user it is pure: a reducer that
// folds the events into a State, decisions that turn commands into events,
// and the policy that says what a sign-in needs.
//
// The rules:
//
//   - Every use of a factor is an event appended with the aggregate's
//     expected version, so what it spends is spent once across every
//     replica: a TOTP code's time step (and every step before it), a
//     recovery code, a WebAuthn ceremony's challenge. A passkey's signature
//     counter, when the authenticator keeps one, only moves forward; a
//     counter that does not is a cloned authenticator and is refused.
//   - A user has at most MaxPasskeys passkeys, each credential once; one
//     TOTP authenticator; ten recovery codes at a time, replaced as a whole.
//   - The person may require a second factor for themselves and lift it; an
//     administrator's requirement only an administrator lifts.
package factors

import (
	"slices"
	"time"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Limits.
const (
	// MaxPasskeys is how many passkeys a user may have.
	MaxPasskeys = 20
	// MaxNameLength is the longest passkey name, in characters.
	MaxNameLength = 64
	// RecoveryCodeCount is how many recovery codes a user gets at a time.
	RecoveryCodeCount = 10
	// ChallengeTTL is how long a WebAuthn ceremony may take: a challenge is
	// remembered as spent at least this long (its ceremony expires by then).
	ChallengeTTL = 5 * time.Minute
)

// Methods of authentication, as proofs and sessions name them.
const (
	MethodPassword     = "password"
	MethodPasskey      = "passkey"
	MethodTOTP         = "totp"
	MethodRecoveryCode = "recovery_code"
	MethodRegistration = "registration"
	MethodRecovery     = "recovery"
	MethodUpstream     = "upstream"
)

// Passkey is a registered WebAuthn credential.
type Passkey struct {
	ID                string
	CredentialID      []byte
	PublicKey         []byte
	AAGUID            []byte
	SignCount         uint32
	BackupEligible    bool
	BackupState       bool
	UserVerified      bool
	Transports        []string
	AttestationFormat string
	Name              string
	CreatedAt         time.Time
	LastUsedAt        time.Time
}

// State is a user's factors as their events describe them.
type State struct {
	// UserID is the user's id; empty until a first event.
	UserID string
	// UserHandle is the WebAuthn user handle given to authenticators
	// (base64url), drawn at the first passkey and kept afterwards.
	UserHandle string
	// Passkeys in the order they were added.
	Passkeys []Passkey
	// TOTPSecret is the TOTP secret (base32), "" without TOTP.
	TOTPSecret    string
	TOTPEnabledAt time.Time
	// TOTPLastStep is the last time step spent; codes of it and before are refused.
	TOTPLastStep int64
	// RecoveryCodes are the current codes' keyed hashes; Used marks spent ones.
	RecoveryCodes []RecoveryCode
	// RequiredByUser and RequiredByAdmin: a second factor is required.
	RequiredByUser, RequiredByAdmin bool
	// challenges are the spent ceremony challenges (hash → when).
	challenges map[string]time.Time
	// Version is the sequence of the last record applied, 0 for none.
	Version uint64
}

// RecoveryCode is one recovery code, as its keyed hash.
type RecoveryCode struct {
	Hash string
	Used bool
}

// HasSecondFactor reports whether the user has a passkey or TOTP.
func (s State) HasSecondFactor() bool { return len(s.Passkeys) > 0 || s.TOTPSecret != "" }

// RecoveryCodesLeft counts the unused recovery codes.
func (s State) RecoveryCodesLeft() int {
	n := 0
	for _, c := range s.RecoveryCodes {
		if !c.Used {
			n++
		}
	}
	return n
}

// Passkey finds a passkey by id.
func (s State) Passkey(id string) (Passkey, bool) {
	i := slices.IndexFunc(s.Passkeys, func(p Passkey) bool { return p.ID == id })
	if i < 0 {
		return Passkey{}, false
	}
	return s.Passkeys[i], true
}

// PasskeyByCredential finds a passkey by its credential id.
func (s State) PasskeyByCredential(credentialID []byte) (Passkey, bool) {
	i := slices.IndexFunc(s.Passkeys, func(p Passkey) bool { return string(p.CredentialID) == string(credentialID) })
	if i < 0 {
		return Passkey{}, false
	}
	return s.Passkeys[i], true
}

// ChallengeSpent reports whether a ceremony's challenge (its hash) was
// spent within ChallengeTTL before now.
func (s State) ChallengeSpent(hash string, now time.Time) bool {
	at, ok := s.challenges[hash]
	return ok && now.Sub(at) < 2*ChallengeTTL
}

// Fold replays a user's factor history, oldest first.
func Fold(history []eventlog.Record) State {
	var s State
	for _, rec := range history {
		s.Apply(rec)
	}
	return s
}

// Apply applies one record. Every record advances Version; unknown event
// types change nothing else.
func (s *State) Apply(rec eventlog.Record) {
	s.Version = rec.Seq
	at := rec.OccurredAt()
	switch ev := rec.Event.(type) {
	case *eventsv1.PasskeyAdded:
		s.UserID = ev.GetUserId()
		if s.UserHandle == "" {
			s.UserHandle = ev.GetUserHandle()
		}
		s.spend(ev.GetChallengeHash(), at)
		if _, dup := s.PasskeyByCredential(ev.GetCredentialId()); dup {
			return
		}
		s.Passkeys = append(slices.Clone(s.Passkeys), Passkey{
			ID: ev.GetPasskeyId(), CredentialID: ev.GetCredentialId(), PublicKey: ev.GetPublicKey(), AAGUID: ev.GetAaguid(),
			SignCount: ev.GetSignCount(), BackupEligible: ev.GetBackupEligible(), BackupState: ev.GetBackupState(),
			UserVerified: ev.GetUserVerified(), Transports: ev.GetTransports(), AttestationFormat: ev.GetAttestationFormat(),
			Name: ev.GetName(), CreatedAt: at,
		})
	case *eventsv1.PasskeyUsed:
		s.spend(ev.GetChallengeHash(), at)
		ps := slices.Clone(s.Passkeys)
		for i := range ps {
			if ps[i].ID == ev.GetPasskeyId() {
				ps[i].SignCount, ps[i].BackupState, ps[i].LastUsedAt = ev.GetSignCount(), ev.GetBackupState(), at
			}
		}
		s.Passkeys = ps
	case *eventsv1.PasskeyRenamed:
		ps := slices.Clone(s.Passkeys)
		for i := range ps {
			if ps[i].ID == ev.GetPasskeyId() {
				ps[i].Name = ev.GetName()
			}
		}
		s.Passkeys = ps
	case *eventsv1.PasskeyRemoved:
		s.Passkeys = slices.DeleteFunc(slices.Clone(s.Passkeys), func(p Passkey) bool { return p.ID == ev.GetPasskeyId() })
	case *eventsv1.TOTPEnabled:
		s.UserID = ev.GetUserId()
		s.TOTPSecret, s.TOTPEnabledAt = ev.GetSecret(), at
		s.TOTPLastStep = max(s.TOTPLastStep, ev.GetStep())
	case *eventsv1.TOTPUsed:
		s.TOTPLastStep = max(s.TOTPLastStep, ev.GetStep())
	case *eventsv1.TOTPDisabled:
		s.TOTPSecret, s.TOTPEnabledAt = "", time.Time{}
	case *eventsv1.RecoveryCodesGenerated:
		s.UserID = ev.GetUserId()
		s.RecoveryCodes = nil
		for _, h := range ev.GetCodeHashes() {
			s.RecoveryCodes = append(s.RecoveryCodes, RecoveryCode{Hash: h})
		}
	case *eventsv1.RecoveryCodeUsed:
		i := int(ev.GetIndex())
		if i >= 0 && i < len(s.RecoveryCodes) {
			codes := slices.Clone(s.RecoveryCodes)
			codes[i].Used = true
			s.RecoveryCodes = codes
		}
	case *eventsv1.SecondFactorRequirementSet:
		s.UserID = ev.GetUserId()
		if ev.GetByAdmin() {
			s.RequiredByAdmin = ev.GetRequired()
		} else {
			s.RequiredByUser = ev.GetRequired()
		}
	case *eventsv1.SecondFactorsReset:
		s.Passkeys, s.TOTPSecret, s.TOTPEnabledAt, s.RecoveryCodes = nil, "", time.Time{}, nil
	}
}

func (s *State) spend(challengeHash string, at time.Time) {
	if challengeHash == "" {
		return
	}
	m := make(map[string]time.Time, len(s.challenges)+1)
	for h, t := range s.challenges {
		if at.Sub(t) < 2*ChallengeTTL { // older ones can no longer come back
			m[h] = t
		}
	}
	m[challengeHash] = at
	s.challenges = m
}
