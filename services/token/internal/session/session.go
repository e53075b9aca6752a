// Package session is the session aggregate of the token service: a session
// starts with its first tokens, rotates its refresh token on every use, and
// ends. A pure reducer with pure decisions; the service does the I/O.
package session

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// State is a session folded from its events.
type State struct {
	Started *eventsv1.SessionStarted
	Ended   bool
	// DisplayName is the device's display name.
	DisplayName string
	// CurrentRefresh and CurrentAccess are the hashes of the live token pair.
	CurrentRefresh, CurrentAccess string
	// consumed maps each rotated-out refresh hash to the event that replaced it.
	consumed map[string]consumption
	// imported maps the refresh tokens an imported session came with (by
	// hash) to the access token issued with each: any of them refreshes
	// once, like CurrentRefresh.
	imported map[string]string
	Version  uint64
}

// consumption is when a refresh token was rotated out.
type consumption struct {
	seq uint64
	at  time.Time
}

// Fold rebuilds a session from its history.
func Fold(history []eventlog.Record) State {
	s := State{consumed: map[string]consumption{}}
	for _, rec := range history {
		s.Version = rec.Seq
		switch ev := rec.Event.(type) {
		case *eventsv1.SessionStarted:
			s.Started = ev
			s.DisplayName = ev.GetDeviceDisplayName()
			s.CurrentRefresh, s.CurrentAccess = ev.GetTokens().GetRefreshHash(), ev.GetTokens().GetAccessHash()
		case *eventsv1.SessionImported:
			s.Started = ev.GetSession()
			s.DisplayName = ev.GetSession().GetDeviceDisplayName()
			s.imported = map[string]string{}
			for _, t := range ev.GetTokens() {
				if t.GetRefreshHash() != "" {
					s.imported[t.GetRefreshHash()] = t.GetAccessHash()
				}
			}
		case *eventsv1.TokensIssued:
			delete(s.imported, ev.GetReplacesRefreshHash())
			if ev.GetReplacesRefreshHash() != "" {
				s.consumed[ev.GetReplacesRefreshHash()] = consumption{seq: rec.Seq, at: rec.OccurredAt()}
			}
			s.CurrentRefresh, s.CurrentAccess = ev.GetRefreshHash(), ev.GetAccessHash()
		case *eventsv1.SessionRenamed:
			s.DisplayName = ev.GetDeviceDisplayName()
		case *eventsv1.SessionEnded:
			s.Ended = true
		}
	}
	return s
}

// Exists reports whether the session has started.
func (s State) Exists() bool { return s.Started != nil }

// Rotation asks to exchange a refresh token for a new pair.
type Rotation struct {
	// ClientID is the authenticated client.
	ClientID string
	// PresentedHash is the hash of the refresh token presented.
	PresentedHash string
	// FirstSeen is the session version when this request first read it: a
	// token consumed after that was consumed by a concurrent request.
	FirstSeen uint64
	// Next is the new pair.
	Next *eventsv1.TokensIssued
	// Now is the time of the request.
	Now time.Time
	// Grace is how long after a rotation a second use of the rotated-out token
	// still counts as a concurrent request (two tabs refreshing at once) rather
	// than a replay.
	Grace time.Duration
}

// Outcome says what a refresh decided.
type Outcome int

// Refresh outcomes.
const (
	// Rotated: the new pair is issued.
	Rotated Outcome = iota + 1
	// Reused: a consumed refresh token came back; the session ends (MSC2964).
	Reused
	// LostRace: a concurrent refresh with the same token won; nothing changes.
	LostRace
)

func invalidGrant(msg string) error { return errs.FailedPrecondition(msg) }

// Refresh decides a refresh-token rotation.
func Refresh(s State, r Rotation) ([]proto.Message, Outcome, error) {
	switch {
	case !s.Exists():
		return nil, 0, invalidGrant("The refresh token is invalid.")
	case s.Started.GetClientId() != r.ClientID:
		return nil, 0, invalidGrant("The refresh token was issued to another client.")
	case s.Ended:
		return nil, 0, invalidGrant("The session has ended.")
	}
	if r.PresentedHash == s.CurrentRefresh && r.PresentedHash != "" {
		next := proto.Clone(r.Next).(*eventsv1.TokensIssued)
		next.SessionId = s.Started.GetSessionId()
		next.ReplacesRefreshHash = s.CurrentRefresh
		next.RevokesAccessHash = s.CurrentAccess
		return []proto.Message{next}, Rotated, nil
	}
	if access, ok := s.imported[r.PresentedHash]; ok && r.PresentedHash != "" {
		next := proto.Clone(r.Next).(*eventsv1.TokensIssued)
		next.SessionId = s.Started.GetSessionId()
		next.ReplacesRefreshHash = r.PresentedHash
		next.RevokesAccessHash = access
		return []proto.Message{next}, Rotated, nil
	}
	if c, ok := s.consumed[r.PresentedHash]; ok {
		if c.seq > r.FirstSeen || r.Now.Sub(c.at) < r.Grace {
			return nil, LostRace, invalidGrant("The refresh token was just used by a concurrent request.")
		}
		return []proto.Message{&eventsv1.SessionEnded{SessionId: s.Started.GetSessionId(), Reason: "refresh_token_reused"}},
			Reused, invalidGrant("The refresh token has already been used; the session has been ended.")
	}
	return nil, 0, invalidGrant("The refresh token is invalid.")
}

// End decides ending a session; ending an ended session changes nothing.
func End(s State, reason string) ([]proto.Message, error) {
	if !s.Exists() {
		return nil, errs.NotFound("No such session.")
	}
	if s.Ended {
		return nil, nil
	}
	return []proto.Message{&eventsv1.SessionEnded{SessionId: s.Started.GetSessionId(), Reason: reason}}, nil
}

// Expiry is when an access token issued now expires.
func Expiry(now time.Time, ttl time.Duration) time.Time { return now.Add(ttl).Truncate(time.Second) }

// MaxDisplayName bounds a device's display name, in characters.
const MaxDisplayName = 100

// Rename decides giving a live session's device a display name. owner, when
// set, must be the session's user: otherwise the session is reported missing.
func Rename(s State, owner, name string) ([]proto.Message, error) {
	switch {
	case !s.Exists(), owner != "" && s.Started.GetUserId() != owner:
		return nil, errs.NotFound("No such session.")
	case s.Ended:
		return nil, errs.FailedPrecondition("This session has ended.")
	case utf8.RuneCountInString(name) > MaxDisplayName:
		return nil, errs.InvalidField("device_display_name", fmt.Sprintf("A device name has at most %d characters.", MaxDisplayName))
	case strings.IndexFunc(name, unicode.IsControl) >= 0 || !utf8.ValidString(name):
		return nil, errs.InvalidField("device_display_name", "A device name cannot contain control characters.")
	case name == s.DisplayName:
		return nil, nil
	}
	return []proto.Message{&eventsv1.SessionRenamed{SessionId: s.Started.GetSessionId(), DeviceDisplayName: name}}, nil
}
