package user

import (
	"strconv"
	"strings"
	"testing"

	"gatehouse.dev/platform/errs"
)

func TestValidateUsername(t *testing.T) {
	const server = "example.org"
	// The longest localpart whose MXID "@<localpart>:example.org" is 255 bytes.
	longest := strings.Repeat("a", MaxUserIDLength-len("@:")-len(server))
	tests := []struct {
		name      string
		localpart string
		wantErr   string // substring of the public message; "" for valid
	}{
		{"lower-case letters", "alice", ""},
		{"letters and digits", "alice2", ""},
		{"leading digit", "1alice", ""},
		{"dot", "alice.liddell", ""},
		{"underscore", "alice_liddell", ""},
		{"equals", "alice=liddell", ""},
		{"slash", "alice/liddell", ""},
		{"plus", "alice+liddell", ""},
		{"hyphen", "alice-liddell", ""},
		{"punctuation only", "._=/+-", ""},
		{"longest MXID", longest, ""},
		{"empty", "", "Choose a username"},
		{"upper-case", "Alice", "only contain lower-case letters"},
		{"space", "alice liddell", "only contain lower-case letters"},
		{"leading space", " alice", "only contain lower-case letters"},
		{"colon", "alice:evil.org", "only contain lower-case letters"},
		{"at sign", "@alice", "only contain lower-case letters"},
		{"non-ASCII letter", "älice", "only contain lower-case letters"},
		{"NUL byte", "alice\x00", "only contain lower-case letters"},
		{"all digits", "12345", "digits only"},
		{"single digit", "0", "digits only"},
		{"MXID one byte too long", longest + "a", "at most 242 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateUsername(tt.localpart, server)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateUsername(%q) = %v, want nil", tt.localpart, err)
				}
				return
			}
			assertError(t, err, errs.KindInvalid, "username")
			if msg := errs.PublicMessage(err); !strings.Contains(msg, tt.wantErr) {
				t.Errorf("message %q does not contain %q", msg, tt.wantErr)
			}
		})
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "plain", in: "alice@example.org", want: "alice@example.org"},
		{name: "mixed case", in: "Alice@Example.ORG", want: "alice@example.org"},
		{name: "surrounding spaces", in: "  bob@example.org\t", want: "bob@example.org"},
		{name: "plus and dots", in: "a.b+tag@mail.example.org", want: "a.b+tag@mail.example.org"},
		{name: "longest", in: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 189), want: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 189)},
		{name: "empty", in: "", wantErr: true},
		{name: "spaces only", in: "   ", wantErr: true},
		{name: "no at sign", in: "alice", wantErr: true},
		{name: "no domain", in: "alice@", wantErr: true},
		{name: "no local part", in: "@example.org", wantErr: true},
		{name: "two at signs", in: "a@b@example.org", wantErr: true},
		{name: "display name", in: "Alice <alice@example.org>", wantErr: true},
		{name: "angle brackets", in: "<alice@example.org>", wantErr: true},
		{name: "list", in: "alice@example.org, eve@example.org", wantErr: true},
		{name: "quoted local part", in: `"alice liddell"@example.org`, wantErr: true},
		{name: "inner space", in: "alice @example.org", wantErr: true},
		{name: "too long", in: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 190), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeEmail(tt.in)
			if tt.wantErr {
				assertError(t, err, errs.KindInvalid, "email")
				return
			}
			if err != nil {
				t.Fatalf("NormalizeEmail(%q) = %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("NormalizeEmail(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidateDisplayName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		// wantRule is the errs.FactRule the error carries.
		wantRule string
	}{
		{name: "empty", in: ""},
		{name: "plain", in: "Alice Liddell"},
		{name: "emoji and accents", in: "Zoë 🐇"},
		{name: "longest in multi-byte characters", in: strings.Repeat("é", MaxTextLength)},
		{name: "one character too long", in: strings.Repeat("a", MaxTextLength+1), wantErr: true, wantRule: errs.RuleTooLong},
		{name: "line break", in: "Alice\nLiddell", wantErr: true, wantRule: errs.RuleNotText},
		{name: "tab", in: "Alice\tLiddell", wantErr: true, wantRule: errs.RuleNotText},
		{name: "C1 control", in: "Alice\u0085", wantErr: true, wantRule: errs.RuleNotText},
		{name: "invalid UTF-8", in: "Alice\xff", wantErr: true, wantRule: errs.RuleNotText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateDisplayName(tt.in)
			if tt.wantErr {
				assertError(t, err, errs.KindInvalid, "display_name")
				if rule, _ := errs.FactOf(err, errs.FactRule); rule != tt.wantRule {
					t.Errorf("rule fact %q, want %q", rule, tt.wantRule)
				}
				if max, _ := errs.FactOf(err, errs.FactMaxLength); tt.wantRule == errs.RuleTooLong && max != strconv.Itoa(MaxTextLength) {
					t.Errorf("max_length fact %q, want %d", max, MaxTextLength)
				}
				return
			}
			if err != nil {
				t.Errorf("ValidateDisplayName(%q) = %v", tt.in, err)
			}
		})
	}
}
