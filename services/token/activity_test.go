package token

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateUTF8(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes
	got := truncateUTF8(long, maxUserAgent)
	if len(got) != 512 || !utf8.ValidString(got) {
		t.Fatalf("len %d, valid %v", len(got), utf8.ValidString(got))
	}
	if got := truncateUTF8("ab\xffc", 10); got != "abc" {
		t.Fatalf("invalid UTF-8 kept: %q", got)
	}
	if got := truncateUTF8("x"+strings.Repeat("é", 300), maxUserAgent); len(got) != 511 || !utf8.ValidString(got) {
		t.Fatalf("cut inside a character: len %d", len(got))
	}
}
