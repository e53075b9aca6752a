// Package pkce checks Proof Key for Code Exchange parameters (RFC 7636).
//
// Only the S256 method is accepted: "plain" gives no protection against an
// attacker who can read the authorization request, and accepting it invites
// downgrade attacks (RFC 9700 §2.1.1, §4.8).
package pkce

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"

	"gatehouse.dev/platform/errs"
)

// MethodS256 is the only code_challenge_method accepted.
const MethodS256 = "S256"

// Lengths from RFC 7636 §4.1 and §4.2.
const (
	// ChallengeLen is the length of an S256 challenge: 32 bytes in unpadded base64url.
	ChallengeLen = 43
	// MinVerifierLen is the shortest code_verifier allowed.
	MinVerifierLen = 43
	// MaxVerifierLen is the longest code_verifier allowed.
	MaxVerifierLen = 128
)

// ValidChallenge checks the code_challenge_method and code_challenge of an
// authorization request: the method must be S256 and the challenge 43
// base64url characters that decode to 32 bytes. Failures are KindInvalid
// errors naming the field at fault.
func ValidChallenge(method, challenge string) error {
	switch method {
	case MethodS256:
	case "plain":
		return errs.InvalidField("code_challenge_method", `code_challenge_method "plain" is not supported; use "S256"`)
	case "":
		return errs.InvalidField("code_challenge_method", `code_challenge_method is required and must be "S256"`)
	default:
		return errs.InvalidField("code_challenge_method", `code_challenge_method must be "S256"`)
	}
	if len(challenge) != ChallengeLen {
		return errs.InvalidField("code_challenge", "code_challenge must be 43 characters of base64url")
	}
	if sum, err := base64.RawURLEncoding.Strict().DecodeString(challenge); err != nil || len(sum) != sha256.Size {
		return errs.InvalidField("code_challenge", "code_challenge is not the base64url form of a SHA-256 hash")
	}
	return nil
}

// ValidVerifier checks a code_verifier: 43 to 128 characters from
// [A-Za-z0-9-._~]. A failure is a KindInvalid error naming the field.
func ValidVerifier(v string) error {
	if len(v) < MinVerifierLen || len(v) > MaxVerifierLen {
		return errs.InvalidField("code_verifier", "code_verifier must be 43 to 128 characters")
	}
	for i := 0; i < len(v); i++ {
		if !unreserved(v[i]) {
			return errs.InvalidField("code_verifier", "code_verifier may only contain A-Z, a-z, 0-9, '-', '.', '_' and '~'")
		}
	}
	return nil
}

// unreserved reports whether c is an RFC 3986 unreserved character.
func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// Verify reports whether verifier is well formed and its S256 transform,
// BASE64URL(SHA256(verifier)), equals challenge, compared in constant time.
func Verify(challenge, verifier string) bool {
	if ValidVerifier(verifier) != nil {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}
