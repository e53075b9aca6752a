package redirect

import (
	"errors"
	"strings"
	"testing"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/oautherr"
)

// mustReject asserts that ParseRegistered rejects raw with an
// invalid_redirect_uri error whose description contains want.
func mustReject(t *testing.T, raw, want string) {
	t.Helper()
	u, err := ParseRegistered(raw)
	if err == nil {
		t.Fatalf("ParseRegistered(%q) = %v, want an error", raw, u)
	}
	oe, ok := errors.AsType[*errs.Error](err)
	if !ok || oe.Code != oautherr.InvalidRedirectURI {
		t.Fatalf("ParseRegistered(%q) error = %v, want code %s", raw, err, oautherr.InvalidRedirectURI)
	}
	if !strings.Contains(oe.Public, want) {
		t.Errorf("ParseRegistered(%q) description = %q, want it to contain %q", raw, oe.Public, want)
	}
	if errs.KindOf(err) != errs.KindInvalid {
		t.Errorf("ParseRegistered(%q) kind = %v, want invalid", raw, errs.KindOf(err))
	}
}

// rejectAll asserts that every raw is rejected and never matched against
// itself.
func rejectAll(t *testing.T, tests []struct{ raw, want string }) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			mustReject(t, tt.raw, tt.want)
			if got, ok := Match([]string{tt.raw}, tt.raw); ok {
				t.Errorf("Match(%q) = %q, want no match for an invalid URI", tt.raw, got)
			}
		})
	}
}

func TestParseRegisteredAccepts(t *testing.T) {
	tests := []struct {
		raw  string
		kind Kind
	}{
		{"https://app.example.com/callback", HTTPS},
		{"https://example.com", HTTPS},
		{"https://example.com/cb?client=web&v=2", HTTPS},
		{"https://example.com:8443/cb", HTTPS},
		{"https://example.com/@user/cb", HTTPS},
		{"https://example.com/a;b/c", HTTPS},
		{"https://example.com/...", HTTPS},
		{"https://example.com/a%20b", HTTPS},
		{"https://xn--bcher-kva.example/cb", HTTPS},
		{"https://192.0.2.10/cb", HTTPS},
		{"https://[2001:db8::1]/cb", HTTPS},
		{"https://localhost/cb", Other},
		{"http://127.0.0.1/cb", Loopback},
		{"http://127.0.0.1:8080/cb", Loopback},
		{"http://[::1]:3000/cb?x=1", Loopback},
		{"http://localhost/", Loopback},
		{"com.example.app:/callback", PrivateUseScheme},
		{"io.element.app:/", PrivateUseScheme},
		{"myapp:/callback", Other},
		{"com.example.app://callback", Other},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, err := ParseRegistered(tt.raw)
			if err != nil {
				t.Fatalf("ParseRegistered(%q): %v", tt.raw, err)
			}
			if u.String() != tt.raw {
				t.Errorf("parsed URI re-serialises as %q", u.String())
			}
			if got := Classify(u); got != tt.kind {
				t.Errorf("Classify(%q) = %v, want %v", tt.raw, got, tt.kind)
			}
		})
	}
}

func TestParseRegisteredRejectsMalformed(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{"", "empty"},
		{"https://example.com/" + strings.Repeat("a", MaxLength), "longer than"},
		{"/callback", "not absolute"},
		{"example.com/callback", "not absolute"},
		{"https:callback", "authority"},
		{"com.example.app:callback", "authority"},
		{"com.example.app:", "authority"},
		{"https:/callback", "no host"},
		{"https:///callback", "no host"},
		{"com.example.app:///callback", "no host"},
		{"https://example.com:/cb", "invalid port"},
		{"https://example.com:0/cb", "invalid port"},
		{"https://example.com:08443/cb", "invalid port"},
		{"https://example.com:65536/cb", "invalid port"},
		{"https://exa_mple.com/cb", "invalid host name"},
		{"https://-example.com/cb", "invalid host name"},
		{"https://example..com/cb", "invalid host name"},
		{"https://[::1%25eth0]/cb", "percent-encoding in its authority"},
		{"https://[0:0:0:0:0:0:0:1]/cb", "non-canonical IPv6"},
		{"https://[::ffff:127.0.0.1]/cb", "IPv6"},
		{"https://example.com/a%zz", "malformed percent-encoding"},
		{"https://example.com/a%2", "malformed percent-encoding"},
		{"https://example.com/cb?x=%0d%0aSet-Cookie:a", "control character"},
		{"https://example.com/cb%00", "control character"},
		{"https://example.com/a%2fb", "encoded slash"},
		{"https://example.com/a[b]", "outside its host"},
		{"https://example.com/<script>", "not allowed in a URI"},
		{"https://example.com/a|b", "not allowed in a URI"},
		{"HTTPS://example.com/cb", "canonical form"},
		{"https://example.com/%7Euser", "canonical form"},
		{"https://example.com/cb?next=%61", "canonical form"},
	})
}

