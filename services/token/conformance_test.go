package token

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/activity"
	"gatehouse.dev/platform/audittrail"
	"gatehouse.dev/platform/eventcheck"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/projection/conformance"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/session"
	"gatehouse.dev/services/token/migrations"
)

// Every fold, projection, reactor and tail of the service names every event
// of the aggregates it consumes.
func TestEveryEventTypeIsHandled(t *testing.T) { eventcheck.Switches(t, ".") }

// The service's projections pass the platform's conformance suite with the
// histories the service really writes.
func TestProjectionsConform(t *testing.T) {
	ctx := context.Background()
	js := testkit.NATS(t)
	pool := testkit.Schema(t, Schema, migrations.FS)
	tokens, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Token, 1))
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Accounts, 1))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := personal.Open(ctx, js, sealed.NewRandomKeyring(), personal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{personal: keys, log: tokens, now: time.Now, pool: pool, activity: activity.New()}
	conformance.Run(t, conformance.Case{
		Projection: s.sessionsReadModel(), Contract: eventsv1.Token, Log: tokens, Pool: pool, Events: s.sessionHistory(t),
	})
	audit, err := audittrail.Open(ctx, js, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.auditLog = audit
	conformance.Run(t, conformance.Case{
		Projection: s.auditReadModel(), Contract: eventsv1.Audit, Log: audit, Pool: pool,
		Events: s.reactedAudit(t, pool, append(s.sessionHistory(t), loginTokenHistory()...)),
	})
	conformance.Run(t, conformance.Case{
		Projection: userBlocksReadModel(nil), Contract: eventsv1.Accounts, Log: accounts, Pool: pool, Events: userHistory(),
	})
}

// sessionHistory is two users' sessions: an OAuth session refreshed, renamed
// twice, used and ended; a compat session with a never-expiring token; a
// client_credentials session; batches of activity; and a third user's
// session, erased (its personal key destroyed); a personal session an
// administrator made for bob, regenerated and revoked. Addresses and user agents are
// sealed as the service seals them (the client's stay in clear).
func (s *Service) sessionHistory(t *testing.T) []eventlog.Event {
	alice, bob, carol := ids.New(), ids.New(), ids.New()
	for _, u := range []string{alice, bob, carol} {
		if _, err := s.personal.Create(context.Background(), personal.User(u)); err != nil {
			t.Fatal(err)
		}
	}
	erased := ids.New()
	oauth, compat, machine, pat, imported := ids.New(), ids.New(), ids.New(), ids.New(), ids.New()
	at := func(d time.Duration) *timestamppb.Timestamp {
		return timestamppb.New(time.Now().Add(d).Truncate(time.Second))
	}
	session := func(id string, ev proto.Message) eventlog.Event {
		return eventlog.Event{Aggregate: sessionRef(id), Actor: "user:" + alice, Payload: ev}
	}
	history := []eventlog.Event{
		session(erased, &eventsv1.SessionStarted{SessionId: erased, Kind: "oauth", ClientId: "client-1", UserId: carol, Username: "carol",
			IpAddress: "203.0.113.3", UserAgent: "Carol's client", Tokens: &eventsv1.TokensIssued{SessionId: erased, AccessHash: "e1"}}),
		session(oauth, &eventsv1.SessionStarted{SessionId: oauth, Kind: "oauth", ClientId: "client-1", UserId: alice, Username: "alice",
			Scope: "openid urn:matrix:client:api:* urn:matrix:client:device:DEVA", DeviceId: "DEVA", GrantId: ids.New(),
			IpAddress: "192.0.2.1", UserAgent: "Element", Tokens: &eventsv1.TokensIssued{SessionId: oauth, AccessHash: "a1", RefreshHash: "r1", AccessExpiresAt: at(5 * time.Minute)}}),
		session(compat, &eventsv1.SessionStarted{SessionId: compat, Kind: compatKind, ClientId: compatClientID, UserId: bob, Username: "bob",
			Scope: "urn:matrix:client:api:* urn:matrix:client:device:DEVB", DeviceId: "DEVB", DeviceDisplayName: "Bob's phone",
			Tokens: &eventsv1.TokensIssued{SessionId: compat, AccessHash: "ca1"}}),
		session(machine, &eventsv1.SessionStarted{SessionId: machine, Kind: "client_credentials", ClientId: "client-2", Scope: "urn:synapse:admin:*",
			IpAddress: "198.51.100.200", UserAgent: "a service", Tokens: &eventsv1.TokensIssued{SessionId: machine, AccessHash: "m1", AccessExpiresAt: at(5 * time.Minute)}}),
		session(oauth, &eventsv1.TokensIssued{SessionId: oauth, AccessHash: "a2", RefreshHash: "r2", ReplacesRefreshHash: "r1", RevokesAccessHash: "a1", AccessExpiresAt: at(10 * time.Minute)}),
		session(oauth, &eventsv1.SessionRenamed{SessionId: oauth, DeviceDisplayName: "Laptop"}),
		{Aggregate: eventlog.Ref{Type: activityAggregate, ID: ids.New()}, Actor: "system", Payload: &eventsv1.SessionsActive{Entries: []*eventsv1.SessionsActive_Entry{
			{SessionId: oauth, UserId: alice, LastActiveUnix: time.Now().Add(time.Minute).Unix(), IpAddress: "192.0.2.2"},
			{SessionId: compat, UserId: bob, LastActiveUnix: time.Now().Add(time.Minute).Unix()},
			{SessionId: erased, UserId: carol, LastActiveUnix: time.Now().Add(time.Minute).Unix(), IpAddress: "2001:db8::3"},
		}}},
		session(oauth, &eventsv1.SessionRenamed{SessionId: oauth, DeviceDisplayName: "Work laptop"}),
		session(oauth, &eventsv1.TokensIssued{SessionId: oauth, AccessHash: "a3", RefreshHash: "r3", ReplacesRefreshHash: "r2", RevokesAccessHash: "a2", AccessExpiresAt: at(15 * time.Minute)}),
		session(oauth, &eventsv1.SessionEnded{SessionId: oauth, Reason: "revoked"}),
		{Aggregate: eventlog.Ref{Type: activityAggregate, ID: ids.New()}, Actor: "system", Payload: &eventsv1.SessionsActive{Entries: []*eventsv1.SessionsActive_Entry{
			{SessionId: oauth, LastActiveUnix: time.Now().Add(2 * time.Minute).Unix()}, // ended: not recorded
			{SessionId: compat, UserId: bob, LastActiveUnix: time.Now().Add(2 * time.Minute).Unix(), IpAddress: "198.51.100.7"},
		}}},
		session(machine, &eventsv1.SessionEnded{SessionId: machine, Reason: "ended"}),
		session(pat, &eventsv1.SessionStarted{SessionId: pat, Kind: "personal", UserId: bob, Username: "bob", OwnerUserId: alice,
			Scope: "urn:matrix:client:api:* urn:matrix:client:device:BOTDEV", DeviceId: "BOTDEV", DeviceDisplayName: "CI bot",
			Tokens: &eventsv1.TokensIssued{SessionId: pat, AccessHash: "p1", AccessExpiresAt: at(time.Hour)}}),
		session(pat, &eventsv1.TokensIssued{SessionId: pat, AccessHash: "p2", RevokesAccessHash: "p1"}),
		session(pat, &eventsv1.SessionEnded{SessionId: pat, Reason: "revoked"}),
		session(imported, &eventsv1.SessionImported{Source: "synapse", CreatedAt: at(-24 * time.Hour), LastActiveAt: at(-time.Hour),
			Session: &eventsv1.SessionStarted{SessionId: imported, Kind: compatKind, ClientId: compatClientID, UserId: bob, Username: "bob",
				Scope: "urn:matrix:client:api:* urn:matrix:client:device:SYNDEV", DeviceId: "SYNDEV", DeviceDisplayName: "Bob's old phone",
				IpAddress: "192.0.2.44", UserAgent: "Element Android"},
			Tokens: []*eventsv1.TokensIssued{{SessionId: imported, AccessHash: "s1"}, {SessionId: imported, AccessHash: "s2", RefreshHash: "sr2"}}}),
		session(imported, &eventsv1.TokensIssued{SessionId: imported, AccessHash: "s3", RefreshHash: "sr3", ReplacesRefreshHash: "sr2", RevokesAccessHash: "s2"}),
	}
	for i, e := range history {
		subject := eventsv1.Token.Prefix + "." + e.Aggregate.Type + "." + e.Aggregate.ID
		sealed, err := s.personal.Seal(context.Background(), e.Payload, subject, personal.NoOwner)
		if err != nil {
			t.Fatal(err)
		}
		history[i].Payload = sealed
	}
	history = append(history, s.snapshotHistories(t, alice)...)
	if err := s.personal.Destroy(context.Background(), personal.User(carol)); err != nil {
		t.Fatal(err)
	}
	return history
}

// snapshotHistories are two sessions of user as the service writes them
// since issue 16 (snapshotHistory), their events interleaved: a rebuild
// applies runs of states of several sessions in one go (applySnapshotRun),
// the live projection one event at a time, and the two must agree.
func (s *Service) snapshotHistories(t *testing.T, user string) []eventlog.Event {
	a, b := s.snapshotHistory(t, user, "s", true), s.snapshotHistory(t, user, "t", false)
	out := make([]eventlog.Event, 0, len(a)+len(b))
	for i := range max(len(a), len(b)) {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

// snapshotHistory is a session as the service writes it since issue 16:
// every event after its start carries the session's whole state
// (sessionWrites), refreshed twice, renamed, snapshotted as when its stream
// was compacted, and ended if end is set. Its token hashes start with tag.
func (s *Service) snapshotHistory(t *testing.T, user, tag string, end bool) []eventlog.Event {
	ctx := context.Background()
	id := ids.New()
	ref := sessionRef(id)
	subject := s.log.Subject(ref)
	expires := timestamppb.New(time.Now().Add(5 * time.Minute).Truncate(time.Second))
	start, err := s.personal.SealDroppingErased(ctx, &eventsv1.SessionStarted{SessionId: id, Kind: "oauth", ClientId: "client-1", UserId: user, Username: "alice",
		Scope: "openid urn:matrix:client:api:* urn:matrix:client:device:SNAP", DeviceId: "SNAP", IpAddress: "192.0.2.9", UserAgent: "Snap client",
		Tokens: &eventsv1.TokensIssued{SessionId: id, AccessHash: tag + "a1", RefreshHash: tag + "r1", AccessExpiresAt: expires}}, subject, personal.NoOwner)
	if err != nil {
		t.Fatal(err)
	}
	recs := []eventlog.Record{{Seq: 1, Subject: subject, Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(s.now())}, Event: start}}
	out := []eventlog.Event{{Aggregate: ref, Actor: "user:" + user, Payload: start}}
	decide := func(decided func(session.State) []proto.Message) {
		st := session.Fold(recs)
		writes, err := s.sessionWrites(ctx, ref, "user:"+user, st, st.Version, decided(st)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range writes {
			recs = append(recs, eventlog.Record{Seq: st.Version + 1, Subject: subject, Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(s.now())}, Event: w.Event.Payload})
			out = append(out, w.Event)
		}
	}
	refresh := func(n int) func(session.State) []proto.Message {
		return func(st session.State) []proto.Message {
			next := &eventsv1.TokensIssued{AccessHash: fmt.Sprintf("%sa%d", tag, n+1), RefreshHash: fmt.Sprintf("%sr%d", tag, n+1), AccessExpiresAt: expires}
			decided, _, err := session.Refresh(st, session.Rotation{ClientID: "client-1", PresentedHash: fmt.Sprintf("%sr%d", tag, n), FirstSeen: st.Version, Next: next, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			return decided
		}
	}
	// Activity batches before the session's last events: a rebuild from a
	// compacted stream meets them before the only event of the session it
	// keeps (TestCompactedSessionsConform).
	batch := func(d time.Duration, ip string) {
		ref := eventlog.Ref{Type: activityAggregate, ID: ids.New()}
		ev, err := s.personal.Seal(ctx, &eventsv1.SessionsActive{Entries: []*eventsv1.SessionsActive_Entry{
			{SessionId: id, UserId: user, LastActiveUnix: time.Now().Add(d).Unix(), IpAddress: ip}}}, s.log.Subject(ref), personal.NoOwner)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, eventlog.Event{Aggregate: ref, Actor: "system", Payload: ev})
	}
	batch(time.Minute, "192.0.2.10")
	decide(refresh(1))
	batch(2*time.Minute, "")
	// What this replica noted and has not written goes into the next event.
	s.activity.Touch(id, user, "192.0.2.11", time.Now().Add(90*time.Second))
	decide(func(st session.State) []proto.Message {
		decided, err := session.Rename(st, "", "Snap laptop")
		if err != nil {
			t.Fatal(err)
		}
		return decided
	})
	decide(refresh(2))
	out = append(out, eventlog.Event{Aggregate: ref, Actor: "system:token", Payload: &eventsv1.SessionSnapshotted{SessionId: id, State: session.Fold(recs).Snapshot()}})
	if end {
		decide(func(st session.State) []proto.Message {
			decided, err := session.End(st, "revoked")
			if err != nil {
				t.Fatal(err)
			}
			return decided
		})
	}
	return out
}

// loginTokenHistory is a compat SSO login token issued and used.
func loginTokenHistory() []eventlog.Event {
	ref := eventlog.Ref{Type: eventsv1.TokenLoginToken.Type, ID: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	alice := ids.New()
	return []eventlog.Event{
		{Aggregate: ref, Actor: "web", Payload: &eventsv1.LoginTokenIssued{UserId: alice, Username: "alice", ExpiresAt: timestamppb.Now()}},
		{Aggregate: ref, Actor: "token", Payload: &eventsv1.LoginTokenUsed{SessionId: ids.New()}},
	}
}

// userHistory is what the accounts service appends for two users: a lock
// lifted and set again, a deactivation undone, and the events that change
// nothing here.
func userHistory() []eventlog.Event {
	alice, bob, carol, dave, erin := ids.New(), ids.New(), ids.New(), ids.New(), ids.New()
	user := func(id string, ev proto.Message) eventlog.Event {
		return eventlog.Event{Aggregate: eventlog.Ref{Type: eventsv1.AccountsUser.Type, ID: id}, Actor: "admin", Payload: ev}
	}
	return []eventlog.Event{
		user(alice, &eventsv1.UserRegistered{UserId: alice, Username: "alice", Email: "alice@example.org", PasswordHash: "$argon2id$a"}),
		user(bob, &eventsv1.UserRegistered{UserId: bob, Username: "bob"}),
		user(carol, &eventsv1.UserRegistered{UserId: carol, Username: "carol"}),
		user(alice, &eventsv1.UserLocked{UserId: alice, Reason: "spam"}),
		user(alice, &eventsv1.PasswordChanged{UserId: alice, PasswordHash: "$argon2id$b", Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_ADMIN}),
		user(alice, &eventsv1.UserUnlocked{UserId: alice}),
		user(bob, &eventsv1.UserDeactivated{UserId: bob, Erase: true}),
		user(bob, &eventsv1.UserLocked{UserId: bob}),
		user(bob, &eventsv1.UserReactivated{UserId: bob}),
		user(carol, &eventsv1.UserDeactivated{UserId: carol}),
		user(alice, &eventsv1.DisplayNameSet{UserId: alice, DisplayName: "Alice"}),
		user(alice, &eventsv1.AdminSet{UserId: alice, Admin: true}),
		user(alice, &eventsv1.EmailAdded{UserId: alice, Email: "a@example.net"}),
		user(alice, &eventsv1.PrimaryEmailSet{UserId: alice, Email: "a@example.net"}),
		user(alice, &eventsv1.EmailRemoved{UserId: alice, Email: "alice@example.org"}),
		user(alice, &eventsv1.UpstreamLinked{UserId: alice, LinkId: "01J0000000000000000000LINK", Provider: "google", ClaimKey: "k1", Source: "link"}),
		user(alice, &eventsv1.UpstreamUnlinked{UserId: alice, LinkId: "01J0000000000000000000LINK", Provider: "google", ClaimKey: "k1"}),
		user(alice, &eventsv1.UserLocked{UserId: alice}),
		user(dave, &eventsv1.UserImported{UserId: dave, Username: "dave", Source: "synapse", Locked: true}),
		user(erin, &eventsv1.UserImported{UserId: erin, Username: "erin", Source: "synapse"}),
		user(dave, &eventsv1.UserUnlocked{UserId: dave}),
	}
}

// The sessions read model passes the suite on a TOKEN stream that keeps
// only each session's last event (oauth.compact_sessions): its rebuild meets
// activity batches before the one event kept of their session, and still
// equals the live read model (issue 16).
func TestCompactedSessionsConform(t *testing.T) {
	ctx := context.Background()
	js := testkit.NATS(t)
	pool := testkit.Schema(t, Schema, migrations.FS)
	cfg := eventlog.StreamOf(eventsv1.Token, 1)
	cfg.LastPerSubject, cfg.AllowTTL = true, true
	// One clock for the log and the service: a snapshot's times are those
	// of the events it folds, as when the service appends them.
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { return now }
	tokens, err := eventlog.Open(ctx, js, cfg, eventlog.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := personal.Open(ctx, js, sealed.NewRandomKeyring(), personal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{personal: keys, log: tokens, now: clock, pool: pool, activity: activity.New()}
	alice, bob := ids.New(), ids.New()
	for _, u := range []string{alice, bob} {
		if _, err := keys.Create(ctx, personal.User(u)); err != nil {
			t.Fatal(err)
		}
	}
	// An imported session, a session only started, and activity for both
	// before and after; then a session written as the service writes it.
	imported, started := ids.New(), ids.New()
	seal := func(ref eventlog.Ref, ev proto.Message) eventlog.Event {
		sealed, err := keys.Seal(ctx, ev, tokens.Subject(ref), personal.NoOwner)
		if err != nil {
			t.Fatal(err)
		}
		return eventlog.Event{Aggregate: ref, Actor: "system", Payload: sealed}
	}
	active := func(entries ...*eventsv1.SessionsActive_Entry) eventlog.Event {
		return seal(eventlog.Ref{Type: activityAggregate, ID: ids.New()}, &eventsv1.SessionsActive{Entries: entries})
	}
	events := []eventlog.Event{
		seal(sessionRef(imported), &eventsv1.SessionImported{Source: "synapse", CreatedAt: timestamppb.New(now.Add(-24 * time.Hour)), LastActiveAt: timestamppb.New(now.Add(-time.Hour)),
			Session: &eventsv1.SessionStarted{SessionId: imported, Kind: compatKind, ClientId: compatClientID, UserId: bob, Username: "bob",
				Scope: "urn:matrix:client:api:* urn:matrix:client:device:SYNDEV", DeviceId: "SYNDEV", IpAddress: "192.0.2.44", UserAgent: "Element Android"},
			Tokens: []*eventsv1.TokensIssued{{SessionId: imported, AccessHash: "s1"}}}),
		seal(sessionRef(started), &eventsv1.SessionStarted{SessionId: started, Kind: "oauth", ClientId: "client-1", UserId: alice, Username: "alice",
			IpAddress: "192.0.2.1", Tokens: &eventsv1.TokensIssued{SessionId: started, AccessHash: "b1", AccessExpiresAt: timestamppb.New(now.Add(time.Hour))}}),
		active(&eventsv1.SessionsActive_Entry{SessionId: imported, UserId: bob, LastActiveUnix: now.Unix(), IpAddress: "198.51.100.7"},
			&eventsv1.SessionsActive_Entry{SessionId: started, UserId: alice, LastActiveUnix: now.Add(time.Second).Unix()}),
		active(&eventsv1.SessionsActive_Entry{SessionId: started, UserId: alice, LastActiveUnix: now.Unix(), IpAddress: "192.0.2.5"}),
	}
	events = append(events, s.snapshotHistories(t, alice)...)
	conformance.Run(t, conformance.Case{Projection: s.sessionsReadModel(), Contract: eventsv1.Token, Log: tokens, Pool: pool, Events: events})
}
