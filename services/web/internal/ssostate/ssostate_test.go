package ssostate

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
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
		"https://app.example/" + strings.Repeat("a", MaxRedirectURL-len("https://app.example/")):   true,
		"https://app.example/" + strings.Repeat("a", MaxRedirectURL-len("https://app.example/")+1): false,
	} {
		if _, got := RedirectURL(raw); got != ok {
			t.Errorf("RedirectURL(%q) = %v, want %v", raw, got, ok)
		}
	}
}

// The payload round-trips, and payloads the service never signs are refused
// even when signed with the right key.
func TestSSOState(t *testing.T) {
	key := []byte("a key of 32 bytes for the tests!!")
	now := time.Unix(1_700_000_000, 0)
	for _, register := range []bool{false, true} {
		id := Sign(key, "http://127.0.0.1:8080/cb?a=b", register, now.Add(TTL))
		req, ok := Parse(key, id, now)
		if !ok || req.Redirect.String() != "http://127.0.0.1:8080/cb?a=b" || req.Register != register || !req.Expires.Equal(now.Add(TTL)) {
			t.Fatalf("register=%v: %+v %v", register, req, ok)
		}
		if _, ok := Parse(key, id, now.Add(TTL)); ok {
			t.Errorf("register=%v: accepted at its expiry", register)
		}
	}
	signed := func(version, flags byte, expires time.Time, redirect string) string {
		payload := append([]byte{version, flags}, binary.BigEndian.AppendUint64(nil, uint64(expires.Unix()))...)
		payload = append(payload, redirect...)
		return encoding.EncodeToString(payload) + "." + encoding.EncodeToString(mac(key, payload))
	}
	later := now.Add(time.Minute)
	for name, id := range map[string]string{
		"other version":     signed(2, 0, later, "https://app.example/"),
		"unknown flag":      signed(version, 2, later, "https://app.example/"),
		"bad redirect":      signed(version, 0, later, "javascript:alert(1)"),
		"no redirect":       signed(version, 0, later, ""),
		"long redirect":     signed(version, 0, later, "https://app.example/"+strings.Repeat("a", MaxRedirectURL)),
		"short payload":     encoding.EncodeToString([]byte{version, 0}) + "." + encoding.EncodeToString(mac(key, []byte{version, 0})),
		"expired long ago":  signed(version, 0, time.Unix(0, 0), "https://app.example/"),
		"negative expiry":   signed(version, 0, time.Unix(-1, 0), "https://app.example/"),
		"expires right now": signed(version, 0, now, "https://app.example/"),
	} {
		if req, ok := Parse(key, id, now); ok {
			t.Errorf("%s: accepted %+v", name, req)
		}
	}
	if _, ok := Parse(key, signed(version, flagRegister, later, "https://app.example/"), now); !ok {
		t.Error("a well-formed payload signed by hand was refused")
	}
}