// Checklist item 2: "https://good@evil" and multiple "@" (Keycloak
// CVE-2026-7504): the parser and a validator disagreeing on the host.
func TestRejectsUserinfoTrick(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{"https://good.example@evil.test/cb", "userinfo"},
		{"https://good.example:443@evil.test/cb", "userinfo"},
		{"https://good.example@evil.test@good.example/cb", "userinfo"},
		{"https://@evil.test/cb", "userinfo"},
		{"http://127.0.0.1@evil.test/cb", "userinfo"},
		{"http://localhost:8080@evil.test/", "userinfo"},
	})
}

// Checklist item 2: "..;/" (Keycloak CVE-2026-3872), which Java servlet
// containers read as "../".
func TestRejectsDotDotSemicolon(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{"https://example.com/cb/..;/admin", "'.' or '..' path segment"},
		{"https://example.com/cb/..;x=y/admin", "'.' or '..' path segment"},
		{"https://example.com/cb/.;/admin", "'.' or '..' path segment"},
		{"https://example.com/cb/%2e%2e;/admin", "'.' or '..' path segment"},
	})
}

// Checklist item 2: dot segments, plain, percent-encoded in either case and
// double-encoded.
func TestRejectsEncodedTraversal(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{"https://example.com/cb/../admin", "'.' or '..' path segment"},
		{"https://example.com/cb/./admin", "'.' or '..' path segment"},
		{"https://example.com/cb/..", "'.' or '..' path segment"},
		{"https://example.com/cb/%2e%2e/admin", "'.' or '..' path segment"},
		{"https://example.com/cb/%2E%2E/admin", "'.' or '..' path segment"},
		{"https://example.com/cb/.%2E/admin", "'.' or '..' path segment"},
		{"https://example.com/cb/%2E/admin", "'.' or '..' path segment"},
		{"https://example.com/cb/%252e%252e/admin", "'.' or '..' path segment"},
		{"https://example.com/cb/..%2fadmin", "encoded slash"},
		{"https://example.com/cb/..%2Fadmin", "encoded slash"},
		{"com.example.app:/../callback", "'.' or '..' path segment"},
		{"http://127.0.0.1/cb/../x", "'.' or '..' path segment"},
	})
}

// Checklist item 2: backslashes, which browsers read as "/" in special
// schemes, and their encodings.
func TestRejectsBackslashes(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{`https://example.com\@evil.test/cb`, "backslash"},
		{`https://evil.test\.example.com/cb`, "backslash"},
		{`https://example.com/cb\..\admin`, "backslash"},
		{`http://127.0.0.1\evil.test/cb`, "backslash"},
		{"https://example.com/cb/..%5cadmin", "encoded slash or backslash"},
		{"https://example.com/cb/..%5Cadmin", "encoded slash or backslash"},
	})
}

// Checklist item 2: a trailing dot names the same DNS host but defeats exact
// host comparison.
func TestRejectsTrailingDotHost(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{"https://example.com./cb", "ending in a dot"},
		{"https://example.com.:443/cb", "ending in a dot"},
		{"http://localhost./cb", "ending in a dot"},
		{"http://localhost.:8080/cb", "ending in a dot"},
	})
}

