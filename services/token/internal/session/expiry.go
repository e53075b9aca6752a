package session

import (
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Sessions that nothing can use any more. A session of a client acting for
// itself (client_credentials), or a person's OAuth session given no refresh
// token, gets no tokens after its first: once its access token has expired,
// nothing of it can ever be used again. Left alone it would stay live for
// ever, a subject of the TOKEN stream and rows of every read model for each
// token a client ever asked for; so it is ended (Expire), and the end then
// expires like any other (Config.EndedSessionRetention). Compat sessions
// (their tokens may never expire, or are refreshed) and personal sessions
// (regenerated with a new token) are never ended this way.

// ExpiredReason is the end reason of a session whose tokens have all expired.
const ExpiredReason = "expired"

// mortalKinds are the kinds of session that are given no tokens after
// their first unless they hold a refresh token.
var mortalKinds = map[string]bool{"oauth": true, "client_credentials": true}

// UsableUntil is when the last token of a session that can be given no more
// expires, from its start: its access token's expiry. ok is false for a
// session that can go on: one that holds a refresh token, or an access
// token that never expires, or whose kind may be given new tokens otherwise
// (compat, personal).
func UsableUntil(start *eventsv1.SessionStarted) (at time.Time, ok bool) {
	t := start.GetTokens()
	if t.GetRefreshHash() != "" {
		return time.Time{}, false
	}
	return usableUntil(start.GetKind(), []*eventsv1.SessionToken{{Hash: t.GetAccessHash(), ExpiresAt: t.GetAccessExpiresAt()}})
}

// SnapshotUsableUntil is UsableUntil from a session's snapshot: its latest
// live access token's expiry.
func SnapshotUsableUntil(snap *eventsv1.SessionSnapshot) (at time.Time, ok bool) {
	var live []*eventsv1.SessionToken
	for _, t := range snap.GetTokens() {
		if t.GetConsumedAt() == nil {
			live = append(live, t)
		}
	}
	return usableUntil(snap.GetSession().GetKind(), live)
}

// usableUntil is UsableUntil of a session of kind holding the live tokens.
func usableUntil(kind string, live []*eventsv1.SessionToken) (at time.Time, ok bool) {
	if !mortalKinds[kind] || len(live) == 0 {
		return time.Time{}, false
	}
	for _, t := range live {
		if t.GetRefresh() || t.GetExpiresAt() == nil {
			return time.Time{}, false
		}
		if e := t.GetExpiresAt().AsTime(); e.After(at) {
			at = e
		}
	}
	return at, true
}

// Expire decides ending a session that nothing can use any more at now:
// none when it has ended, can go on, or still holds a token that has not
// expired.
func Expire(s State, now time.Time) []proto.Message {
	if !s.Exists() || s.Ended {
		return nil
	}
	live := make([]*eventsv1.SessionToken, 0, len(s.live))
	for _, t := range s.live {
		live = append(live, t)
	}
	if until, ok := usableUntil(s.Started.GetKind(), live); !ok || until.After(now) {
		return nil
	}
	return []proto.Message{&eventsv1.SessionEnded{SessionId: s.Started.GetSessionId(), Reason: ExpiredReason}}
}

// InactiveReason is the end reason of a session unused for longer than the
// deployment allows (oauth.inactive_session_expiry).
const InactiveReason = "inactive"

// personKinds are the kinds of a person's sessions on a device: those ended
// when unused for too long. A client's own sessions end with their token
// (Expire); personal sessions are tokens a person made for a program,
// with an expiry of their own.
var personKinds = map[string]bool{"oauth": true, "compat": true}

// LastActive is the newest of when the session started, the last use an
// import brought and the last use its state carries.
func (s State) LastActive() time.Time {
	at := s.createdAt
	if s.lastActive.After(at) {
		at = s.lastActive
	}
	if used, _ := s.LastUse(); used.After(at) {
		at = used
	}
	return at
}

// ExpireInactive decides ending a person's session last active before cut
// (its state's last use raised to all that is known of it first): none when
// it has ended, was active since, or is not a person's session on a device.
func ExpireInactive(s State, cut time.Time) []proto.Message {
	if !s.Exists() || s.Ended || !personKinds[s.Started.GetKind()] || !s.LastActive().Before(cut) {
		return nil
	}
	return []proto.Message{&eventsv1.SessionEnded{SessionId: s.Started.GetSessionId(), Reason: InactiveReason}}
}
