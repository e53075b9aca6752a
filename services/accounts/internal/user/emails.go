package user

import (
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// MaxVerificationIDLength bounds the notify service's verification id recorded with an added address.
const MaxVerificationIDLength = 128

// AddEmail decides adding an address the caller has verified (through the
// notify service) to the user. verificationID names that verification and may
// be empty. Claiming the address (EmailReserved on its EmailKey) is the
// handler's part: it appends both in one atomic batch.
func AddEmail(s State, email, verificationID string) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if !ValidVerificationID(verificationID) {
		return nil, errs.InvalidField("verification_id", "verification_id must be the id of a verification from the notify service")
	}
	if s.HasEmail(email) {
		return nil, nil
	}
	if s.Deactivated {
		return nil, errs.FailedPrecondition("Email addresses cannot be added to a deactivated account")
	}
	return events(&eventsv1.EmailAdded{UserId: s.ID, Email: email, VerificationId: verificationID}), nil
}

// RemoveEmail decides removing one of the user's addresses. The primary
// address cannot be removed: make another one primary first. Removing an
// address the user does not have changes nothing. Releasing the address
// (EmailReleased) is the handler's part, in the same atomic batch.
func RemoveEmail(s State, email string) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if !s.HasEmail(email) {
		return nil, nil
	}
	if email == s.Email {
		e := errs.FailedPrecondition("The primary email address cannot be removed; make another address primary first")
		e.Field = "email"
		return nil, e
	}
	return events(&eventsv1.EmailRemoved{UserId: s.ID, Email: email}), nil
}

// SetPrimaryEmail decides making one of the user's addresses the primary one.
func SetPrimaryEmail(s State, email string) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if email == s.Email {
		return nil, nil
	}
	if !s.HasEmail(email) {
		e := errs.FailedPrecondition("This address is not one of the account's addresses; add it first")
		e.Field = "email"
		return nil, e
	}
	if s.Deactivated {
		return nil, errs.FailedPrecondition("The primary email address of a deactivated account cannot be changed")
	}
	return events(&eventsv1.PrimaryEmailSet{UserId: s.ID, Email: email}), nil
}

// ValidVerificationID accepts the empty id and short tokens of letters,
// digits, '-' and '_' (ULIDs and the like).
func ValidVerificationID(id string) bool {
	if len(id) > MaxVerificationIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// EmailClaim is the state of an email reservation aggregate (subject
// accounts.email.<EmailKey>): who holds the address, if anyone.
type EmailClaim struct {
	// Holder is the id of the user holding the address; empty when the
	// address was never claimed or was released.
	Holder string
	// Version is the sequence of the aggregate's last event, 0 for none.
	// A new claim expects it: an empty subject, or one ending in a release.
	Version uint64
}

// FoldEmailClaim replays an email reservation's history.
func FoldEmailClaim(history []eventlog.Record) EmailClaim {
	var c EmailClaim
	for _, rec := range history {
		c.Version = rec.Seq
		switch ev := rec.Event.(type) {
		case *eventsv1.EmailReserved:
			c.Holder = ev.GetUserId()
		case *eventsv1.EmailReleased:
			c.Holder = ""
		}
	}
	return c
}
