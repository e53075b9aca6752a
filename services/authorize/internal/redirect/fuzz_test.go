package redirect

import (
	"net/url"
	"testing"
)

// FuzzMatch checks that Match never panics, and that whatever it matches is
// a URI ParseRegistered accepts that equals a registered URI, or differs from
// a registered loopback URI on the same host only in its port.
func FuzzMatch(f *testing.F) {
	seeds := [][3]string{
		{"https://example.com/cb", "com.example.app:/cb", "https://example.com/cb"},
		{"http://127.0.0.1/cb?a=1", "", "http://127.0.0.1:8080/cb?a=1"},
		{"http://[::1]:80/cb", "http://localhost/", "http://[::1]:1234/cb"},
		{"http://localhost/cb", "", "http://localhost.evil.test:1/cb"},
		{"https://example.com/cb", "", ""},
		{"https://good@evil/cb", "https://x/..;/a", "https://good@evil/cb"},
		{"JaVaScRiPt:alert(1)", "data:,x", "http://127.0.0.1/%2e%2e/"},
		{"https://xn--80ak6aa92e.com/", "https://example.com./", "https://example.com\\@evil/"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, reg1, reg2, requested string) {
		registered := []string{reg1, reg2}
		got, ok := Match(registered, requested)
		if !ok {
			if got != "" {
				t.Fatalf("Match returned %q without a match", got)
			}
			return
		}
		if requested != "" && got != requested {
			t.Fatalf("Match(%q) returned %q, not the requested URI", requested, got)
		}
		u, err := ParseRegistered(got)
		if err != nil {
			t.Fatalf("Match returned %q, which ParseRegistered rejects: %v", got, err)
		}
		for _, r := range registered {
			if r == got {
				return
			}
			reg, err := ParseRegistered(r)
			if err != nil || Classify(reg) != Loopback || Classify(u) != Loopback {
				continue
			}
			if samePortless(reg, u) {
				return
			}
		}
		t.Fatalf("Match(%q, %q) = %q, which equals no registered URI", registered, requested, got)
	})
}

// samePortless reports whether a and b are equal on everything but the port.
func samePortless(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && a.Hostname() == b.Hostname() && a.User == nil && b.User == nil &&
		a.EscapedPath() == b.EscapedPath() && a.RawQuery == b.RawQuery && a.ForceQuery == b.ForceQuery &&
		a.Fragment == "" && b.Fragment == "" && a.Opaque == "" && b.Opaque == ""
}

// FuzzParseRegistered checks that ParseRegistered never panics and that what
// it accepts round-trips and has no fragment, userinfo or backslash.
func FuzzParseRegistered(f *testing.F) {
	for _, s := range []string{
		"https://example.com/cb", "http://127.0.0.1:8080/cb?x", "com.example.app:/cb",
		"https://a@b@c/", "https://x/..;/", "https://[::1]/", "http://0x7f.1/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseRegistered(raw)
		if err != nil {
			return
		}
		if u.String() != raw || u.User != nil || u.Fragment != "" || u.RawFragment != "" {
			t.Fatalf("ParseRegistered accepted %q as %#v", raw, u)
		}
		if got, ok := Match([]string{raw}, raw); !ok || got != raw {
			t.Fatalf("accepted URI %q does not match itself", raw)
		}
	})
}
