package web

import (
	_ "embed"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Password rules for new accounts. The accounts service enforces its own
// policy (at least 8 characters, at most 1024 bytes) on every path; these
// pages add a simple strength score on top, so people are told early.
const (
	minPasswordLength = 8
	maxPasswordLength = 256
	// minPasswordBits is the least estimated entropy a new password needs:
	// "abcdefgh" (8 lower-case letters, 37.6 bits) is too weak, nine (42.3)
	// or eight mixing letters and digits (41.4) are enough.
	minPasswordBits = 40
)

//go:embed common-passwords.txt
var commonPasswordsText string

// commonPasswords are the passwords that are refused outright, lower-cased.
var commonPasswords = func() map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(commonPasswordsText, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			m[strings.ToLower(line)] = true
		}
	}
	return m
}()

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

// checkNewPassword returns the message to show for a new password that is
// not good enough, or "".
func checkNewPassword(pw, username string, minBits float64) msgID {
	n := utf8.RuneCountInString(pw)
	lower := strings.ToLower(pw)
	user := strings.ToLower(username)
	switch {
	case n < minPasswordLength:
		return msgRegisterPasswordShort
	case n > maxPasswordLength:
		return msgRegisterPasswordLong
	case commonPasswords[lower] || commonPasswords[strings.TrimRightFunc(lower, unicode.IsDigit)] ||
		commonPasswords[strings.TrimRightFunc(lower, func(c rune) bool { return unicode.IsDigit(c) || unicode.IsPunct(c) })]:
		return msgRegisterPasswordCommn
	case len(user) >= 3 && strings.Contains(lower, user) && passwordBits(strings.ReplaceAll(lower, user, "")) < minBits:
		return msgRegisterPasswordUser
	case passwordBits(pw) < minBits:
		return msgRegisterPasswordWeak
	}
	return ""
}
