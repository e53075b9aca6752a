package verification

import (
	"net/mail"
	"regexp"
	"strings"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Limits of verifications.
const (
	// CodeLength is the number of digits of a code.
	CodeLength = 6
	// TicketLength is the number of characters of a recovery ticket.
	TicketLength = 32
	// CodeTTL is how long a code works after it is issued.
	CodeTTL = 5 * time.Minute
	// TicketTTL is how long a recovery link works after it is issued.
	TicketTTL = 10 * time.Minute
	// MaxAttempts is how many wrong codes lock a verification.
	MaxAttempts = 5
	// MaxResends is how many times a secret may be reissued.
	MaxResends = 5
	// ResendInterval is the least time between two emails of one verification.
	ResendInterval = 30 * time.Second
	// MaxEmailLength is the longest address in bytes (RFC 5321's path limit less the brackets).
	MaxEmailLength = 254
	// MaxLocaleLength bounds locale tags.
	MaxLocaleLength = 35
)

// NormalizeEmail returns a bare email address, surrounding spaces trimmed and
// lower-cased, or an errs.KindInvalid error for anything net/mail does not
// parse back to the same bare address ("Name <a@b>" and quoted local parts
// included) or that is longer than MaxEmailLength. It matches the accounts
// service's rule, so an address verified here is the one accounts stores.
func NormalizeEmail(s string) (string, error) {
	invalid := errs.InvalidField("email", "Enter a valid email address, like name@example.org")
	s = strings.TrimSpace(s)
	if s == "" || len(s) > MaxEmailLength {
		return "", invalid
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", invalid
	}
	return strings.ToLower(s), nil
}

// localeTag is a loose BCP 47 shape: a language, then subtags.
var localeTag = regexp.MustCompile(`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`)

// ValidateLocale accepts the empty locale and BCP 47 shaped tags such as "en" or "pt-BR".
func ValidateLocale(s string) error {
	if s != "" && (len(s) > MaxLocaleLength || !localeTag.MatchString(s)) {
		return errs.InvalidField("locale", "locale must be a language tag such as en or pt-BR")
	}
	return nil
}

// ValidateID checks a verification id.
func ValidateID(id string) error {
	if id == "" {
		return errs.InvalidField("verification_id", "verification_id is required")
	}
	if !ids.Valid(id) {
		return errs.InvalidField("verification_id", "verification_id must be an id such as 01HZX3… returned by StartVerification")
	}
	return nil
}

// NormalizeCode strips spaces and hyphens people type into codes and checks
// that CodeLength digits remain.
func NormalizeCode(s string) (string, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "", errs.InvalidField("code", "code is required")
	}
	if len(s) != CodeLength || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return "", errs.InvalidField("code", "The code is the 6 digits from the email")
	}
	return s, nil
}

// ValidateTicket checks the shape of a recovery ticket.
func ValidateTicket(s string) error {
	if s == "" {
		return errs.InvalidField("ticket", "ticket is required")
	}
	if len(s) != TicketLength || strings.ContainsFunc(s, func(r rune) bool { return !strings.ContainsRune(ticketAlphabet, r) }) {
		return errs.InvalidField("ticket", "This is not a recovery link; copy the whole link from the email")
	}
	return nil
}

// StartCommand asks to start a verification.
type StartCommand struct {
	// ID is the new verification's id, chosen by the caller (a ULID).
	ID      string
	Email   string
	Purpose eventsv1.VerificationPurpose
	// UserID is required for add-email, optional otherwise; for recovery it is
	// set only when the address belongs to an account.
	UserID string
	Locale string
}

// Normalize validates the command's input and returns it with the address
// normalized. Callers check input with it before spending rate limits.
func (c StartCommand) Normalize() (StartCommand, error) {
	switch c.Purpose {
	case eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION,
		eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL,
		eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY:
	default:
		return c, errs.InvalidField("purpose", "purpose must be REGISTRATION, ADD_EMAIL or RECOVERY")
	}
	email, err := NormalizeEmail(c.Email)
	if err != nil {
		return c, err
	}
	c.Email = email
	switch {
	case c.UserID == "" && c.Purpose == eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL:
		return c, errs.InvalidField("user_id", "user_id is required to add an email address to an account")
	case c.UserID != "" && !ids.Valid(c.UserID):
		return c, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	if err := ValidateLocale(c.Locale); err != nil {
		return c, err
	}
	return c, nil
}
