// Package tokenfmt mints and checks Gatehouse's opaque tokens.
//
// A token reads <prefix>_<random>_<checksum>: a three-letter prefix naming its
// kind, 30 characters of [A-Za-z0-9] from crypto/rand (about 178 bits) and a
// 6-character checksum. Unlike the CRC-32 that matrix-authentication-service
// puts there, the checksum is a MAC: the base62 form of the first bytes of
// HMAC-SHA256(key, "<prefix>_<random>"). A forged or mistyped token therefore
// fails in Parse, before any storage lookup, and a token cannot be relabelled
// as another kind because the prefix is inside the MAC.
//
// Tokens are never stored: Hash (or HashString) is the only form that reaches
// a database or an event, so a leak of either does not reveal usable tokens.
package tokenfmt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"sync"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
)

// Kind is what a token grants; its prefix is part of the token.
type Kind int

// The kinds of token. The zero Kind is invalid.
const (
	// AccessToken is an OAuth 2.0 access token, prefix "mat".
	AccessToken Kind = iota + 1
	// RefreshToken is an OAuth 2.0 refresh token, prefix "mar".
	RefreshToken
	// CompatAccessToken is a Matrix compatibility-API access token, prefix "mct".
	CompatAccessToken
	// CompatRefreshToken is a Matrix compatibility-API refresh token, prefix "mcr".
	CompatRefreshToken
	// PersonalToken is a personal access token, prefix "mpt".
	PersonalToken
)

// kindInfo holds the prefix and name of one Kind.
type kindInfo struct {
	prefix string
	name   string
}

// info returns the kind's prefix and name; both are empty for an invalid Kind.
func (k Kind) info() kindInfo {
	switch k {
	case AccessToken:
		return kindInfo{"mat", "access_token"}
	case RefreshToken:
		return kindInfo{"mar", "refresh_token"}
	case CompatAccessToken:
		return kindInfo{"mct", "compat_access_token"}
	case CompatRefreshToken:
		return kindInfo{"mcr", "compat_refresh_token"}
	case PersonalToken:
		return kindInfo{"mpt", "personal_token"}
	default:
		return kindInfo{}
	}
}

// Prefix returns the kind's three-letter token prefix, or "" for an invalid Kind.
func (k Kind) Prefix() string { return k.info().prefix }

