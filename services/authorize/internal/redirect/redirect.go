// Package redirect provides the authorization server's redirect URI rules:
// which URIs a client may register (ParseRegistered), how an authorization
// request's redirect_uri is matched against the registered ones (Match), and
// what kind of URI a registered one is (Classify), for MSC2966's rules per
// application type.
//
// The rules are deliberately narrower than RFC 3986. A URI is accepted only
// if it has a single unambiguous reading: the parser and every browser must
// agree on its scheme, host, port and path, so that a validator and a user
// agent cannot be made to disagree (the bug class behind Keycloak's
// multiple-"@", "..;/" and "localhost." advisories). Matching is exact, byte
// for byte, except for the port of a loopback URI (RFC 8252 §7.3).
//
// Internationalised hosts must be registered in their ASCII (punycode) form,
// and "xn--" labels must be valid IDNA 2008 punycode. Raw Unicode is
// rejected. The ASCII form is what exact matching compares and what a consent
// page should show, so a look-alike such as xn--80ak6aa92e.com ("аррӏе.com" in
// Cyrillic) can neither match another client's URI nor pass for "apple.com".
package redirect

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/idna"

	"gatehouse.dev/platform/oautherr"
)

// MaxLength is the longest redirect URI accepted, in bytes.
const MaxLength = 2048

// Kind is the kind of a redirect URI, which decides the application types
// that may register it.
type Kind int

// The kinds of redirect URI. The zero Kind is Other, which no rule accepts.
const (
	// Other is any URI that is none of the kinds below.
	Other Kind = iota
	// HTTPS is an https URI whose host is not a loopback host.
	HTTPS
	// Loopback is an http URI on 127.0.0.1, [::1] or localhost (RFC 8252 §7.3).
	Loopback
	// PrivateUseScheme is a URI with a dotted custom scheme and no authority,
	// such as com.example.app:/callback (RFC 8252 §7.1).
	PrivateUseScheme
)

// String returns the kind's name, e.g. "loopback".
func (k Kind) String() string {
	switch k {
	case HTTPS:
		return "https"
	case Loopback:
		return "loopback"
	case PrivateUseScheme:
		return "private-use scheme"
	default:
		return "other"
	}
}

// deniedSchemes are schemes that run code or read local data in a browser
// and are never redirect targets, whatever their case.
var deniedSchemes = map[string]bool{
	"javascript": true,
	"data":       true,
	"vbscript":   true,
	"file":       true,
	"blob":       true,
	"about":      true,
}

// ParseRegistered validates a redirect URI offered at client registration
// and returns it parsed. A URI passes only if it:
//   - is absolute and at most MaxLength bytes of printable ASCII from RFC
//     3986's character set, with no backslash;
//   - has no fragment, no userinfo and no percent-encoding in its authority;
//   - has no "." or ".." path segment, even percent-encoded or followed by
//     ";", and no encoded slash, backslash or control character;
//   - has an authority with a valid lower-case host and port, or else a path
//     starting with "/";
//   - uses http only with a loopback host, and never javascript:, data:,
//     vbscript:, file:, blob: or about: in any case;
//   - re-serialises to exactly raw, and percent-encodes no unreserved
//     character.
//
// Every failure is an *oautherr.Error with code invalid_redirect_uri whose
// description, `URI "<raw>" …`, names the rule broken and reads well after a
// field name.
func ParseRegistered(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, invalid("URI is empty")
	}
	if len(raw) > MaxLength {
		return nil, invalid("URI is longer than %d bytes", MaxLength)
	}
	if scheme := sniffScheme(raw); deniedSchemes[scheme] {
		return nil, invalid("URI %q uses the forbidden scheme %q", raw, scheme)
	}
	if err := checkCharacters(raw); err != nil {
		return nil, err
	}
	if strings.Contains(raw, "#") {
		return nil, invalid("URI %q has a fragment", raw)
	}
	if strings.Contains(authority(raw), "%") {
		return nil, invalid("URI %q has percent-encoding in its authority", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, invalid("URI %q is not a valid URI", raw)
	}
	if u.Scheme == "" {
		return nil, invalid("URI %q is not absolute", raw)
	}
	if u.User != nil {
		return nil, invalid("URI %q has userinfo (an '@' before the host)", raw)
	}
	if u.Opaque != "" {
		return nil, invalid("URI %q must have an authority (%s://…) or a path starting with '/'", raw, u.Scheme)
	}
	hasAuthority := strings.HasPrefix(raw[len(u.Scheme)+1:], "//")
	if hasAuthority {
		if err := checkHost(raw, u.Host); err != nil {
			return nil, err
		}
	} else if !strings.HasPrefix(u.Path, "/") {
		return nil, invalid("URI %q must have an authority (%s://…) or a path starting with '/'", raw, u.Scheme)
	}
	if err := checkPath(raw, u.EscapedPath()); err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http":
		if !hasAuthority || !isLoopbackHost(u.Hostname()) {
			return nil, invalid("URI %q uses http, which is only allowed for 127.0.0.1, [::1] and localhost", raw)
		}
	case "https":
		if !hasAuthority {
			return nil, invalid("URI %q has no host", raw)
		}
	}
	if encodesUnreserved(raw) {
		return nil, invalid("URI %q is not in canonical form (it percent-encodes a letter, digit or one of \"-._~\")", raw)
	}
	if u.String() != raw {
		return nil, invalid("URI %q is not in canonical form (it re-serialises as %q)", raw, u.String())
	}
	return u, nil
}

