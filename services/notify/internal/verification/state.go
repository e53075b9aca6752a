package verification

import (
	"time"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// State is a verification as its events leave it.
type State struct {
	ID      string
	Email   string
	Purpose eventsv1.VerificationPurpose
	// UserID is the account concerned; empty for registrations and for
	// recoveries of unknown addresses.
	UserID string
	Locale string
	// Issue numbers the current secret: 1 when started, +1 per reissue; 0
	// before the verification exists.
	Issue uint32
	// CodeHash is the current code's hash as events before sealing recorded
	// it; empty since (the code is derived again to be checked).
	CodeHash   string
	TicketHash string
	// StartedAt is when the verification was started (its first issue).
	StartedAt time.Time
	// IssuedAt is when the current secret was issued; ExpiresAt when it stops working.
	IssuedAt  time.Time
	ExpiresAt time.Time
	// FailedAttempts counts wrong codes over the whole verification.
	FailedAttempts uint32
	Confirmed      bool
	// Delivered maps an issue to the Message-ID of its email; Undeliverable
	// maps an issue to the mail server's permanent refusal.
	Delivered     map[uint32]string
	Undeliverable map[uint32]string
	// Version is the stream sequence of the last event applied.
	Version uint64
}

// Exists reports whether the verification was started.
func (s State) Exists() bool { return s.Issue > 0 }

// Resends is how many times the secret was reissued.
func (s State) Resends() uint32 { return max(s.Issue, 1) - 1 }

// UsesCode reports whether the verification is confirmed with a code rather
// than a link.
func (s State) UsesCode() bool {
	return s.Purpose != eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY
}

// SendsMail reports whether the verification emails anyone: all do but a
// recovery of an address that belongs to no account.
func (s State) SendsMail() bool { return s.UsesCode() || s.UserID != "" }

// Locked reports whether too many wrong codes were tried.
func (s State) Locked() bool { return s.FailedAttempts >= MaxAttempts }

// Apply folds one event into the state. Events of other types are ignored.
func (s *State) Apply(rec eventlog.Record) {
	s.Version = rec.Seq
	switch ev := rec.Event.(type) {
	case *eventsv1.VerificationStarted:
		s.ID, s.Email, s.Purpose, s.UserID, s.Locale = ev.GetVerificationId(), ev.GetEmail(), ev.GetPurpose(), ev.GetUserId(), ev.GetLocale()
		s.Issue, s.CodeHash, s.TicketHash = 1, ev.GetCodeHash(), ev.GetTicketHash()
		s.IssuedAt, s.ExpiresAt = ev.GetIssuedAt().AsTime(), ev.GetExpiresAt().AsTime()
		s.StartedAt = s.IssuedAt
	case *eventsv1.VerificationCodeReissued:
		s.Issue, s.CodeHash, s.TicketHash = ev.GetIssue(), ev.GetCodeHash(), ev.GetTicketHash()
		s.IssuedAt, s.ExpiresAt = ev.GetIssuedAt().AsTime(), ev.GetExpiresAt().AsTime()
	case *eventsv1.VerificationAttemptFailed:
		s.FailedAttempts = ev.GetAttempts()
	case *eventsv1.VerificationConfirmed:
		s.Confirmed = true
	case *eventsv1.EmailDelivered:
		if s.Delivered == nil {
			s.Delivered = map[uint32]string{}
		}
		s.Delivered[ev.GetIssue()] = ev.GetMessageId()
	case *eventsv1.EmailDeliveryFailed:
		if s.Undeliverable == nil {
			s.Undeliverable = map[uint32]string{}
		}
		s.Undeliverable[ev.GetIssue()] = ev.GetReason()
	}
}

// Fold applies a history in order to an empty state.
func Fold(history []eventlog.Record) State {
	var s State
	for _, rec := range history {
		s.Apply(rec)
	}
	return s
}
