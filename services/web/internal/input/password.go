package input

import (
	_ "embed"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"gatehouse.dev/services/web/internal/i18n"
)

// Password rules for new passwords (registration, recovery, the account's
// password page). The accounts service enforces its own policy (at least 8
// characters, at most 1024 bytes) on every path; these pages add a simple
// strength score on top, so people are told early.
const (
	minPasswordLength = 8
	maxPasswordLength = 256
	// DefaultMinPasswordBits is the least estimated entropy a new password
	// needs unless configured otherwise: "abcdefgh" (8 lower-case letters,
	// 37.6 bits) is too weak, nine (42.3) or eight mixing letters and digits
	// (41.4) are enough.
	DefaultMinPasswordBits = 40
)

//go:embed common-passwords.txt
var commonPasswordsText string

// Passwords checks new passwords against the strength minimum and the list
// of common passwords. It is read-only once made.
type Passwords struct {
	minBits float64
	// common are the passwords that are refused outright, lower-cased.
	common map[string]bool
}

// NewPasswords returns the rules of new passwords of at least minBits of
// estimated strength; zero or less means DefaultMinPasswordBits.
func NewPasswords(minBits int) *Passwords {
	p := &Passwords{minBits: DefaultMinPasswordBits, common: map[string]bool{}}
	if minBits > 0 {
		p.minBits = float64(minBits)
	}
	for _, line := range strings.Split(commonPasswordsText, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			p.common[strings.ToLower(line)] = true
		}
	}
	return p
}

// passwordBits estimates a password's entropy from its length and the
// classes of characters it uses (lower case 26, upper case 26, digits 10,
// other ASCII 33, anything else 100), counting a run of one repeated
// character once.
func passwordBits(pw string) float64 {
	var lower, upper, digit, symbol, other bool
	n := 0
	prev := rune(-1)
	for _, c := range pw {
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		case c < utf8.RuneSelf:
			symbol = true
		default:
			other = true
		}
		if c != prev {
			n++
		}
		prev = c
	}
	pool := 0
	for _, class := range []struct {
		used bool
		size int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {symbol, 33}, {other, 100}} {
		if class.used {
			pool += class.size
		}
	}
	if pool == 0 {
		return 0
	}
	return float64(n) * math.Log2(float64(pool))
}

// Check returns the message to show for a new password of username (or "")
// that is not good enough, or "".
func (p *Passwords) Check(pw, username string) i18n.ID {
	n := utf8.RuneCountInString(pw)
	lower := strings.ToLower(pw)
	user := strings.ToLower(username)
	switch {
	case n < minPasswordLength:
		return i18n.RegisterPasswordShort
	case n > maxPasswordLength:
		return i18n.RegisterPasswordLong
	case p.common[lower] || p.common[strings.TrimRightFunc(lower, unicode.IsDigit)] ||
		p.common[strings.TrimRightFunc(lower, func(c rune) bool { return unicode.IsDigit(c) || unicode.IsPunct(c) })]:
		return i18n.RegisterPasswordCommn
	case len(user) >= 3 && strings.Contains(lower, user) && passwordBits(strings.ReplaceAll(lower, user, "")) < p.minBits:
		return i18n.RegisterPasswordUser
	case passwordBits(pw) < p.minBits:
		return i18n.RegisterPasswordWeak
	}
	return ""
}