// Match finds requested among the registered redirect URIs and returns it.
// Matching is exact (RFC 6749 §3.1.2, RFC 9700 §4.1.3): both must pass
// ParseRegistered and be equal byte for byte. The one exception is RFC 8252
// §7.3: when a registered URI is a Loopback URI, the requested URI may name
// any port (or none), while scheme, host, path and query must still be
// identical. An empty requested URI matches only when exactly one URI is
// registered, which is then returned. Registered URIs that fail
// ParseRegistered never match.
func Match(registered []string, requested string) (string, bool) {
	if requested == "" {
		if len(registered) != 1 {
			return "", false
		}
		if _, err := ParseRegistered(registered[0]); err != nil {
			return "", false
		}
		return registered[0], true
	}
	req, err := ParseRegistered(requested)
	if err != nil {
		return "", false
	}
	loopback := Classify(req) == Loopback
	for _, r := range registered {
		reg, err := ParseRegistered(r)
		if err != nil {
			continue
		}
		if r == requested {
			return requested, true
		}
		if loopback && Classify(reg) == Loopback && reg.Hostname() == req.Hostname() {
			// Give the request the registered port, then compare the rest.
			withPort := *req
			withPort.Host = reg.Host
			if withPort.String() == r {
				return requested, true
			}
		}
	}
	return "", false
}

// Classify returns the kind of u, which should have passed ParseRegistered.
func Classify(u *url.URL) Kind {
	switch {
	case u == nil || u.User != nil || u.Opaque != "":
		return Other
	case u.Scheme == "https" && u.Host != "" && !isLoopbackHost(u.Hostname()):
		return HTTPS
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return Loopback
	case u.Scheme != "http" && u.Scheme != "https" && strings.Contains(u.Scheme, ".") &&
		u.Host == "" && strings.HasPrefix(u.Path, "/"):
		return PrivateUseScheme
	default:
		return Other
	}
}

// isLoopbackHost reports whether host, a parsed host name without brackets
// or port, is one of RFC 8252's loopback hosts. It compares whole hosts, so
// localhost.evil.test and 127.0.0.1.evil are not loopback.
func isLoopbackHost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// authority returns the authority of raw, between "scheme://" and the next
// "/", "?" or "#", or "" if it has none.
func authority(raw string) string {
	i := strings.IndexByte(raw, ':')
	if i < 0 || !strings.HasPrefix(raw[i+1:], "//") {
		return ""
	}
	rest := raw[i+3:]
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// sniffScheme returns the lower-cased scheme of raw as a browser would read
// it, ignoring leading spaces and control characters and any tab or newline
// (which the WHATWG URL parser strips), or "" if raw has no scheme.
func sniffScheme(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == ':':
			return strings.ToLower(b.String())
		case c == '\t' || c == '\n' || c == '\r' || (c <= ' ' && b.Len() == 0):
			continue
		case isAlpha(c) || (b.Len() > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.')):
			b.WriteByte(c)
		default:
			return ""
		}
	}
	return ""
}

// checkCharacters rejects any byte outside RFC 3986's character set, and
// percent-encodings that are malformed or encode a control character.
func checkCharacters(raw string) error {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\\':
			return invalid("URI %q contains a backslash", raw)
		case c <= ' ' || c == 0x7f:
			return invalid("URI %q contains a space or control character", raw)
		case c >= 0x80:
			return invalid("URI %q contains non-ASCII characters; internationalised hosts must use their punycode (xn--) form", raw)
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return invalid("URI %q has a malformed percent-encoding", raw)
			}
			if v := unhex(raw[i+1])<<4 | unhex(raw[i+2]); v < 0x20 || v == 0x7f {
				return invalid("URI %q percent-encodes a control character", raw)
			}
		case !isURIChar(c):
			return invalid("URI %q contains the character %q, which is not allowed in a URI", raw, c)
		}
	}
	return nil
}

// checkHost validates the authority of raw once userinfo is known to be
// absent: host is a canonical IPv4 address, a bracketed canonical IPv6
// address without zone, or a lower-case DNS name without trailing dot; the
// port, if any, is a decimal number in 1..65535 without leading zeros.
func checkHost(raw, host string) error {
	name, port := host, ""
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return invalid("URI %q has a malformed IPv6 host", raw)
		}
		name, port = host[1:end], host[end+1:]
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i:]
	}
	if port != "" && !validPort(port) {
		return invalid("URI %q has an invalid port", raw)
	}
	if name == "" {
		return invalid("URI %q has no host", raw)
	}
	if strings.HasPrefix(host, "[") {
		addr, err := netip.ParseAddr(name)
		if err != nil || !addr.Is6() || addr.Is4In6() || addr.Zone() != "" || addr.String() != name {
			return invalid("URI %q has an invalid, IPv4-mapped or non-canonical IPv6 host", raw)
		}
		return nil
	}
	return checkDNSHost(raw, name)
}

