package user

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Reservation aggregates are keyed by the reserved string, so that two
// registrations racing for one username (or address) append to the same
// subject and only the first append (expected subject sequence 0) wins. The
// key is one NATS subject token, which cannot contain '.', '*', '>' or
// whitespace.
//
// Usernames are public in Matrix (the MXID is shown to everyone the user
// talks to, and UsernameReserved names it anyway), so their key is the
// lower-case hex of the username: one-to-one, reversible on purpose, and
// readable by an operator.
//
// Email addresses are not public: their key is a keyed hash, "h" followed by
// the lower-case hex of HMAC-SHA-256 under the service's claim key (kept
// sealed in the stream, accounts.keys.claims) of the lower-cased address.
// Whoever reads the stream's subjects without the key learns nothing of the
// addresses. The "h" keeps these keys apart from the hex keys of versions
// before keyed claims (LegacyEmailKey), which are all hex digits.

// UsernameKey returns the reservation aggregate id of a username: the
// lower-case hex encoding of its bytes. Pass a validated username.
func UsernameKey(username string) string {
	return hex.EncodeToString([]byte(username))
}

// EmailKey returns the reservation aggregate id of an email address under
// the claim key: differently cased spellings of one address share it.
func EmailKey(claimKey []byte, email string) string {
	mac := hmac.New(sha256.New, claimKey)
	mac.Write([]byte(strings.ToLower(email)))
	return emailKeyPrefix + hex.EncodeToString(mac.Sum(nil))
}

// emailKeyPrefix starts every keyed email reservation id.
const emailKeyPrefix = "h"

// LegacyEmailKey returns the reservation aggregate id versions before keyed
// claims gave an address: the hex of the lower-cased address.
func LegacyEmailKey(email string) string {
	return hex.EncodeToString([]byte(strings.ToLower(email)))
}

// IsLegacyEmailKey reports whether a reservation id is a legacy one.
func IsLegacyEmailKey(id string) bool {
	return id != "" && !strings.HasPrefix(id, emailKeyPrefix)
}
