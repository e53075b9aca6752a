package password

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"gatehouse.dev/platform/errs"
)

// Limits of CheckPolicy.
const (
	// MinLength is the fewest characters a new password may have.
	MinLength = 8
	// MaxBytes is the most bytes a new password may have, which bounds the
	// cost of hashing it.
	MaxBytes = 1024
)

// CheckPolicy checks a new password: valid UTF-8, at least MinLength
// characters, at most MaxBytes bytes, and not whitespace only. Its errors are
// errs.KindInvalid with Field "password". Scoring a password's strength is
// left to the web pages.
func CheckPolicy(password string) error {
	switch {
	case !utf8.ValidString(password):
		return errs.InvalidField("password", "Passwords must be valid text")
	case utf8.RuneCountInString(password) < MinLength:
		return errs.InvalidField("password",
			fmt.Sprintf("Passwords must be at least %d characters long", MinLength))
	case len(password) > MaxBytes:
		return errs.InvalidField("password",
			fmt.Sprintf("Passwords may be at most %d bytes long", MaxBytes))
	case strings.TrimSpace(password) == "":
		return errs.InvalidField("password", "Passwords may not consist of spaces only")
	}
	return nil
}