// checkDNSHost validates a host that is not an IPv6 literal: a lower-case
// DNS name of letters, digits and hyphens, or a canonical dotted-quad IPv4
// address. A name whose last label is numeric must be such an address, as a
// browser would read it as one (127.1, 0x7f.1, 2130706433).
func checkDNSHost(raw, name string) error {
	if strings.HasSuffix(name, ".") {
		return invalid("URI %q has a host ending in a dot", raw)
	}
	if name != strings.ToLower(name) {
		return invalid("URI %q has upper-case letters in its host", raw)
	}
	if len(name) > 253 {
		return invalid("URI %q has a host longer than 253 bytes", raw)
	}
	labels := strings.Split(name, ".")
	for _, label := range labels {
		if !isLDHLabel(label) {
			return invalid("URI %q has an invalid host name", raw)
		}
		if strings.HasPrefix(label, "xn--") {
			if a, err := idna.Lookup.ToASCII(label); err != nil || a != label {
				return invalid("URI %q has a host label that is not valid punycode", raw)
			}
		}
	}
	if last := labels[len(labels)-1]; isNumericLabel(last) {
		addr, err := netip.ParseAddr(name)
		if err != nil || !addr.Is4() || addr.String() != name {
			return invalid("URI %q has a numeric host that is not a dotted-quad IPv4 address", raw)
		}
	}
	return nil
}

// checkPath rejects dot segments and encoded slashes in an escaped path. A
// segment is a dot segment if, after removing any ";parameters" and
// percent-decoding (repeatedly, against double encoding), it is "." or "..".
func checkPath(raw, path string) error {
	lower := strings.ToLower(path)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return invalid("URI %q has a percent-encoded slash or backslash in its path", raw)
	}
	if strings.ContainsAny(path, "[]") {
		return invalid("URI %q has '[' or ']' outside its host", raw)
	}
	for seg := range strings.SplitSeq(path, "/") {
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
		}
		for range 3 {
			if seg == "." || seg == ".." {
				return invalid("URI %q has a '.' or '..' path segment", raw)
			}
			dec, err := url.PathUnescape(seg)
			if err != nil || dec == seg {
				break
			}
			seg = dec
		}
	}
	return nil
}

// encodesUnreserved reports whether raw percent-encodes an unreserved
// character, which RFC 3986 §2.3 makes equivalent to the character itself.
func encodesUnreserved(raw string) bool {
	for i := strings.IndexByte(raw, '%'); i >= 0 && i+2 < len(raw); {
		c := unhex(raw[i+1])<<4 | unhex(raw[i+2])
		if isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~' {
			return true
		}
		next := strings.IndexByte(raw[i+3:], '%')
		if next < 0 {
			break
		}
		i += 3 + next
	}
	return false
}

// validPort reports whether port is ":" followed by a decimal number in
// 1..65535 written without sign or leading zeros.
func validPort(port string) bool {
	digits, ok := strings.CutPrefix(port, ":")
	if !ok || digits == "" || len(digits) > 5 || digits[0] == '0' {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return false
		}
	}
	n, err := strconv.Atoi(digits)
	return err == nil && n <= 65535
}

// isLDHLabel reports whether label is 1..63 lower-case letters, digits and
// hyphens, neither starting nor ending with a hyphen.
func isLDHLabel(label string) bool {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		if c := label[i]; !(c >= 'a' && c <= 'z') && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

// isNumericLabel reports whether a browser would read label as part of an
// IPv4 address: all decimal digits, or a 0x hexadecimal number.
func isNumericLabel(label string) bool {
	digits := label
	if strings.HasPrefix(label, "0x") {
		digits = label[2:]
		for i := 0; i < len(digits); i++ {
			if !isHex(digits[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return false
		}
	}
	return true
}

// isURIChar reports whether c is an RFC 3986 unreserved or reserved character.
func isURIChar(c byte) bool {
	return isAlpha(c) || isDigit(c) || strings.IndexByte("-._~:/?#[]@!$&'()*+,;=", c) >= 0
}

// isAlpha reports whether c is an ASCII letter.
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isDigit reports whether c is an ASCII decimal digit.
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isHex reports whether c is an ASCII hexadecimal digit.
func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// unhex returns the value of the hexadecimal digit c.
func unhex(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// invalid returns an invalid_redirect_uri error with a formatted description.
func invalid(format string, args ...any) error {
	return oautherr.Errorf(oautherr.InvalidRedirectURI, format, args...)
}