// String returns the kind's snake_case name, e.g. "access_token".
func (k Kind) String() string {
	if name := k.info().name; name != "" {
		return name
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool { return k.info().prefix != "" }

// kindOfPrefix returns the Kind whose prefix is p, or 0.
func kindOfPrefix(p string) Kind {
	switch p {
	case "mat":
		return AccessToken
	case "mar":
		return RefreshToken
	case "mct":
		return CompatAccessToken
	case "mcr":
		return CompatRefreshToken
	case "mpt":
		return PersonalToken
	default:
		return 0
	}
}

// The layout of a token.
const (
	prefixLen   = 3
	randomLen   = 30
	checksumLen = 6
	// tokenLen is the length of every token: prefix, '_', random, '_', checksum.
	tokenLen = prefixLen + 1 + randomLen + 1 + checksumLen
	// MaxLen is the longest input Parse looks at; anything longer is rejected unread.
	MaxLen = 100
	// MinKeyLen is the shortest MAC key NewMinter accepts, in bytes.
	MinKeyLen = 32
)

// base62 is the checksum alphabet.
const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// reason is why Parse rejected a token; it is the internal cause of the
// returned error, so logs and tests can tell the checks apart while clients
// only ever see "invalid token".
type reason string

// Error returns the reason.
func (r reason) Error() string { return string(r) }

// The reasons Parse rejects a token.
const (
	errTooLong  reason = "token longer than 100 bytes"
	errShape    reason = "token is not <prefix>_<random>_<checksum>"
	errPrefix   reason = "unknown token prefix"
	errLength   reason = "token part has the wrong length"
	errChars    reason = "token has a character outside [A-Za-z0-9]"
	errChecksum reason = "token checksum does not match"
)

// Minter mints and parses tokens with a set of MAC keys. It is immutable and
// safe for concurrent use.
type Minter struct {
	keys [][]byte // keys[0] signs; every key verifies
	// macs[i] keeps HMACs keyed with keys[i] for reuse: every introspection
	// parses a token, and a new HMAC (two SHA-256 states and the key's pads)
	// was a tenth of what it allocated (issue 16).
	macs []sync.Pool
}

// NewMinter returns a Minter whose first key signs new tokens and whose every
// key verifies them, so a key can be rotated by prepending its successor. Each
// key must be at least MinKeyLen bytes.
func NewMinter(keys [][]byte) (*Minter, error) {
	if len(keys) == 0 {
		return nil, errs.Internalf("tokenfmt: no MAC key")
	}
	m := &Minter{keys: make([][]byte, len(keys)), macs: make([]sync.Pool, len(keys))}
	for i, k := range keys {
		if len(k) < MinKeyLen {
			return nil, errs.Internalf("tokenfmt: MAC key %d is %d bytes, want at least %d", i, len(k), MinKeyLen)
		}
		m.keys[i] = append([]byte(nil), k...)
	}
	return m, nil
}

// New returns a fresh token of the given kind. It panics if kind is not one of
// the defined kinds, which is a programming error.
func (m *Minter) New(kind Kind) string {
	prefix := kind.Prefix()
	if prefix == "" {
		panic(fmt.Sprintf("tokenfmt: New called with invalid %v", kind))
	}
	buf := make([]byte, 0, tokenLen)
	buf = append(buf, prefix...)
	buf = append(buf, '_')
	buf = append(buf, ids.Token(randomLen)...)
	buf = m.appendChecksum(buf, 0, buf)
	return string(buf)
}

// Parse checks a token's shape, prefix, characters, length and MAC, in
// constant time with respect to the MAC, and returns its kind. It never
// panics; every failure is a KindUnauthenticated error whose public message is
// "invalid token". A nil error means only that this server minted the token:
// whether it is still valid is for storage to say.
func (m *Minter) Parse(token string) (Kind, error) {
	if len(token) > MaxLen {
		return 0, reject(errTooLong)
	}
	prefix, rest, ok1 := strings.Cut(token, "_")
	random, checksum, ok2 := strings.Cut(rest, "_")
	if !ok1 || !ok2 || strings.Contains(checksum, "_") {
		return 0, reject(errShape)
	}
	kind := kindOfPrefix(prefix)
	if kind == 0 {
		return 0, reject(errPrefix)
	}
	if len(random) != randomLen || len(checksum) != checksumLen {
		return 0, reject(errLength)
	}
	if !alphanumeric(random) || !alphanumeric(checksum) {
		return 0, reject(errChars)
	}
	signed := token[:prefixLen+1+randomLen]
	var want [1 + checksumLen]byte
	for i := range m.keys {
		if hmac.Equal(m.appendChecksum(want[:0], i, []byte(signed))[1:], []byte(checksum)) {
			return kind, nil
		}
	}
	return 0, reject(errChecksum)
}

// reject wraps a reason as the error Parse returns.
func reject(r reason) error {
	return errs.Wrap(errs.KindUnauthenticated, "invalid token", r)
}

// appendChecksum appends '_' and the 6-character checksum of signed under key
// to dst: the first 8 bytes of HMAC-SHA256(key, signed) as a big-endian
// integer, reduced modulo 62^6 and written in base62, most significant digit
// first. The reduction's bias is below 2^-27, far under the 2^-35.7 odds of
// guessing a checksum.
func appendChecksum(dst, key, signed []byte) []byte {
	return appendMAC(dst, hmac.New(sha256.New, key), signed)
}

// appendChecksum is appendChecksum under keys[i], with an HMAC kept for
// reuse.
func (m *Minter) appendChecksum(dst []byte, i int, signed []byte) []byte {
	mac, ok := m.macs[i].Get().(hash.Hash)
	if ok {
		mac.Reset()
	} else {
		mac = hmac.New(sha256.New, m.keys[i])
	}
	dst = appendMAC(dst, mac, signed)
	m.macs[i].Put(mac)
	return dst
}

// appendMAC appends '_' and the checksum of signed under a fresh (or reset)
// HMAC-SHA256 (see appendChecksum).
func appendMAC(dst []byte, mac hash.Hash, signed []byte) []byte {
	mac.Write(signed)
	var sum [sha256.Size]byte
	n := binary.BigEndian.Uint64(mac.Sum(sum[:0])) % (62 * 62 * 62 * 62 * 62 * 62)
	var digits [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		digits[i] = base62[n%62]
		n /= 62
	}
	dst = append(dst, '_')
	return append(dst, digits[:]...)
}

// alphanumeric reports whether s holds only [A-Za-z0-9].
func alphanumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// Hash returns the SHA-256 of a token: the only form of a token that is ever
// stored.
func Hash(token string) [32]byte {
	// Copied to the stack where it fits: a conversion of more than 32 bytes
	// allocates, and Hash runs on every introspection.
	var short [MaxLen]byte
	if len(token) <= len(short) {
		n := copy(short[:], token)
		return sha256.Sum256(short[:n])
	}
	return sha256.Sum256([]byte(token))
}

// HashString returns Hash as 64 lower-case hex characters, for use as an id or
// a subject.
func HashString(token string) string {
	h := Hash(token)
	return hex.EncodeToString(h[:])
}
