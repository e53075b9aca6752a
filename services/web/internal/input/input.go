// Package input holds the rules for what people type into the pages: new
// passwords, usernames, email addresses, device user codes and Matrix device
// ids. The pages check them before calling another service, so that people
// are told early and in their language what to change; the services that keep
// the data enforce their own rules on every path.
package input

import (
	"net/mail"
	"strings"
	"unicode"

	"gatehouse.dev/services/web/internal/i18n"
)

// CheckUsername applies the Matrix localpart rules accounts enforces to a
// (lower-cased) username on the server serverName, and returns the message to
// show when it breaks one, or "".
func CheckUsername(u, serverName string) i18n.ID {
	if u == "" {
		return i18n.RegisterUsernameNone
	}
	digits := true
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._=/+-", c) >= 0) {
			return i18n.RegisterUsernameBad
		}
		digits = digits && c >= '0' && c <= '9'
	}
	if digits {
		return i18n.RegisterUsernameBad
	}
	if len("@:")+len(u)+len(serverName) > 255 {
		return i18n.RegisterUsernameLong
	}
	return ""
}

// ValidEmail reports whether s is a bare email address, name@example.com:
// no display name, no angle brackets, nothing around it.
func ValidEmail(s string) bool {
	addr, err := mail.ParseAddress(s)
	return err == nil && addr.Name == "" && addr.Address == s
}

// CleanUserCode keeps what a device's user code may hold (letters, digits,
// spaces and dashes, at most 32), upper-cased, or returns ""; authorize
// normalises the rest.
func CleanUserCode(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	if len(s) > 32 {
		return ""
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == ' ') {
			return ""
		}
	}
	return s
}

// CleanDeviceID returns a Matrix device id as given, or "" when it is not
// one: device ids are opaque, but printable and at most 255 bytes.
func CleanDeviceID(id string) string {
	if id == "" || len(id) > 255 || strings.ContainsFunc(id, func(c rune) bool { return !unicode.IsPrint(c) || c == ' ' }) {
		return ""
	}
	return id
}
