package token

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestActivityKeepsLatestNote(t *testing.T) {
	a := newActivity()
	t0 := time.Unix(1_700_000_000, 0)
	a.touch("s1", "192.0.2.1", t0)                 // a refresh
	a.touch("s1", "", t0.Add(time.Minute))         // an introspection: time only
	a.touch("s1", "192.0.2.9", t0.Add(-time.Hour)) // late and older: ignored
	a.touch("", "", t0)
	n, ok := a.last("s1")
	if !ok || !n.at.Equal(t0.Add(time.Minute)) || n.ip != "192.0.2.1" {
		t.Fatalf("note = %+v, %v", n, ok)
	}
	notes := a.take()
	if len(notes) != 1 || len(a.take()) != 0 {
		t.Fatalf("take: %v", notes)
	}
	a.touch("s1", "", t0.Add(2*time.Minute))
	a.restore(notes)
	if n, _ := a.last("s1"); !n.at.Equal(t0.Add(2*time.Minute)) || n.ip != "192.0.2.1" {
		t.Fatalf("after restore: %+v", n)
	}
}

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
