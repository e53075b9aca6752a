package synapse

import (
	"maps"
	"slices"
	"time"
)

// SkipReason says why a row read from Synapse is not imported. The values
// are stable: reports and tests name them.
type SkipReason string

// Reasons rows are skipped.
const (
	// SkipAppservice: an application service's user, or a row of one. Their
	// application service keeps authenticating them with its own token.
	SkipAppservice SkipReason = "appservice-user"
	// SkipGuest: a guest, or a row of one. Gatehouse has no guest accounts
	// (and Synapse never stored guests' access tokens).
	SkipGuest SkipReason = "guest"
	// SkipDeactivated: a session, email or device of a deactivated user
	// (Synapse deletes them on deactivation, so these are leftovers).
	SkipDeactivated SkipReason = "deactivated-user"
	// SkipWrongServer: an MXID not on the homeserver's server name.
	SkipWrongServer SkipReason = "wrong-server"
	// SkipColonLocalpart: an MXID whose localpart holds ':' (application
	// services registered such users).
	SkipColonLocalpart SkipReason = "colon-in-localpart"
	// SkipMalformedMXID: a user ID without '@' or ':'.
	SkipMalformedMXID SkipReason = "malformed-mxid"
	// SkipNoUser: an orphan row naming a user that does not exist.
	SkipNoUser SkipReason = "no-such-user"
	// SkipNoDevice: a token naming a device that no longer exists.
	SkipNoDevice SkipReason = "no-such-device"
	// SkipHiddenDevice: a cross-signing key's pseudo-device, or a token on one.
	SkipHiddenDevice SkipReason = "hidden-device"
	// SkipGuestDevice: a device called guest_device.
	SkipGuestDevice SkipReason = "guest-device"
	// SkipPuppet: an admin's token impersonating a user.
	SkipPuppet SkipReason = "puppet-token"
	// SkipExpired: a token past its expiry, or a registration token past its
	// expiry time.
	SkipExpired SkipReason = "expired"
	// SkipObsoleteRefresh: a refresh pair whose successor's access token was
	// used: the client has moved on and Synapse would refuse it.
	SkipObsoleteRefresh SkipReason = "obsolete-refresh-pair"
	// SkipNoAccessToken: a refresh token no access token carries.
	SkipNoAccessToken SkipReason = "refresh-without-access-token"
	// SkipNotEmail: a third-party identifier other than an email (msisdn).
	SkipNotEmail SkipReason = "not-email"
	// SkipOAuthDelegated: a link left by Synapse's removed MSC3861 mode.
	SkipOAuthDelegated SkipReason = "oauth-delegated"
	// SkipUsedUp: a registration token with no uses left.
	SkipUsedUp SkipReason = "used-up"
)

// MaxExamples is how many examples a Tally keeps.
const MaxExamples = 5

// Tally counts occurrences of something and keeps the first few examples:
// MXIDs and row ids, never a token or a password hash.
type Tally struct {
	Count    int64    `json:"count"`
	Examples []string `json:"examples,omitempty"`
}

// add counts one more occurrence with its example.
func (t *Tally) add(example string) {
	t.Count++
	if len(t.Examples) < MaxExamples && example != "" {
		t.Examples = append(t.Examples, example)
	}
}

// Stats describe one stream's pass over its table.
type Stats struct {
	// Stream names the stream (users, emails, devices, access_tokens,
	// refresh_tokens, external_ids, registration_tokens).
	Stream string `json:"stream"`
	// Read rows were read, Emitted were handed on; the difference was skipped.
	Read    int64 `json:"read"`
	Emitted int64 `json:"emitted"`
	// Skipped counts the rows skipped, by reason.
	Skipped map[SkipReason]*Tally `json:"skipped,omitempty"`
	// Formats counts the emitted tokens by format (token streams only).
	Formats map[string]int64 `json:"formats,omitempty"`
	// Notes count values cleaned up in emitted rows (an unparsable IP
	// address dropped, …).
	Notes map[string]*Tally `json:"notes,omitempty"`
	// Elapsed is how long the pass took.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// newStats returns empty stats of a stream.
func newStats(stream string) Stats {
	return Stats{Stream: stream, Skipped: map[SkipReason]*Tally{}, Notes: map[string]*Tally{}}
}

// skip counts a skipped row.
func (s *Stats) skip(r SkipReason, example string) {
	t := s.Skipped[r]
	if t == nil {
		t = &Tally{}
		s.Skipped[r] = t
	}
	t.add(example)
}

// note counts a cleaned-up value.
func (s *Stats) note(what, example string) {
	t := s.Notes[what]
	if t == nil {
		t = &Tally{}
		s.Notes[what] = t
	}
	t.add(example)
}

// format counts an emitted token's format.
func (s *Stats) format(f TokenFormat) {
	if s.Formats == nil {
		s.Formats = map[string]int64{}
	}
	s.Formats[f.String()]++
}

// SkippedCount returns how many rows were skipped for reason r.
func (s Stats) SkippedCount(r SkipReason) int64 {
	if t := s.Skipped[r]; t != nil {
		return t.Count
	}
	return 0
}

// Reasons returns the skip reasons that occurred, sorted.
func (s Stats) Reasons() []SkipReason {
	return slices.Sorted(maps.Keys(s.Skipped))
}

// RowsPerSecond is the pass's read rate.
func (s Stats) RowsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Read) / s.Elapsed.Seconds()
}