// Checklist item 1 (Keycloak CVE-2026-18211): loopback is decided on the
// parsed host, never by prefix, and numeric hosts browsers would read as
// 127.0.0.1 are not accepted.
func TestRejectsLocalhostLookalike(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{"http://localhost.evil.test/cb", "only allowed for 127.0.0.1"},
		{"http://127.0.0.1.evil/cb", "only allowed for 127.0.0.1"},
		{"http://127.0.0.1.nip.io/cb", "only allowed for 127.0.0.1"},
		{"http://localhostevil.test/cb", "only allowed for 127.0.0.1"},
		{"http://127.0.0.2/cb", "only allowed for 127.0.0.1"},
		{"http://0.0.0.0/cb", "only allowed for 127.0.0.1"},
		{"http://example.com/cb", "only allowed for 127.0.0.1"},
		{"http://LOCALHOST/cb", "upper-case"},
		{"http://127.1/cb", "not a dotted-quad"},
		{"http://0x7f.0.0.1/cb", "not a dotted-quad"},
		{"http://2130706433/cb", "not a dotted-quad"},
		{"http://127.000.000.001/cb", "not a dotted-quad"},
		{"http://1.2.3.4.5/cb", "not a dotted-quad"},
	})
	for _, raw := range []string{"https://localhost.evil.test/cb", "https://127.0.0.1.evil/cb"} {
		u, err := ParseRegistered(raw)
		if err != nil {
			t.Fatalf("ParseRegistered(%q): %v", raw, err)
		}
		if got := Classify(u); got != HTTPS {
			t.Errorf("Classify(%q) = %v, want https (not loopback)", raw, got)
		}
	}
}

// Checklist item 2 (Keycloak CVE-2026-9086): script and local schemes in any
// case, even disguised with whitespace a browser would strip.
func TestRejectsMixedCaseJavascriptAndData(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{"javascript:alert(1)", `forbidden scheme "javascript"`},
		{"JaVaScRiPt:alert(document.domain)", `forbidden scheme "javascript"`},
		{"JAVASCRIPT://example.com/%0aalert(1)", `forbidden scheme "javascript"`},
		{" javascript:alert(1)", `forbidden scheme "javascript"`},
		{"java\tscript:alert(1)", `forbidden scheme "javascript"`},
		{"java\nscript:alert(1)", `forbidden scheme "javascript"`},
		{"data:text/html,<script>alert(1)</script>", `forbidden scheme "data"`},
		{"DaTa:text/html;base64,PHNjcmlwdD4=", `forbidden scheme "data"`},
		{"VBScript:msgbox(1)", `forbidden scheme "vbscript"`},
		{"FILE:///etc/passwd", `forbidden scheme "file"`},
		{"blob:https://example.com/uuid", `forbidden scheme "blob"`},
	})
}

// Checklist item 2: fragments are forbidden in redirect URIs (RFC 6749
// §3.1.2), even empty ones.
func TestFragmentRejected(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{"https://example.com/cb#", "fragment"},
		{"https://example.com/cb#frag", "fragment"},
		{"https://example.com/cb?x=1#frag", "fragment"},
		{"com.example.app:/cb#x", "fragment"},
	})
}

// Checklist item 2: IDN look-alikes. Raw Unicode hosts are rejected; hosts
// must be registered in punycode, whose xn-- labels must decode validly, so
// the ASCII form (which consent pages show) is the only spelling.
func TestIDNLookalikeHandling(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{"https://аррӏе.com/cb", "non-ASCII"},
		{"https://exämple.com/cb", "non-ASCII"},
		{"https://example.com/cäll", "non-ASCII"},
		{"https://xn--example-.com/cb", "invalid host name"},
		{"https://xn--a.com/cb", "not valid punycode"},
		{"https://xn--0.com/cb", "not valid punycode"},
		{"https://XN--80AK6AA92E.com/cb", "upper-case"},
	})
	const lookalike = "https://xn--80ak6aa92e.com/cb" // "аррӏе.com" in Cyrillic
	if _, err := ParseRegistered(lookalike); err != nil {
		t.Fatalf("ParseRegistered(%q): %v", lookalike, err)
	}
	if got, ok := Match([]string{"https://apple.com/cb"}, lookalike); ok {
		t.Errorf("look-alike matched %q", got)
	}
}

