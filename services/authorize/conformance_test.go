package authorize

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventcheck"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/projection/conformance"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/migrations"
)

// Every fold and projection of the service names every event of the
// aggregates it consumes.
func TestEveryEventTypeIsHandled(t *testing.T) { eventcheck.Switches(t, ".") }

// The service's projections pass the platform's conformance suite with the
// histories the service really writes.
func TestProjectionsConform(t *testing.T) {
	ctx := context.Background()
	pool := testkit.Schema(t, Schema, migrations.FS)
	cfg := Config{}.withPendingDefaults()
	cfg.GrantTTL, cfg.CodeTTL = 30*time.Minute, 10*time.Minute
	for _, c := range []conformance.Case{
		{Projection: clientsReadModel(), Contract: eventsv1.Authorize},
		{Projection: pendingClientsReadModel(nil), Contract: eventsv1.AuthorizePending},
		{Projection: grantsReadModel(nil, time.Minute), Contract: eventsv1.AuthorizePending},
		{Projection: devicesReadModel(nil, time.Minute), Contract: eventsv1.AuthorizePending},
	} {
		sc := eventlog.StreamOf(c.Contract, 1)
		if c.Contract.ShortLived {
			sc = cfg.pendingStream()
		}
		log, err := eventlog.Open(ctx, testkit.NATS(t), sc)
		if err != nil {
			t.Fatal(err)
		}
		c.Log, c.Pool, c.Events = log, pool, authorizeHistory(c.Contract)
		conformance.Run(t, c)
	}
	// The clients' sessions of the token service, from its stream.
	token, err := eventlog.Open(ctx, testkit.NATS(t), eventlog.StreamOf(eventsv1.Token, 1))
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Case{
		Projection: tokenSessionsReadModel(nil), Contract: eventsv1.Token, Log: token, Pool: pool, Events: tokenSessionsHistory(),
	})
}

// tokenSessionsHistory is what the token service appends for the sessions
// of two clients: a person's sessions rotated, renamed and ended, a client's
// own, a compat session, an imported one and a personal token.
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
		ev(s2, started(s2, "oauth", "app", alice)),
		ev(s1, &eventsv1.TokensIssued{SessionId: s1, AccessHash: ids.New(), RefreshHash: ids.New()}),
		ev(s1, &eventsv1.SessionRenamed{SessionId: s1, DeviceDisplayName: "phone"}),
		ev(s3, started(s3, "client_credentials", "bot", "")),
		ev(s4, started(s4, "compat", "legacy", alice)),
		ev(s5, started(s5, "personal", "bot", alice)),
		ev(s6, &eventsv1.SessionImported{Source: "synapse", Session: &eventsv1.SessionStarted{
			SessionId: s6, Kind: "compat", ClientId: "legacy", UserId: alice, DeviceId: "ABC"}}),
		ev(s1, &eventsv1.SessionEnded{SessionId: s1, Reason: "revoked"}),
		ev(s3, &eventsv1.SessionEnded{SessionId: s3, Reason: "admin"}),
		ev(s6, &eventsv1.SessionEnded{SessionId: s6, Reason: "user_deactivated"}),
		// What a compacted TOKEN stream keeps of sessions: their last event.
		ev(s7, &eventsv1.TokensIssued{SessionId: s7, AccessHash: ids.New(), State: &eventsv1.SessionSnapshot{Session: started(s7, "oauth", "app", alice)}}),
		ev(s8, &eventsv1.SessionSnapshotted{SessionId: s8, State: &eventsv1.SessionSnapshot{Session: started(s8, "oauth", "other", bob)}}),
		ev(s9, &eventsv1.SessionSnapshotted{SessionId: s9, State: &eventsv1.SessionSnapshot{Session: started(s9, "oauth", "app", bob), Ended: true}}),
		ev(s8, &eventsv1.SessionEnded{SessionId: s8, Reason: "revoked", State: &eventsv1.SessionSnapshot{Session: started(s8, "oauth", "other", bob), Ended: true}}),
	}
}

