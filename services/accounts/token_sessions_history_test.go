package accounts

import (
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// tokenSessionsHistory is what the token service appends for the sessions
// of two users and a client: OAuth 2.0 sessions rotated, renamed and ended,
// a compat session, an imported one, a personal token and a client's own
// session.
func tokenSessionsHistory() []eventlog.Event {
	alice, bob := ids.New(), ids.New()
	s1, s2, s3, s4, s5, s6 := ids.New(), ids.New(), ids.New(), ids.New(), ids.New(), ids.New()
	s7, s8, s9 := ids.New(), ids.New(), ids.New()
	ev := func(id string, p proto.Message) eventlog.Event {
		return eventlog.Event{Aggregate: eventlog.Ref{Type: eventsv1.TokenSession.Type, ID: id}, Actor: "system:token", Payload: p}
	}
	started := func(id, kind, client, user string) *eventsv1.SessionStarted {
		return &eventsv1.SessionStarted{SessionId: id, Kind: kind, ClientId: client, UserId: user,
			Tokens: &eventsv1.TokensIssued{SessionId: id, AccessHash: ids.New(), RefreshHash: ids.New()}}
	}
	return []eventlog.Event{
		ev(s1, started(s1, "oauth", "app", alice)),
		ev(s2, started(s2, "compat", "legacy", alice)),
		ev(s1, &eventsv1.TokensIssued{SessionId: s1, AccessHash: ids.New(), RefreshHash: ids.New()}),
		ev(s1, &eventsv1.SessionRenamed{SessionId: s1, DeviceDisplayName: "phone"}),
		ev(s3, started(s3, "oauth", "other", bob)),
		ev(s4, started(s4, "client_credentials", "app", "")),
		ev(s5, started(s5, "personal", "", bob)),
		ev(s6, &eventsv1.SessionImported{Source: "synapse", Session: &eventsv1.SessionStarted{
			SessionId: s6, Kind: "compat", ClientId: "legacy", UserId: bob, DeviceId: "ABC"}}),
		ev(s1, &eventsv1.SessionEnded{SessionId: s1, Reason: "revoked"}),
		ev(s6, &eventsv1.SessionEnded{SessionId: s6, Reason: "user_deactivated"}),
		ev(s4, &eventsv1.SessionEnded{SessionId: s4, Reason: "admin"}),
		// What a compacted TOKEN stream keeps of sessions: their last event.
		ev(s7, &eventsv1.TokensIssued{SessionId: s7, AccessHash: ids.New(), State: &eventsv1.SessionSnapshot{Session: started(s7, "oauth", "app", alice)}}),
		ev(s8, &eventsv1.SessionSnapshotted{SessionId: s8, State: &eventsv1.SessionSnapshot{Session: started(s8, "oauth", "other", bob)}}),
		ev(s9, &eventsv1.SessionSnapshotted{SessionId: s9, State: &eventsv1.SessionSnapshot{Session: started(s9, "oauth", "app", bob), Ended: true}}),
		ev(s8, &eventsv1.SessionEnded{SessionId: s8, Reason: "revoked", State: &eventsv1.SessionSnapshot{Session: started(s8, "oauth", "other", bob), Ended: true}}),
	}
}