func TestMatchExact(t *testing.T) {
	registered := []string{
		"https://app.example.com/callback",
		"https://app.example.com/other?mode=a",
		"com.example.app:/callback",
	}
	tests := []struct {
		requested string
		want      bool
	}{
		{"https://app.example.com/callback", true},
		{"https://app.example.com/other?mode=a", true},
		{"com.example.app:/callback", true},
		{"https://app.example.com/callback/", false},
		{"https://app.example.com/Callback", false},
		{"https://app.example.com:443/callback", false},
		{"https://App.example.com/callback", false},
		{"https://app.example.com/callback?", false},
		{"https://app.example.com/callback?x=1", false},
		{"https://app.example.com/other?mode=b", false},
		{"https://app.example.com/other?mode=a&x=1", false},
		{"https://app.example.com/other", false},
		{"https://app.example.com/callback#x", false},
		{"http://app.example.com/callback", false},
		{"com.example.app:/callback2", false},
		{"com.example.app://callback", false},
		{"https://app.example.com/%63allback", false},
	}
	for _, tt := range tests {
		t.Run(tt.requested, func(t *testing.T) {
			got, ok := Match(registered, tt.requested)
			if ok != tt.want {
				t.Fatalf("Match(%q) = %q, %v; want match %v", tt.requested, got, ok, tt.want)
			}
			if ok && got != tt.requested {
				t.Errorf("Match(%q) returned %q", tt.requested, got)
			}
		})
	}
}

// Checklist item 1: never prefix matching, on the path, the host or the query.
func TestNoPrefixMatch(t *testing.T) {
	tests := []struct{ registered, requested string }{
		{"https://example.com/cb", "https://example.com/cb/evil"},
		{"https://example.com/cb", "https://example.com/cbevil"},
		{"https://example.com/cb", "https://example.com/cb?next=https://evil.test"},
		{"https://example.com", "https://example.com.evil.test"},
		{"https://example.com", "https://example.com/evil"},
		{"https://example.com/", "https://example.com/evil"},
		{"https://example.com/cb?a=1", "https://example.com/cb?a=12"},
		{"http://127.0.0.1/cb", "http://127.0.0.1/cb/evil"},
		{"http://localhost/cb", "http://localhost/cbevil"},
		{"com.example.app:/cb", "com.example.app:/cb/evil"},
		{"https://example.com/cb/evil", "https://example.com/cb"},
	}
	for _, tt := range tests {
		t.Run(tt.requested, func(t *testing.T) {
			if got, ok := Match([]string{tt.registered}, tt.requested); ok {
				t.Errorf("Match([%q], %q) = %q, want no match", tt.registered, tt.requested, got)
			}
		})
	}
}

