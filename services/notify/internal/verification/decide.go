package verification

import (
	"crypto/subtle"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Start decides the creation of a verification with its first secret.
func Start(s State, cmd StartCommand, key Key, now time.Time) ([]proto.Message, error) {
	if s.Exists() {
		return nil, errs.AlreadyExists("This verification already exists")
	}
	if cmd.ID == "" || len(key) < KeySize {
		return nil, errs.Internalf("start verification: id %q and a %d-byte key are required", cmd.ID, KeySize)
	}
	cmd, err := cmd.Normalize()
	if err != nil {
		return nil, err
	}
	ticketHash, expires := issue(key, cmd.ID, cmd.Purpose, cmd.UserID, 1, now)
	return events(&eventsv1.VerificationStarted{
		VerificationId: cmd.ID, Email: cmd.Email, Purpose: cmd.Purpose, UserId: cmd.UserID,
		TicketHash: ticketHash, ExpiresAt: timestamppb.New(expires), Locale: cmd.Locale,
		IssuedAt: timestamppb.New(now),
	}), nil
}

// Reissue decides replacing the secret with a new one, which is emailed.
func Reissue(s State, key Key, now time.Time) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	switch {
	case s.Confirmed:
		return nil, errs.FailedPrecondition("This address has already been verified")
	case s.Locked():
		return nil, errs.FailedPrecondition("Too many wrong codes were entered; start the verification again")
	case s.Resends() >= MaxResends:
		return nil, errs.FailedPrecondition(fmt.Sprintf("No more than %d new codes can be sent; start the verification again", MaxResends))
	}
	if wait := s.ResendAfter().Sub(now); wait > 0 {
		e := errs.RateLimited(fmt.Sprintf("Wait %d seconds before asking for another email", secondsUp(wait)))
		e.Facts = map[string]string{errs.FactRetryAfterSeconds: strconv.FormatInt(secondsUp(wait), 10)}
		return nil, e
	}
	next := s.Issue + 1
	ticketHash, expires := issue(key, s.ID, s.Purpose, s.UserID, next, now)
	return events(&eventsv1.VerificationCodeReissued{
		VerificationId: s.ID, Issue: next, TicketHash: ticketHash, ExpiresAt: timestamppb.New(expires),
		IssuedAt: timestamppb.New(now),
	}), nil
}

// ResendAfter is the earliest time another email may be asked for.
func (s State) ResendAfter() time.Time { return s.IssuedAt.Add(ResendInterval) }

// ResendsLeft is how many more reissues are allowed.
func (s State) ResendsLeft() uint32 { return MaxResends - min(s.Resends(), MaxResends) }

// CheckCode decides a code entered for the verification, comparing it with
// the code of the current issue derived again from key (or, for a code issued
// by a version that recorded code hashes, with that hash). It is the one
// decision that may return events together with an error: a wrong code is
// recorded (VerificationAttemptFailed, to be appended) and reported
// (errs.KindInvalid, naming the attempts left). A right code confirms.
func CheckCode(s State, code string, key Key, now time.Time) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	code, err := NormalizeCode(code)
	if err != nil {
		return nil, err
	}
	switch {
	case !s.UsesCode():
		return nil, errs.FailedPrecondition("This verification is confirmed with the link in its email, not a code")
	case s.Confirmed:
		return nil, errs.FailedPrecondition("This code has already been used")
	case s.Locked():
		return nil, errs.FailedPrecondition("Too many wrong codes were entered; start the verification again")
	case !now.Before(s.ExpiresAt):
		return nil, errs.FailedPrecondition("This code has expired; ask for a new one")
	}
	if s.rightCode(code, key) {
		return events(&eventsv1.VerificationConfirmed{VerificationId: s.ID, Email: s.Email, Purpose: s.Purpose, UserId: s.UserID}), nil
	}
	attempts := s.FailedAttempts + 1
	wrong := errs.InvalidField("code", "Wrong code; no attempts left, start the verification again")
	left := MaxAttempts - attempts
	wrong.Facts = map[string]string{errs.FactAttemptsLeft: strconv.FormatUint(uint64(left), 10)}
	switch left {
	case 0:
	case 1:
		wrong.Public = "Wrong code; 1 attempt left"
	default:
		wrong.Public = fmt.Sprintf("Wrong code; %d attempts left", left)
	}
	return events(&eventsv1.VerificationAttemptFailed{VerificationId: s.ID, Attempts: attempts}), wrong
}

