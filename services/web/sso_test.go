package web

import (
	"net/url"
	"strings"
	"testing"
)

func TestSSORedirectURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://app.example.org/sso?x=1":      true,
		"http://127.0.0.1:8080/callback":       true,
		"HTTPS://app.example.org/":             true,
		"":                                     false,
		"/relative":                            false,
		"//app.example.org/":                   false,
		"javascript:alert(1)":                  false,
		"data:text/html,hi":                    false,
		"https://good.example@evil.example/":   false,
		"https://:443/":                        false,
		"https://évil.example/":                false,
		"https://evil.example/\\@good.example": false,
		"https://evil.example/ x":              false,
		"element://vector/webapp/":             false,
		"https://app.example/" + strings.Repeat("a", maxSSORedirectURL-len("https://app.example/")):   true,
		"https://app.example/" + strings.Repeat("a", maxSSORedirectURL-len("https://app.example/")+1): false,
	} {
		if _, got := ssoRedirectURL(raw); got != ok {
			t.Errorf("ssoRedirectURL(%q) = %v, want %v", raw, got, ok)
		}
	}
}

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
