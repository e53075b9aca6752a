package eventsv1

import "google.golang.org/protobuf/proto"

// SessionOf reads what one event of a token session says of the session: its
// id, how it started and whether it has ended; ok is false for any other
// message. Every event after a session's start carries the session's whole
// state (SessionSnapshot) and a compacted TOKEN stream keeps only the last
// one, so a follower learns the start from whichever event it gets.
func SessionOf(m proto.Message) (id string, start *SessionStarted, ended, ok bool) {
	switch ev := m.(type) {
	case *SessionStarted:
		return ev.GetSessionId(), ev, false, true
	case *SessionImported:
		return ev.GetSession().GetSessionId(), ev.GetSession(), false, true
	case *TokensIssued:
		return ev.GetSessionId(), ev.GetState().GetSession(), false, true
	case *SessionRenamed:
		return ev.GetSessionId(), ev.GetState().GetSession(), false, true
	case *SessionEnded:
		return ev.GetSessionId(), ev.GetState().GetSession(), true, true
	case *SessionSnapshotted:
		return ev.GetSessionId(), ev.GetState().GetSession(), ev.GetState().GetEnded(), true
	}
	return "", nil, false, false
}

// SnapshotOf is the session state an event carries: nil for a session's
// start, an import, and any other message.
func SnapshotOf(m proto.Message) *SessionSnapshot {
	switch ev := m.(type) {
	case *SessionSnapshotted:
		return ev.GetState()
	case *TokensIssued:
		return ev.GetState()
	case *SessionRenamed:
		return ev.GetState()
	case *SessionEnded:
		return ev.GetState()
	}
	return nil
}
