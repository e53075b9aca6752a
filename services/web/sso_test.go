package web

import (
	"net/url"
	"testing"
)

func TestSSOWithLoginToken(t *testing.T) {
	for raw, want := range map[string]string{
		"https://app.example/cb":                 "https://app.example/cb?loginToken=T",
		"https://app.example/cb?b=2&a=1#frag":    "https://app.example/cb?b=2&a=1&loginToken=T#frag",
		"https://app.example/cb?loginToken=evil": "https://app.example/cb?loginToken=T",
	} {
		u, _ := url.Parse(raw)
		if got := withLoginToken(u, "T"); got != want {
			t.Errorf("withLoginToken(%q) = %q, want %q", raw, got, want)
		}
	}
}
