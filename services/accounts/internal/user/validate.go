package user

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gatehouse.dev/platform/errs"
)

// Limits on user input.
const (
	// MaxUserIDLength is the longest Matrix user ID, "@localpart:server", in bytes.
	MaxUserIDLength = 255
	// MaxEmailLength is the longest email address in bytes (RFC 5321's path limit less the brackets).
	MaxEmailLength = 254
	// MaxTextLength is the longest display name or lock reason in characters.
	MaxTextLength = 256
)

// ValidateUsername checks a Matrix localpart for a new user on serverName:
// non-empty, only the characters a-z 0-9 . _ = / + -, not all digits (Synapse
// reserves numeric localparts for guests), and short enough that
// "@localpart:serverName" is at most MaxUserIDLength bytes.
func ValidateUsername(localpart, serverName string) error {
	if localpart == "" {
		return errs.InvalidField("username", "Choose a username")
	}
	digits := true
	for i := 0; i < len(localpart); i++ {
		c := localpart[i]
		if !isLocalpartByte(c) {
			return errs.InvalidField("username",
				"Usernames may only contain lower-case letters, digits and . _ = / + -")
		}
		digits = digits && c >= '0' && c <= '9'
	}
	if digits {
		return errs.InvalidField("username", "Usernames may not consist of digits only")
	}
	if limit := MaxUserIDLength - len("@:") - len(serverName); len(localpart) > limit {
		return errs.InvalidField("username",
			fmt.Sprintf("Usernames may be at most %d characters long", limit))
	}
	return nil
}

// isLocalpartByte reports whether c may appear in a new user's localpart.
func isLocalpartByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("._=/+-", c) >= 0
}

// NormalizeEmail returns a bare email address, surrounding spaces trimmed and
// lower-cased, or an errs.KindInvalid error for anything net/mail does not
// parse back to the same bare address ("Name <a@b>" and quoted local parts
// included) or that is longer than MaxEmailLength.
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

// ValidateDisplayName checks a display name: at most MaxTextLength characters
// of valid UTF-8 without control characters. The empty name is valid (none).
func ValidateDisplayName(name string) error {
	return validateText("display_name", "Display names", name)
}

// validateText checks free text shown to people: valid UTF-8, at most
// MaxTextLength characters, no control characters. what names the text in
// messages ("Display names").
// Its errors carry the rule broken as facts (errs.FactRule, errs.FactMaxLength)
// so that pages can word them in their own language.
func validateText(field, what, s string) error {
	var e *errs.Error
	switch {
	case !utf8.ValidString(s):
		e = errs.InvalidField(field, what+" must be valid text")
		e.Facts = map[string]string{errs.FactRule: errs.RuleNotText}
	case utf8.RuneCountInString(s) > MaxTextLength:
		e = errs.InvalidField(field, fmt.Sprintf("%s may be at most %d characters long", what, MaxTextLength))
		e.Facts = map[string]string{errs.FactRule: errs.RuleTooLong, errs.FactMaxLength: strconv.Itoa(MaxTextLength)}
	case strings.ContainsFunc(s, unicode.IsControl):
		e = errs.InvalidField(field, what+" may not contain control characters such as line breaks")
		e.Facts = map[string]string{errs.FactRule: errs.RuleNotText}
	default:
		return nil
	}
	return e
}
