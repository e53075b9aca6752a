package synapse

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMXID(t *testing.T) {
	tests := []struct {
		mxid, server, want string
		err                error
	}{
		{"@alice:example.org", "example.org", "alice", nil},
		{"@Alice:example.org", "example.org", "Alice", nil}, // case kept
		{"@alice:example.org:8448", "example.org:8448", "alice", nil},
		{"@alice:example.org:8448", "example.org", "", ErrWrongServer},
		{"@alice:example.org", "example.org:8448", "", ErrWrongServer},
		{"@_irc_bob:irc.example:example.org", "example.org", "", ErrColonInLocalpart},
		{"@_irc_bob:irc.example:example.org:8448", "example.org:8448", "", ErrColonInLocalpart},
		{"@alice:other.example", "example.org", "", ErrWrongServer},
		{"alice:example.org", "example.org", "", ErrNoAt},
		{"@alice", "example.org", "", ErrNoColon},
		{"@:example.org", "example.org", "", nil}, // parses; LocalpartProblem says "empty"
		{"@o'brien+x=y/z:example.org", "example.org", "o'brien+x=y/z", nil},
	}
	for _, tt := range tests {
		got, err := ParseMXID(tt.mxid, tt.server)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ParseMXID(%q, %q) = %q, %v; want %q, %v", tt.mxid, tt.server, got, err, tt.want, tt.err)
		}
	}
}

func TestLocalpartProblem(t *testing.T) {
	tests := []struct{ localpart, want string }{
		{"alice", ""},
		{"a.b_c=d/e+f-g", ""},
		{"user123", ""},
		{"Alice", "upper case"},
		{"o'brien", "character ' (U+0027)"},
		{"zoë", "character ë (U+00EB)"},
		{"12345", "digits only"},
		{"", "empty"},
		{strings.Repeat("a", 255-len("@:example.org")), ""},
		{strings.Repeat("a", 256-len("@:example.org")), "user ID is 256 bytes, more than 255"},
	}
	for _, tt := range tests {
		if got := LocalpartProblem(tt.localpart, "example.org"); got != tt.want {
			t.Errorf("LocalpartProblem(%q) = %q, want %q", tt.localpart, got, tt.want)
		}
	}
}