// RFC 8252 §7.3: a loopback redirect URI may use any port at authorization
// time, whatever port (if any) was registered.
func TestLoopbackAnyPort(t *testing.T) {
	tests := []struct {
		registered, requested string
		want                  bool
	}{
		{"http://127.0.0.1/cb", "http://127.0.0.1:51234/cb", true},
		{"http://127.0.0.1/cb", "http://127.0.0.1/cb", true},
		{"http://127.0.0.1:8080/cb", "http://127.0.0.1:9090/cb", true},
		{"http://127.0.0.1:8080/cb", "http://127.0.0.1/cb", true},
		{"http://[::1]/cb", "http://[::1]:1/cb", true},
		{"http://localhost/cb", "http://localhost:65535/cb", true},
		{"http://localhost", "http://localhost:8080", true},
		{"http://127.0.0.1/", "http://127.0.0.1:8080/", true},
		// Any port, but nothing else: not the host, not the scheme.
		{"http://127.0.0.1/cb", "http://[::1]:8080/cb", false},
		{"http://127.0.0.1/cb", "http://localhost:8080/cb", false},
		{"http://localhost/cb", "http://127.0.0.1:8080/cb", false},
		{"http://127.0.0.1/cb", "https://127.0.0.1:8080/cb", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:8080/cb2", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:8080", false},
		{"http://localhost/cb", "http://localhost.evil.test:8080/cb", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:8080@evil.test/cb", false},
		// The exception is only for loopback: https ports are exact.
		{"https://example.com/cb", "https://example.com:8443/cb", false},
		{"https://localhost/cb", "https://localhost:8443/cb", false},
	}
	for _, tt := range tests {
		t.Run(tt.registered+" "+tt.requested, func(t *testing.T) {
			got, ok := Match([]string{tt.registered}, tt.requested)
			if ok != tt.want {
				t.Fatalf("Match([%q], %q) = %q, %v; want match %v", tt.registered, tt.requested, got, ok, tt.want)
			}
			if ok && got != tt.requested {
				t.Errorf("Match returned %q, want the requested URI %q", got, tt.requested)
			}
		})
	}
}

// Checklist item 1 (fosite CVE-2020-15233): the loopback port exception must
// not relax the query.
func TestLoopbackQueryChangeRejected(t *testing.T) {
	tests := []struct{ registered, requested string }{
		{"http://127.0.0.1/cb", "http://127.0.0.1:8080/cb?evil=1"},
		{"http://127.0.0.1/cb?a=1", "http://127.0.0.1:8080/cb?a=2"},
		{"http://127.0.0.1/cb?a=1", "http://127.0.0.1:8080/cb?a=1&b=2"},
		{"http://127.0.0.1/cb?a=1", "http://127.0.0.1:8080/cb"},
		{"http://[::1]/cb", "http://[::1]:8080/cb?"},
		{"http://localhost/cb?a=1&b=2", "http://localhost:8080/cb?b=2&a=1"},
	}
	for _, tt := range tests {
		t.Run(tt.requested, func(t *testing.T) {
			if got, ok := Match([]string{tt.registered}, tt.requested); ok {
				t.Errorf("Match([%q], %q) = %q, want no match", tt.registered, tt.requested, got)
			}
		})
	}
	if _, ok := Match([]string{"http://127.0.0.1/cb?a=1"}, "http://127.0.0.1:8080/cb?a=1"); !ok {
		t.Error("same query on another port did not match")
	}
}

func TestMatchEmptyRequested(t *testing.T) {
	tests := []struct {
		name       string
		registered []string
		want       string
		ok         bool
	}{
		{"one registered", []string{"https://example.com/cb"}, "https://example.com/cb", true},
		{"one loopback registered", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1/cb", true},
		{"none registered", nil, "", false},
		{"two registered", []string{"https://example.com/cb", "https://example.com/cb2"}, "", false},
		{"one invalid registered", []string{"https://example.com/cb#x"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Match(tt.registered, "")
			if got != tt.want || ok != tt.ok {
				t.Errorf("Match(%q, \"\") = %q, %v; want %q, %v", tt.registered, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// A registered URI that would no longer pass ParseRegistered never matches,
// even when requested verbatim.
func TestMatchSkipsInvalidRegistered(t *testing.T) {
	registered := []string{"https://good@evil.test/cb", "http://example.com/cb", "https://example.com/cb"}
	for _, requested := range registered[:2] {
		if got, ok := Match(registered, requested); ok {
			t.Errorf("Match(%q) = %q, want no match", requested, got)
		}
	}
	if _, ok := Match(registered, "https://example.com/cb"); !ok {
		t.Error("valid registered URI did not match")
	}
}

func TestKindString(t *testing.T) {
	for kind, want := range map[Kind]string{
		Other: "other", HTTPS: "https", Loopback: "loopback", PrivateUseScheme: "private-use scheme",
	} {
		if got := kind.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", kind, got, want)
		}
	}
	if got := Classify(nil); got != Other {
		t.Errorf("Classify(nil) = %v, want other", got)
	}
}

// Percent-encoding in the host lets a validator and a browser read different
// hosts (evil.test%2F.example.com is evil.test/ to some parsers).
func TestRejectsEncodedHost(t *testing.T) {
	rejectAll(t, []struct{ raw, want string }{
		{"https://evil.test%2F.example.com/cb", "percent-encoding in its authority"},
		{"https://evil.test%23.example.com/cb", "percent-encoding in its authority"},
		{"https://%65xample.com/cb", "percent-encoding in its authority"},
		{"http://127.0.0.1%2Eevil.test/cb", "percent-encoding in its authority"},
		{"http://127.0.0.1:80%2F@evil.test/cb", "percent-encoding in its authority"},
	})
}
