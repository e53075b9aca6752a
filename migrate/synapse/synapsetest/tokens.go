package synapsetest

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"

	"gatehouse.dev/migrate/synapse"
)

// HashPassword hashes password as Synapse does: NFKC-normalised, UTF-8,
// the pepper appended, cut to 72 bytes, bcrypt at cost, written with the
// $2b$ prefix Python's bcrypt uses.
func HashPassword(password, pepper string, cost int) (string, error) {
	b := []byte(normalize(password) + pepper)
	if len(b) > 72 {
		b = b[:72]
	}
	h, err := bcrypt.GenerateFromPassword(b, cost)
	if err != nil {
		return "", fmt.Errorf("synapsetest: bcrypt: %w", err)
	}
	return "$2b$" + strings.TrimPrefix(string(h), "$2a$"), nil
}

// normalize applies Unicode NFKC, as Synapse does to every password.
func normalize(password string) string { return norm.NFKC.String(password) }

// letters are the characters of a token's random part.
const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// randomLetters returns n random ASCII letters.
func randomLetters(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

// randomUpper returns n random upper-case letters: a device ID as Synapse
// generates one.
func randomUpper(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'A' + byte(r.IntN(26))
	}
	return string(b)
}

// SynapseToken returns a token as current Synapse makes one: prefix ("syt"
// for access, "syr" for refresh), the standard unpadded base64 of the
// localpart, 20 random letters and the base62 CRC-32 of all that.
func SynapseToken(r *rand.Rand, prefix, localpart string) string {
	body := prefix + "_" + base64.RawStdEncoding.EncodeToString([]byte(localpart)) + "_" + randomLetters(r, 20)
	return body + "_" + synapse.TokenChecksum(body)
}

// Macaroon returns an access token as Synapse made them before 1.34: a
// pymacaroons v1 binary macaroon (location, identifier, the caveats gen,
// user_id, type and nonce, a 32-byte signature) in URL-safe base64 without
// padding.
func Macaroon(r *rand.Rand, serverName, mxid string) string {
	var b strings.Builder
	packet := func(kv string) {
		// A v1 packet is its total length in 4 hex digits, then "key value\n".
		fmt.Fprintf(&b, "%04x%s\n", 4+len(kv)+1, kv)
	}
	packet("location " + serverName)
	packet("identifier key")
	packet("cid gen = 1")
	packet("cid user_id = " + mxid)
	packet("cid type = access")
	packet("cid nonce = " + randomLetters(r, 16))
	sig := make([]byte, 32)
	for i := range sig {
		sig[i] = byte(r.IntN(256))
	}
	packet("signature " + string(sig))
	return base64.RawURLEncoding.EncodeToString([]byte(b.String()))
}

// crossSigningID returns a hidden device's ID: a key's unpadded base64 (43
// characters).
func crossSigningID(r *rand.Rand) string {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(r.IntN(256))
	}
	return base64.RawStdEncoding.EncodeToString(key)
}
