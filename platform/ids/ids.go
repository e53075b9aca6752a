// Package ids makes the identifiers and random tokens of Gatehouse.
//
// Identifiers are ULIDs in their canonical form: 26 upper-case Crockford
// base32 characters, a 48-bit millisecond timestamp followed by 80 random
// bits from crypto/rand. They sort by creation time to the millisecond;
// within one millisecond their order is random, which is fine because events
// are ordered by their stream, never by their id. Nothing here keeps state
// between calls, so there is no monotonic reader to share or lock.
package ids

import (
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// tokenAlphabet is the alphabet of Token: 62 characters.
const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// New returns a new ULID in canonical upper-case form.
func New() string {
	// crypto/rand.Reader never fails (Go 1.24+), so neither does ulid.New.
	return ulid.MustNew(ulid.Timestamp(time.Now()), rand.Reader).String()
}

// Derive returns a ULID that is a function of its arguments: the timestamp
// of t and, as the random part, the first 80 bits of the SHA-256 of parts.
// For ids that the same facts must always give again: an importer's, so
// that every run chooses the same, and a read model's, so that a rebuild
// keeps them (the parts name what the id is for; they must not be secrets).
func Derive(t time.Time, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	var id ulid.ULID
	if t.Before(time.UnixMilli(0)) {
		t = time.UnixMilli(0)
	}
	if err := id.SetTime(ulid.Timestamp(t)); err != nil {
		_ = id.SetTime(ulid.MaxTime())
	}
	copy(id[6:], sum[:10])
	return id.String()
}

// Valid reports whether s is a ULID in the canonical upper-case form New returns.
func Valid(s string) bool {
	if len(s) != ulid.EncodedSize {
		return false
	}
	id, err := ulid.ParseStrict(s)
	return err == nil && id.String() == s
}

// Token returns n random characters from [A-Za-z0-9], drawn from crypto/rand
// without modulo bias: each carries log2(62) ≈ 5.95 bits of entropy. It
// returns "" for n <= 0.
func Token(n int) string {
	if n <= 0 {
		return ""
	}
	// 248 is the largest multiple of 62 that fits in a byte; bytes at or above
	// it are rejected so every character is equally likely.
	const limit = 256 - 256%len(tokenAlphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		rand.Read(buf)
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, tokenAlphabet[int(b)%len(tokenAlphabet)])
			if len(out) == n {
				break
			}
		}
	}
	return string(out)
}