// authorizeHistory is what the service appends to one of its streams: a
// dynamically registered client pending, then kept, and a configured one
// whose configuration changes, authorization grants exchanged and denied,
// device authorizations used and denied, and its key.
func authorizeHistory(stream eventsv1.Stream) []eventlog.Event {
	dynamic, static, other := ids.New(), "synapse-admin", ids.New()
	g1, g2, d1, d2 := ids.New(), ids.New(), ids.New(), ids.New()
	alice := ids.New()
	in := timestamppb.New(time.Now().Add(10 * time.Minute).Truncate(time.Second))
	ev := func(a eventsv1.Aggregate, id string, p proto.Message) eventlog.Event {
		return eventlog.Event{Aggregate: eventlog.Ref{Type: a.Type, ID: id}, Actor: "system", Payload: p}
	}
	all := []eventlog.Event{
		ev(eventsv1.AuthorizePendingClient, dynamic, &eventsv1.ClientRegistrationPending{ClientId: dynamic,
			MetadataJson: []byte(`{"client_name":"Element","redirect_uris":["https://app.example.org/cb"],"token_endpoint_auth_method":"none"}`),
			ExpiresAt:    in}),
		ev(eventsv1.AuthorizePendingClient, other, &eventsv1.ClientRegistrationPending{ClientId: other, SecretHash: "s3",
			MetadataJson: []byte(`{"client_name":"Bot","redirect_uris":["https://bot.example.org/cb"]}`), ExpiresAt: in}),
		ev(eventsv1.AuthorizeKeys, "current", &eventsv1.ClientSecretKeyGenerated{Key: []byte("0123456789abcdef0123456789abcdef")}),
		ev(eventsv1.AuthorizeClient, dynamic, &eventsv1.ClientRegistered{ClientId: dynamic, Source: "registration",
			MetadataJson: []byte(`{"client_name":"Element","redirect_uris":["https://app.example.org/cb"],"token_endpoint_auth_method":"none"}`)}),
		ev(eventsv1.AuthorizeClient, static, &eventsv1.ClientRegistered{ClientId: static, Source: "config", SecretHash: "s1",
			MetadataJson: []byte(`{"client_name":"Admin","grant_types":["client_credentials"]}`)}),
		ev(eventsv1.AuthorizeGrant, g1, &eventsv1.GrantRequested{GrantId: g1, ClientId: dynamic, RedirectUri: "https://app.example.org/cb",
			Scope: "openid urn:matrix:client:api:*", State: "xyz", CodeChallenge: "abc", ExpiresAt: in}),
		ev(eventsv1.AuthorizeGrant, g2, &eventsv1.GrantRequested{GrantId: g2, ClientId: dynamic, RedirectUri: "https://app.example.org/cb", ExpiresAt: in}),
		ev(eventsv1.AuthorizeGrant, g1, &eventsv1.GrantApproved{GrantId: g1, UserId: alice, Username: "alice", CodeHash: "c1", CodeExpiresAt: in,
			AuthTime: timestamppb.Now(), Scope: "openid urn:matrix:client:api:*"}),
		ev(eventsv1.AuthorizeGrant, g2, &eventsv1.GrantDenied{GrantId: g2}),
		ev(eventsv1.AuthorizeDevice, d1, &eventsv1.DeviceAuthorizationRequested{DeviceGrantId: d1, ClientId: dynamic, Scope: "openid",
			DeviceCodeHash: "dc1", UserCodeHash: "uc1", ExpiresAt: in, Interval: 5}),
		ev(eventsv1.AuthorizeDevice, d2, &eventsv1.DeviceAuthorizationRequested{DeviceGrantId: d2, ClientId: dynamic,
			DeviceCodeHash: "dc2", UserCodeHash: "uc2", ExpiresAt: in, Interval: 5}),
		ev(eventsv1.AuthorizeGrant, g1, &eventsv1.GrantExchanged{GrantId: g1, SessionId: ids.New()}),
		ev(eventsv1.AuthorizeDevice, d1, &eventsv1.DeviceApproved{DeviceGrantId: d1, UserId: alice, Username: "alice", Scope: "openid", AuthTime: timestamppb.Now()}),
		ev(eventsv1.AuthorizeDevice, d2, &eventsv1.DeviceDenied{DeviceGrantId: d2}),
		ev(eventsv1.AuthorizeDevice, d1, &eventsv1.DeviceTokenIssued{DeviceGrantId: d1, SessionId: ids.New()}),
		ev(eventsv1.AuthorizeClient, static, &eventsv1.ClientRegistered{ClientId: static, Source: "config", SecretHash: "s2",
			MetadataJson: []byte(`{"client_name":"Admin console","grant_types":["client_credentials"]}`)}),
	}
	var out []eventlog.Event
	for _, e := range all {
		if _, ok := stream.Aggregate(e.Aggregate.Type); ok {
			out = append(out, e)
		}
	}
	return out
}
