// Package grant is the authorization grant aggregate: one authorization
// request from the moment the client asks until its code is exchanged. It is
// a pure reducer with pure decisions; the service does the I/O.
package grant

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/pkce"
)

// Status is where a grant stands.
type Status int

// Grant statuses.
const (
	Unknown Status = iota
	Pending
	Approved
	Denied
	Exchanged
)

// State is a grant folded from its events.
type State struct {
	Status  Status
	Request *eventsv1.GrantRequested
	// RequestedAt is when the client asked (prompt=login and max_age
	// compare the person's authentication with it).
	RequestedAt time.Time
	Approval    *eventsv1.GrantApproved
	SessionID   string
	Version     uint64
}

// Fold rebuilds a grant from its history.
func Fold(history []eventlog.Record) State {
	var s State
	for _, rec := range history {
		s.Version = rec.Seq
		switch ev := rec.Event.(type) {
		case *eventsv1.GrantRequested:
			s.Status, s.Request, s.RequestedAt = Pending, ev, rec.OccurredAt()
		case *eventsv1.GrantApproved:
			s.Status, s.Approval = Approved, ev
		case *eventsv1.GrantDenied:
			s.Status = Denied
		case *eventsv1.GrantExchanged:
			s.Status, s.SessionID = Exchanged, ev.GetSessionId()
		}
	}
	return s
}

// CodeHash is the stored form of an authorization code.
func CodeHash(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// Approve decides the user's consent to a pending, unexpired grant.
func Approve(s State, now time.Time, a *eventsv1.GrantApproved) ([]proto.Message, error) {
	switch {
	case s.Status == Unknown:
		return nil, errs.NotFound("This authorization request does not exist.")
	case s.Status != Pending:
		return nil, errs.FailedPrecondition("This authorization request has already been answered.")
	case now.After(s.Request.GetExpiresAt().AsTime()):
		return nil, errs.FailedPrecondition("This authorization request has expired; start again from the application.")
	}
	return []proto.Message{a}, nil
}

// Deny decides the user's refusal of a pending grant.
func Deny(s State) ([]proto.Message, error) {
	switch s.Status {
	case Unknown:
		return nil, errs.NotFound("This authorization request does not exist.")
	case Pending:
		return []proto.Message{&eventsv1.GrantDenied{GrantId: s.Request.GetGrantId()}}, nil
	case Denied:
		return nil, nil
	default:
		return nil, errs.FailedPrecondition("This authorization request has already been answered.")
	}
}

// Exchange is a code exchange as the token endpoint received it.
type Exchange struct {
	Code, ClientID, RedirectURI, Verifier, SessionID string
	Now                                              time.Time
}

// invalidGrant is the answer to every failed exchange: the token service maps
// it to RFC 6749's invalid_grant; the description is safe to show.
func invalidGrant(msg string) error {
	return errs.FailedPrecondition(msg)
}

// Replayed reports that a code was used twice: the session its first use
// started must end.
type Replayed struct{ SessionID string }

// DecideExchange checks a code exchange against the grant. It returns the
// GrantExchanged event, a *Replayed when the code was already used, or an
// invalid-grant error.
func DecideExchange(s State, x Exchange) ([]proto.Message, *Replayed, error) {
	if s.Status == Exchanged {
		if subtle.ConstantTimeCompare([]byte(CodeHash(x.Code)), []byte(s.Approval.GetCodeHash())) == 1 {
			return nil, &Replayed{SessionID: s.SessionID}, nil
		}
	}
	if s.Status != Approved || subtle.ConstantTimeCompare([]byte(CodeHash(x.Code)), []byte(s.Approval.GetCodeHash())) != 1 {
		return nil, nil, invalidGrant("The authorization code is invalid.")
	}
	req := s.Request
	switch {
	case x.Now.After(s.Approval.GetCodeExpiresAt().AsTime()):
		return nil, nil, invalidGrant("The authorization code has expired.")
	case x.ClientID != req.GetClientId():
		return nil, nil, invalidGrant("The authorization code was issued to another client.")
	case x.RedirectURI != req.GetRedirectUri():
		return nil, nil, invalidGrant("redirect_uri does not match the one of the authorization request.")
	case req.GetCodeChallenge() == "" && x.Verifier != "":
		// A verifier without a challenge is a PKCE downgrade attempt (RFC 9700 §4.8).
		return nil, nil, invalidGrant("code_verifier was sent but the authorization request had no code_challenge.")
	case req.GetCodeChallenge() != "" && !pkce.Verify(req.GetCodeChallenge(), x.Verifier):
		return nil, nil, invalidGrant("code_verifier does not match the code_challenge.")
	}
	return []proto.Message{&eventsv1.GrantExchanged{GrantId: req.GetGrantId(), SessionId: x.SessionID}}, nil, nil
}

// Timestamp converts a time for an event.
func Timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// FreshEnough reports whether an authentication at authAt satisfies the
// request's prompt=login and max_age (OpenID Connect Core §3.1.2.1): it
// happened after the request, or, with max_age, within max_age seconds of
// now (max_age=0 is prompt=login).
func (s State) FreshEnough(authAt, now time.Time) bool {
	loginAsked := false
	for _, p := range strings.Fields(s.Request.GetPrompt()) {
		loginAsked = loginAsked || p == "login"
	}
	if !loginAsked && !(s.Request != nil && s.Request.MaxAge != nil) {
		return true
	}
	if !authAt.Before(s.RequestedAt.Truncate(time.Second)) {
		return true
	}
	if loginAsked || !(s.Request != nil && s.Request.MaxAge != nil) || s.Request.GetMaxAge() == 0 {
		return false
	}
	return now.Sub(authAt) <= time.Duration(s.Request.GetMaxAge())*time.Second
}
