package synapse

import (
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"strings"
)

// Token is a bearer token as Synapse stores it: the plaintext a client holds.
// It formats, prints and logs as "[redacted]" in every form; Reveal returns
// the text, to be hashed and never shown.
type Token string

// redacted stands for a token in every printed form.
const redacted = "[redacted]"

// Reveal returns the token's text.
func (t Token) Reveal() string { return string(t) }

// Format writes "[redacted]" whatever the verb, so no fmt call shows a token.
func (t Token) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue is "[redacted]", so a token in a log record shows nothing.
func (t Token) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText is "[redacted]", so encoding a record as JSON or YAML shows
// nothing either.
func (t Token) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// TokenFormat classifies a token's text. The importer treats every token as an
// opaque string; the format only feeds counts in reports.
type TokenFormat int

// Token formats.
const (
	// FormatUnknown is anything else: imported as it is all the same.
	FormatUnknown TokenFormat = iota
	// FormatAccess is a current access token, syt_<base64 localpart>_<20
	// letters>_<CRC-32 in base62>, with a correct checksum.
	FormatAccess
	// FormatRefresh is a current refresh token, syr_…, with a correct checksum.
	FormatRefresh
	// FormatBadChecksum starts with syt_ or syr_ but its checksum or shape is
	// wrong.
	FormatBadChecksum
	// FormatMacaroon is a pymacaroons v1 access token from before Synapse 1.34.
	FormatMacaroon
)

// String names the format in reports.
func (f TokenFormat) String() string {
	switch f {
	case FormatAccess:
		return "syt"
	case FormatRefresh:
		return "syr"
	case FormatBadChecksum:
		return "syt/syr with a bad checksum"
	case FormatMacaroon:
		return "macaroon"
	}
	return "unknown"
}

// ClassifyToken tells which of Synapse's formats token has, from its text
// alone.
func ClassifyToken(token Token) TokenFormat {
	s := token.Reveal()
	switch {
	case strings.HasPrefix(s, "syt_"):
		if checksumOK(s) {
			return FormatAccess
		}
		return FormatBadChecksum
	case strings.HasPrefix(s, "syr_"):
		if checksumOK(s) {
			return FormatRefresh
		}
		return FormatBadChecksum
	case isMacaroon(s):
		return FormatMacaroon
	}
	return FormatUnknown
}

// checksumOK reports whether s is <prefix>_<B>_<R>_<C> with C the base62
// CRC-32 of everything before its last '_'.
func checksumOK(s string) bool {
	parts := strings.Split(s, "_")
	if len(parts) != 4 {
		return false
	}
	i := strings.LastIndexByte(s, '_')
	return s[i+1:] == TokenChecksum(s[:i])
}

// TokenChecksum returns the checksum Synapse appends to a token: the CRC-32
// (zlib, IEEE) of body in base62 (0-9A-Za-z), left-padded with '0' to six
// characters.
func TokenChecksum(body string) string {
	return base62(uint64(crc32.ChecksumIEEE([]byte(body))), 6)
}

// base62Digits is Synapse's base62 alphabet.
const base62Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// base62 writes n in base62, left-padded with '0' to at least width digits.
func base62(n uint64, width int) string {
	var buf [16]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = base62Digits[n%62]
		n /= 62
	}
	for len(buf)-i < width {
		i--
		buf[i] = '0'
	}
	return string(buf[i:])
}

// isMacaroon reports whether s decodes as URL-safe base64 (padded or not)
// whose bytes 4 to 12 read "location ": the first packet of a pymacaroons v1
// binary macaroon, as MAS recognises one.
func isMacaroon(s string) bool {
	if len(s) < 20 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) < 13 {
		return false
	}
	return string(b[4:13]) == "location "
}
