package input

import (
	"strings"
	"testing"

	"gatehouse.dev/services/web/internal/i18n"
)

func TestPasswordStrength(t *testing.T) {
	tests := []struct {
		pw, user string
		want     i18n.ID
	}{
		{"short", "", i18n.RegisterPasswordShort},
		{"password", "", i18n.RegisterPasswordCommn},
		{"Password123", "", i18n.RegisterPasswordCommn},
		{"qwerty123!", "", i18n.RegisterPasswordCommn},
		{"abcdefgh", "", i18n.RegisterPasswordCommn},
		{"hjkwqzmt", "", i18n.RegisterPasswordWeak},
		{"aaaaaaaaaaaaaaaa", "", i18n.RegisterPasswordWeak},
		{"carolcarol1", "carol", i18n.RegisterPasswordUser},
		{"hjkwqzmtr", "", ""},
		{"Tr0ub4dor", "", ""},
		{"correct horse battery staple", "carol", ""},
		{"alice's password", "alice", ""},
		{strings.Repeat("ab", 129), "", i18n.RegisterPasswordLong},
	}
	for _, tt := range tests {
		if got := NewPasswords(0).Check(tt.pw, tt.user); got != tt.want {
			t.Errorf("Check(%q, %q) = %q, want %q", tt.pw, tt.user, got, tt.want)
		}
	}
}

// The strength minimum is the one asked for: a password good enough by
// default is refused under a stricter minimum.
func TestConfiguredPasswordStrength(t *testing.T) {
	const pw = "Tr0ub4dor"
	if got := NewPasswords(DefaultMinPasswordBits).Check(pw, ""); got != "" {
		t.Fatalf("default minimum refused %q: %s", pw, got)
	}
	if got := NewPasswords(80).Check(pw, ""); got != i18n.RegisterPasswordWeak {
		t.Fatalf("an 80-bit minimum accepted %q (%s)", pw, got)
	}
}

func TestCheckUsername(t *testing.T) {
	for _, tt := range []struct {
		u, server string
		want      i18n.ID
	}{
		{"alice", "example.org", ""},
		{"a.b_c=d/e+f-g", "example.org", ""},
		{"007bond", "example.org", ""},
		{"", "example.org", i18n.RegisterUsernameNone},
		{"12345", "example.org", i18n.RegisterUsernameBad},
		{"Alice", "example.org", i18n.RegisterUsernameBad},
		{"al ice", "example.org", i18n.RegisterUsernameBad},
		{"al:ice", "example.org", i18n.RegisterUsernameBad},
		{"élise", "example.org", i18n.RegisterUsernameBad},
		{strings.Repeat("a", 255-len("@:example.org")), "example.org", ""},
		{strings.Repeat("a", 256-len("@:example.org")), "example.org", i18n.RegisterUsernameLong},
	} {
		if got := CheckUsername(tt.u, tt.server); got != tt.want {
			t.Errorf("CheckUsername(%.20q, %q) = %q, want %q", tt.u, tt.server, got, tt.want)
		}
	}
}

func TestValidEmail(t *testing.T) {
	for s, want := range map[string]bool{
		"alice@example.org":                  true,
		"alice+tag@mail.example.org":         true,
		"":                                   false,
		"alice":                              false,
		"alice@":                             false,
		"@example.org":                       false,
		"Alice <alice@example.org>":          false,
		"<alice@example.org>":                false,
		" alice@example.org":                 false,
		"alice@example.org, bob@example.org": false,
	} {
		if got := ValidEmail(s); got != want {
			t.Errorf("ValidEmail(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCleanCodes(t *testing.T) {
	for in, want := range map[string]string{
		"bcdf-ghjk":             "BCDF-GHJK",
		" BCDF GHJK ":           "BCDF GHJK",
		"<x>":                   "",
		"bcdf_ghjk":             "",
		strings.Repeat("A", 32): strings.Repeat("A", 32),
		strings.Repeat("A", 33): "",
	} {
		if got := CleanUserCode(in); got != want {
			t.Errorf("CleanUserCode(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"ABCDEF":                 "ABCDEF",
		"":                       "",
		"bad device":             "",
		"bad\ndevice":            "",
		strings.Repeat("D", 255): strings.Repeat("D", 255),
		strings.Repeat("D", 256): "",
	} {
		if got := CleanDeviceID(in); got != want {
			t.Errorf("CleanDeviceID(%.20q) = %q, want %q", in, got, want)
		}
	}
}
