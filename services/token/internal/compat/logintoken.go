package compat

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// LoginTokenTTL is how long a login token can be exchanged (MAS: 30 s).
const LoginTokenTTL = 30 * time.Second

// LoginTokenLen is the length of a login token: [A-Za-z0-9], about 190 bits.
const LoginTokenLen = 32

// LoginToken is a login token folded from its events.
type LoginToken struct {
	Issued *eventsv1.LoginTokenIssued
	// UsedBy is the session its use started; empty while unused.
	UsedBy string
}

// FoldLoginToken rebuilds a login token from its history.
func FoldLoginToken(history []eventlog.Record) LoginToken {
	var t LoginToken
	for _, rec := range history {
		switch ev := rec.Event.(type) {
		case *eventsv1.LoginTokenIssued:
			t.Issued = ev
		case *eventsv1.LoginTokenUsed:
			t.UsedBy = ev.GetSessionId()
		}
	}
	return t
}

// IssueLoginToken decides a new login token for a user.
func IssueLoginToken(userID, username string, admin bool, now time.Time) *eventsv1.LoginTokenIssued {
	return &eventsv1.LoginTokenIssued{UserId: userID, Username: username, Admin: admin, ExpiresAt: timestamppb.New(now.Add(LoginTokenTTL))}
}

// UseLoginToken decides the one exchange of a login token for the session
// sessionID. Unknown, used and expired tokens are all 403 M_FORBIDDEN.
func UseLoginToken(t LoginToken, sessionID string, now time.Time) (*eventsv1.LoginTokenUsed, *errs.Error) {
	switch {
	case t.Issued == nil, t.UsedBy != "":
		return nil, Forbidden("Invalid login token.")
	case !now.Before(t.Issued.GetExpiresAt().AsTime()):
		return nil, Forbidden("The login token has expired.")
	}
	return &eventsv1.LoginTokenUsed{SessionId: sessionID}, nil
}

// WellFormedLoginToken reports whether s could be a login token, so that
// anything else is refused before any lookup.
func WellFormedLoginToken(s string) bool {
	if len(s) != LoginTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
