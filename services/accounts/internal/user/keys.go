package user

import (
	"encoding/hex"
	"strings"
)

// Reservation aggregates are keyed by the reserved string itself, so that two
// registrations racing for one username append to the same subject and only
// the first append (expected subject sequence 0) wins. The key is one NATS
// subject token, which cannot contain '.', '*', '>' or whitespace; localparts
// may contain '.', '/', '+' and '=', and email addresses '.' and '@'. Lower-case
// hex maps every string to the characters 0-9a-f, one-to-one and reversibly,
// without the case-sensitivity pitfalls of base64 in tools that fold case.

// UsernameKey returns the reservation aggregate id of a username: the
// lower-case hex encoding of its bytes. Pass a validated username.
func UsernameKey(username string) string {
	return hex.EncodeToString([]byte(username))
}

// EmailKey returns the reservation aggregate id of an email address: the
// lower-case hex encoding of the lower-cased address, so that differently
// cased spellings of one address share a reservation.
func EmailKey(email string) string {
	return hex.EncodeToString([]byte(strings.ToLower(email)))
}
