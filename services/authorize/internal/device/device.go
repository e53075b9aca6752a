// Package device is the device authorization grant aggregate (RFC 8628): one
// device asking for access, from its request until its code yields tokens.
// Like the other aggregates it is a pure reducer with pure decisions; the
// service does the I/O. It also makes and reads device and user codes, and
// keeps the per-replica poll pacing that answers slow_down.
package device

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// The grant's parameters (RFC 8628 §3.2; the values matrix-authentication-service uses).
const (
	// GrantType is the grant_type of the token request.
	GrantType = "urn:ietf:params:oauth:grant-type:device_code"
	// Lifetime is how long a device code and its user code are valid (expires_in).
	Lifetime = 20 * time.Minute
	// Interval is the polling interval the device starts with.
	Interval = 5 * time.Second
	// SlowDownStep is what every slow_down adds to the interval (RFC 8628 §3.5).
	SlowDownStep = 5 * time.Second
	// DeviceCodeLength is the length of a device code: 40 characters from
	// [A-Za-z0-9], about 238 bits.
	DeviceCodeLength = 40
	// UserCodeAlphabet has no vowels (no words), no digits and none of the
	// letters easily confused with digits or each other (no O/0, I/1, U/V...):
	// 20 letters that read and type without ambiguity.
	UserCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	// UserCodeLength is the number of letters of a user code (20^8 ≈ 2^34.6).
	UserCodeLength = 8
)

// Status is where a device grant stands.
type Status int

// Device grant statuses. Expiry is not a status of the history: it depends
// on the clock, see State.Expired.
const (
	Unknown Status = iota
	Pending
	Approved
	Denied
	Used
)

// State is a device grant folded from its events.
type State struct {
	Status    Status
	Request   *eventsv1.DeviceAuthorizationRequested
	Approval  *eventsv1.DeviceApproved
	SessionID string
	Version   uint64
}

// Fold rebuilds a device grant from its history.
func Fold(history []eventlog.Record) State {
	var s State
	for _, rec := range history {
		s.Version = rec.Seq
		switch ev := rec.Event.(type) {
		case *eventsv1.DeviceAuthorizationRequested:
			s.Status, s.Request = Pending, ev
		case *eventsv1.DeviceApproved:
			s.Status, s.Approval = Approved, ev
		case *eventsv1.DeviceDenied:
			s.Status = Denied
		case *eventsv1.DeviceTokenIssued:
			s.Status, s.SessionID = Used, ev.GetSessionId()
		}
	}
	return s
}

// Expired reports whether the device code can no longer be approved or used.
func (s State) Expired(now time.Time) bool {
	return s.Request != nil && !now.Before(s.Request.GetExpiresAt().AsTime())
}

// Approve decides the user's approval of a pending, unexpired device grant.
// a is the approval, its scope already decided by the caller.
func Approve(s State, now time.Time, a *eventsv1.DeviceApproved) ([]proto.Message, error) {
	switch {
	case s.Status == Unknown:
		return nil, errs.NotFound("This code is not valid. Check it and try again.")
	case s.Status != Pending:
		return nil, errs.FailedPrecondition("This code has already been used.")
	case s.Expired(now):
		return nil, errs.FailedPrecondition("This code has expired; start again on your device.")
	}
	return []proto.Message{a}, nil
}

// Deny decides the user's refusal of a pending device grant. Refusing twice
// changes nothing.
func Deny(s State, now time.Time) ([]proto.Message, error) {
	switch {
	case s.Status == Unknown:
		return nil, errs.NotFound("This code is not valid. Check it and try again.")
	case s.Status == Denied:
		return nil, nil
	case s.Status != Pending:
		return nil, errs.FailedPrecondition("This code has already been used.")
	case s.Expired(now):
		return nil, errs.FailedPrecondition("This code has expired; start again on your device.")
	}
	return []proto.Message{&eventsv1.DeviceDenied{DeviceGrantId: s.Request.GetDeviceGrantId()}}, nil
}

// Outcome is the answer to one poll.
type Outcome int

// Poll outcomes. SlowDown is not decided here: it is a Pending poll that came
// too early (see Pacer).
const (
	OutcomePending Outcome = iota + 1
	OutcomeDenied
	OutcomeExpired
	OutcomeUsed
	OutcomeApproved
)

// Poll is a device's token request as the token endpoint received it.
type Poll struct {
	// ClientID is the authenticated client.
	ClientID string
	// SessionID is the session the token service starts when approved.
	SessionID string
	Now       time.Time
}

// DecidePoll answers a poll. Approved, it returns the DeviceTokenIssued
// event, so that appended with the grant's version the code yields tokens
// once. A grant of another client is an invalid-grant error that says
// nothing about the grant.
func DecidePoll(s State, p Poll) ([]proto.Message, Outcome, error) {
	switch {
	case s.Status == Unknown:
		return nil, 0, errs.FailedPrecondition("The device code is invalid.")
	case s.Request.GetClientId() != p.ClientID:
		return nil, 0, errs.FailedPrecondition("The device code is invalid.")
	case s.Status == Used:
		return nil, OutcomeUsed, nil
	case s.Status == Denied:
		return nil, OutcomeDenied, nil
	case s.Expired(p.Now):
		return nil, OutcomeExpired, nil
	case s.Status == Pending:
		return nil, OutcomePending, nil
	}
	return []proto.Message{&eventsv1.DeviceTokenIssued{DeviceGrantId: s.Request.GetDeviceGrantId(), SessionId: p.SessionID}}, OutcomeApproved, nil
}

// Hash is the stored form of a device code or a normalised user code.
func Hash(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// NewDeviceCode returns a fresh device code.
func NewDeviceCode() string { return ids.Token(DeviceCodeLength) }

// NewUserCode returns a fresh user code, normalised (no dash), drawn
// uniformly from UserCodeAlphabet with crypto/rand.
func NewUserCode() string {
	// 240 is the largest multiple of 20 that fits in a byte: rejecting bytes
	// at or above it keeps every letter equally likely.
	const limit = 256 - 256%len(UserCodeAlphabet)
	out := make([]byte, 0, UserCodeLength)
	var buf [UserCodeLength * 2]byte
	for len(out) < UserCodeLength {
		rand.Read(buf[:])
		for _, b := range buf {
			if int(b) < limit && len(out) < UserCodeLength {
				out = append(out, UserCodeAlphabet[int(b)%len(UserCodeAlphabet)])
			}
		}
	}
	return string(out)
}

// FormatUserCode shows a normalised user code as XXXX-XXXX.
func FormatUserCode(code string) string {
	if len(code) != UserCodeLength {
		return code
	}
	return code[:UserCodeLength/2] + "-" + code[UserCodeLength/2:]
}

// NormalizeUserCode reads a user code as a person typed it: case, spaces
// and dashes do not matter. It reports false for anything that cannot be a
// user code, so nothing else is looked up.
func NormalizeUserCode(typed string) (string, bool) {
	if len(typed) > 64 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case r < 128 && strings.IndexByte(UserCodeAlphabet, byte(r)) >= 0:
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != UserCodeLength {
		return "", false
	}
	return b.String(), true
}