// CheckTicket decides a recovery ticket presented for the verification its
// hash was indexed under.
func CheckTicket(s State, ticket string, now time.Time) ([]proto.Message, error) {
	if err := ValidateTicket(ticket); err != nil {
		return nil, err
	}
	if !s.Exists() || s.UsesCode() || s.UserID == "" {
		return nil, errs.NotFound("This recovery link is not valid")
	}
	switch {
	case s.Confirmed:
		return nil, errs.FailedPrecondition("This recovery link has already been used")
	case !equalHash(TicketHash(ticket), s.TicketHash):
		return nil, errs.FailedPrecondition("This recovery link was replaced by a newer one; use the link in the latest email")
	case !now.Before(s.ExpiresAt):
		return nil, errs.FailedPrecondition("This recovery link has expired; ask for a new one")
	}
	return events(&eventsv1.VerificationConfirmed{VerificationId: s.ID, Email: s.Email, Purpose: s.Purpose, UserId: s.UserID}), nil
}

// ShouldDeliver reports whether the email of an issue is still to be sent,
// and when not, why.
func ShouldDeliver(s State, issue uint32, now time.Time) (bool, string) {
	_, delivered := s.Delivered[issue]
	_, refused := s.Undeliverable[issue]
	switch {
	case !s.Exists():
		return false, "no such verification"
	case delivered:
		return false, "already delivered"
	case refused:
		return false, "refused by the mail server"
	case issue != s.Issue:
		return false, "superseded by a newer code"
	case !s.SendsMail():
		return false, "no account has this address"
	case s.Confirmed:
		return false, "already confirmed"
	case s.Locked():
		return false, "locked after too many wrong codes"
	case !now.Before(s.ExpiresAt):
		return false, "expired before it could be sent"
	}
	return true, ""
}

// Delivered decides recording that the email of an issue was accepted by the
// mail server; nothing when its outcome is already recorded.
func Delivered(s State, issue uint32, messageID string) []proto.Message {
	if !recordable(s, issue) {
		return nil
	}
	return events(&eventsv1.EmailDelivered{VerificationId: s.ID, Issue: issue, MessageId: messageID})
}

// DeliveryFailed decides recording that the mail server refused the email of
// an issue for good; nothing when its outcome is already recorded.
func DeliveryFailed(s State, issue uint32, reason string) []proto.Message {
	if !recordable(s, issue) {
		return nil
	}
	if len(reason) > 512 {
		reason = reason[:512]
	}
	return events(&eventsv1.EmailDeliveryFailed{VerificationId: s.ID, Issue: issue, Reason: reason})
}

// recordable reports whether an issue exists and has no recorded outcome.
func recordable(s State, issue uint32) bool {
	_, delivered := s.Delivered[issue]
	_, refused := s.Undeliverable[issue]
	return s.Exists() && issue >= 1 && issue <= s.Issue && !delivered && !refused
}

// rightCode reports whether code is the current issue's code. Codes are not
// recorded, not even hashed (a 6-digit code is found from its hash at once):
// the code is derived again from the key. Events written before sealing
// recorded a hash, which is compared instead.
func (s State) rightCode(code string, key Key) bool {
	if s.CodeHash != "" {
		return equalHash(CodeHash(s.ID, code), s.CodeHash)
	}
	return len(key) >= KeySize && subtle.ConstantTimeCompare([]byte(code), []byte(key.Code(s.ID, s.Issue))) == 1
}

// issue derives the ticket hash and expiry of one issue's secret. A recovery
// ticket is derived even when nothing will be sent, so that answering for an
// unknown address costs what answering for a known one does. A code is not
// recorded at all (see rightCode).
func issue(key Key, id string, purpose eventsv1.VerificationPurpose, userID string, n uint32, now time.Time) (ticketHash string, expires time.Time) {
	if purpose == eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY {
		ticket := key.Ticket(id, n)
		if userID != "" {
			ticketHash = TicketHash(ticket)
		}
		return ticketHash, now.Add(TicketTTL)
	}
	return "", now.Add(CodeTTL)
}

// mustExist fails with errs.KindNotFound unless the verification was started.
func mustExist(s State) error {
	if !s.Exists() {
		return errs.NotFound("No such verification; start a new one")
	}
	return nil
}

// secondsUp rounds a positive duration up to whole seconds.
func secondsUp(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// events returns its arguments as a slice, the shape every decision returns.
func events(evs ...proto.Message) []proto.Message { return evs }
