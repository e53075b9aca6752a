package accounts

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventcheck"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/projection/conformance"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/user"
	"gatehouse.dev/services/accounts/migrations"
)

// Every fold, projection and decision of the service names every event of
// the aggregates it touches.
func TestEveryEventTypeIsHandled(t *testing.T) { eventcheck.Switches(t, ".") }

// The service's projections pass the platform's conformance suite with the
// histories the service really writes (and, for the confirmations, what the
// notify service writes).
func TestProjectionsConform(t *testing.T) {
	ctx := context.Background()
	pool := testkit.Schema(t, Schema, migrations.FS)
	// stream opens a stream of the contract on a NATS server of its own.
	stream := func(s eventsv1.Stream, opts ...eventlog.Option) *eventlog.Log {
		l, err := eventlog.Open(ctx, testkit.NATS(t), eventlog.StreamOf(s, 1), opts...)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// The projections open personal data with the service's keys.
	keys, err := personal.Open(ctx, testkit.NATS(t), sealed.NewRandomKeyring(), personal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{personal: keys, claimKey: []byte("0123456789abcdef0123456789abcdef")}
	history := s.accountsHistory(t)
	// The audit trail, from what the audit reactor appends to AUDIT for
	// the history.
	auditLog := stream(eventsv1.Audit)
	s.auditLog = auditLog
	conformance.Run(t, conformance.Case{
		Projection: s.auditReadModel(), Contract: eventsv1.Audit, Log: auditLog, Pool: pool, Events: s.reactedAudit(t, pool, history),
	})
	for _, c := range []conformance.Case{
		{Projection: s.usersReadModel()},
		{Projection: s.sessionsReadModel()},
		{Projection: regTokensReadModel()},
		{Projection: s.passkeysReadModel()},
	} {
		c.Contract, c.Log, c.Pool, c.Events = eventsv1.Accounts, stream(eventsv1.Accounts), pool, history
		conformance.Run(t, c)
	}
	// The users' sessions of the token service, from its stream.
	conformance.Run(t, conformance.Case{
		Projection: tokenSessionsReadModel(nil), Contract: eventsv1.Token, Log: stream(eventsv1.Token), Pool: pool, Events: tokenSessionsHistory(),
	})
	// Confirmations spread over hours, so the projection forgets old ones.
	clock := &steppingClock{now: time.Now().Add(-6 * time.Hour)}
	conformance.Run(t, conformance.Case{
		Projection: s.verificationsReadModel(nil), Contract: eventsv1.NotifyPending, Log: stream(eventsv1.NotifyPending, eventlog.WithClock(clock.next)), Pool: pool, Events: confirmationsHistory(),
	})
}

// sealEvents seals the personal fields of events as the service does, on
// the ACCOUNTS stream's subjects.
func (s *Service) sealEvents(t *testing.T, events []eventlog.Event) []eventlog.Event {
	t.Helper()
	for i, e := range events {
		subject := eventsv1.Accounts.Prefix + "." + e.Aggregate.Type + "." + e.Aggregate.ID
		sealed, err := s.personal.Seal(context.Background(), e.Payload, subject, ownerOf(e.Aggregate))
		if err != nil {
			t.Fatalf("seal %T: %v", e.Payload, err)
		}
		events[i].Payload = sealed
	}
	return events
}

// steppingClock moves 25 minutes forward at every event.
type steppingClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *steppingClock) next() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(25 * time.Minute)
	return c.now
}

// accountsHistory is what the service appends for three users from
// registration to deactivation and back, with addresses, browser sessions,
// registration tokens and its keys, and an erasure: carol's personal key is
// destroyed, as erasing her did. Its personal fields are sealed (but for
// alice's first password change and the keys, written in clear as versions
// before sealing did).
func (s *Service) accountsHistory(t *testing.T) []eventlog.Event {
	alice, bob, carol, dave := ids.New(), ids.New(), ids.New(), ids.New()
	for _, u := range []string{alice, bob, carol, dave} {
		if _, err := s.personal.Create(context.Background(), personal.User(u)); err != nil {
			t.Fatal(err)
		}
	}
	reg, tok1, tok2 := ids.New(), ids.New(), ids.New()
	s1, s2, s3 := ids.New(), ids.New(), ids.New()
	emailKey := func(email string) string { return user.EmailKey(s.claimKey, email) }
	l1, l2 := ids.New(), ids.New()
	ev := func(typ, id string, p proto.Message) eventlog.Event {
		return eventlog.Event{Aggregate: eventlog.Ref{Type: typ, ID: id}, Actor: "admin", Payload: p}
	}
	u := func(id string, p proto.Message) eventlog.Event { return ev(userAggregate, id, p) }
	f := func(id string, p proto.Message) eventlog.Event { return ev(factorsAggregate, id, p) }
	pk1, pk2, pk3, pk4 := ids.New(), ids.New(), ids.New(), ids.New()
	in := func(d time.Duration) *timestamppb.Timestamp {
		return timestamppb.New(time.Now().Add(d).Truncate(time.Second))
	}
	history := s.sealEvents(t, []eventlog.Event{
		ev(eventsv1.AccountsKeys.Type, "current", &eventsv1.AuthProofKeyGenerated{Key: []byte("0123456789abcdef0123456789abcdef")}),
		ev(eventsv1.AccountsKeys.Type, "claims", &eventsv1.ClaimKeyGenerated{SealedKey: &eventsv1.SealedSecret{KeyId: "k"}}),
		ev(regTokenAggregate, tok1, &eventsv1.RegistrationTokenCreated{TokenId: tok1, TokenHash: "h1", UsesAllowed: 2, ExpiresAt: in(time.Hour)}),
		ev(registrationAggregate, reg, &eventsv1.RegistrationStarted{RegistrationId: reg, Username: "alice", Email: "alice@example.org",
			PasswordHash: "$argon2id$a", ExpiresAt: in(30 * time.Minute)}),
		ev(regTokenAggregate, tok1, &eventsv1.RegistrationTokenUsed{TokenId: tok1}),
		ev(usernameAggregate, user.UsernameKey("alice"), &eventsv1.UsernameReserved{Username: "alice", UserId: alice}),
		ev(emailAggregate, emailKey("alice@example.org"), &eventsv1.EmailReserved{Email: "alice@example.org", UserId: alice}),
		u(alice, &eventsv1.UserRegistered{UserId: alice, Username: "alice", Email: "alice@example.org", PasswordHash: "$argon2id$a",
			DisplayName: "Alice", EmailVerificationId: ids.New()}),
		ev(registrationAggregate, reg, &eventsv1.RegistrationCompleted{RegistrationId: reg, UserId: alice, VerificationId: ids.New()}),
		ev(usernameAggregate, user.UsernameKey("bob"), &eventsv1.UsernameReserved{Username: "bob", UserId: bob}),
		u(bob, &eventsv1.UserRegistered{UserId: bob, Username: "bob", PasswordHash: "$argon2id$b", Admin: true}),
		ev(browserAggregate, s1, &eventsv1.BrowserSessionStarted{SessionId: s1, UserId: alice, SecretHash: "sh1", UserAgent: "Firefox", IpAddress: "192.0.2.1"}),
		ev(browserAggregate, s2, &eventsv1.BrowserSessionStarted{SessionId: s2, UserId: bob, SecretHash: "sh2", UserAgent: "Chromium", IpAddress: "192.0.2.2"}),
		ev(activityAggregate, ids.New(), &eventsv1.BrowserSessionsActive{Entries: []*eventsv1.BrowserSessionsActive_Entry{
			{SessionId: s1, LastActiveUnix: time.Now().Add(time.Minute).Unix(), IpAddress: "192.0.2.9"},
			{SessionId: s2, LastActiveUnix: time.Now().Add(time.Minute).Unix()},
		}}),
		u(alice, &eventsv1.PasswordChanged{UserId: alice, PasswordHash: "$argon2id$a2", Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_USER}),
		u(alice, &eventsv1.DisplayNameSet{UserId: alice, DisplayName: "Alice A."}),
		ev(emailAggregate, emailKey("alice@example.net"), &eventsv1.EmailReserved{Email: "alice@example.net", UserId: alice}),
		u(alice, &eventsv1.EmailAdded{UserId: alice, Email: "alice@example.net", VerificationId: ids.New()}),
		u(alice, &eventsv1.PrimaryEmailSet{UserId: alice, Email: "alice@example.net"}),
		u(alice, &eventsv1.EmailRemoved{UserId: alice, Email: "alice@example.org"}),
		ev(emailAggregate, emailKey("alice@example.org"), &eventsv1.EmailReleased{Email: "alice@example.org", UserId: alice}),
		u(alice, &eventsv1.DisplayNameSet{UserId: alice, DisplayName: "Alice"}),
		u(bob, &eventsv1.AdminSet{UserId: bob, Admin: false}),
		u(bob, &eventsv1.UserLocked{UserId: bob, Reason: "spam"}),
		u(bob, &eventsv1.UserUnlocked{UserId: bob}),
		ev(regTokenAggregate, tok1, &eventsv1.RegistrationTokenUsed{TokenId: tok1}),
		ev(regTokenAggregate, tok2, &eventsv1.RegistrationTokenCreated{TokenId: tok2, TokenHash: "h2"}),
		ev(regTokenAggregate, tok2, &eventsv1.RegistrationTokenRevoked{TokenId: tok2}),
		ev(regTokenAggregate, tok2, &eventsv1.RegistrationTokenUnrevoked{TokenId: tok2}),
		ev(regTokenAggregate, tok2, &eventsv1.RegistrationTokenUpdated{TokenId: tok2, UsesAllowed: 3, ExpiresAt: timestamppb.New(time.Now().Add(time.Hour).Truncate(time.Second))}),
		ev(regTokenAggregate, tok2, &eventsv1.RegistrationTokenRevoked{TokenId: tok2}),
		u(bob, &eventsv1.UserDeactivated{UserId: bob}),
		ev(browserAggregate, s2, &eventsv1.BrowserSessionEnded{SessionId: s2, UserId: bob, Reason: "deactivated"}),
		u(bob, &eventsv1.UserReactivated{UserId: bob}),
		ev(activityAggregate, ids.New(), &eventsv1.BrowserSessionsActive{Entries: []*eventsv1.BrowserSessionsActive_Entry{
			{SessionId: s1, LastActiveUnix: time.Now().Add(2 * time.Minute).Unix()},
			{SessionId: s2, LastActiveUnix: time.Now().Add(2 * time.Minute).Unix(), IpAddress: "198.51.100.1"}, // ended: not recorded
		}}),
		ev(upstreamAggregate, "k1", &eventsv1.UpstreamLinkReserved{Provider: "google", UserId: alice, LinkId: l1}),
		u(alice, &eventsv1.UpstreamLinked{UserId: alice, LinkId: l1, Provider: "google", Subject: "google-subject-1", Email: "alice@gmail.example",
			ClaimKey: "k1", Source: "link"}),
		ev(upstreamAggregate, "k2", &eventsv1.UpstreamLinkReserved{Provider: "synapse:oidc-github", UserId: alice, LinkId: l2}),
		u(alice, &eventsv1.UpstreamLinked{UserId: alice, LinkId: l2, Provider: "synapse:oidc-github", Subject: "12345",
			ClaimKey: "k2", Source: "import"}),
		ev(browserAggregate, s3, &eventsv1.BrowserSessionStarted{SessionId: s3, UserId: alice, SecretHash: "sh3", UserAgent: "Firefox",
			UpstreamProvider: "google", UpstreamSid: "sid-1"}),
		u(alice, &eventsv1.UpstreamUnlinked{UserId: alice, LinkId: l2, Provider: "synapse:oidc-github", ClaimKey: "k2"}),
		ev(upstreamAggregate, "k2", &eventsv1.UpstreamLinkReleased{Provider: "synapse:oidc-github", UserId: alice, LinkId: l2}),
		ev(bclogoutAggregate, "j1", &eventsv1.UpstreamLogoutReceived{Provider: "google", Sid: "sid-1", UserId: alice}),
		ev(browserAggregate, s3, &eventsv1.BrowserSessionEnded{SessionId: s3, UserId: alice, Reason: "upstream_logout", EndStartedSessions: true}),
		// alice sets up second factors, uses and changes them.
		f(alice, &eventsv1.PasskeyAdded{UserId: alice, PasskeyId: pk1, CredentialId: []byte("cred-1"), PublicKey: []byte("cose-1"),
			Name: "Laptop", UserHandle: "aGFuZGxl", ChallengeHash: "c1", NoticeEmail: "alice@example.net", UserVerified: true}),
		f(alice, &eventsv1.RecoveryCodesGenerated{UserId: alice, CodeHashes: []string{"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"}}),
		f(alice, &eventsv1.PasskeyUsed{UserId: alice, PasskeyId: pk1, SignCount: 3, ChallengeHash: "c2", Purpose: "sign_in"}),
		ev(browserAggregate, s1, &eventsv1.BrowserSessionReauthenticated{SessionId: s1, UserId: alice, AuthMethods: []string{"passkey"}}),
		f(alice, &eventsv1.TOTPEnabled{UserId: alice, Secret: "JBSWY3DPEHPK3PXP", Step: 100, NoticeEmail: "alice@example.net"}),
		f(alice, &eventsv1.TOTPUsed{UserId: alice, Step: 101}),
		f(alice, &eventsv1.RecoveryCodeUsed{UserId: alice, Index: 3}),
		f(alice, &eventsv1.SecondFactorRequirementSet{UserId: alice, Required: true}),
		f(alice, &eventsv1.PasskeyAdded{UserId: alice, PasskeyId: pk2, CredentialId: []byte("cred-2"), PublicKey: []byte("cose-2"), Name: "Phone"}),
		f(alice, &eventsv1.PasskeyRenamed{UserId: alice, PasskeyId: pk2, Name: "Alice's phone"}),
		f(alice, &eventsv1.PasskeyRemoved{UserId: alice, PasskeyId: pk1}),
		f(alice, &eventsv1.TOTPDisabled{UserId: alice}),
		f(alice, &eventsv1.SecondFactorsReset{UserId: alice}),
		f(alice, &eventsv1.PasskeyAdded{UserId: alice, PasskeyId: pk3, CredentialId: []byte("cred-3"), PublicKey: []byte("cose-3"), Name: "Key"}),
		u(alice, &eventsv1.UserLocked{UserId: alice}),
		// Dave is imported from Synapse, then signs in (his hash upgraded).
		ev(usernameAggregate, user.UsernameKey("Dave"), &eventsv1.UsernameReserved{Username: "Dave", UserId: dave}),
		ev(emailAggregate, emailKey("dave@example.org"), &eventsv1.EmailReserved{Email: "dave@example.org", UserId: dave}),
		ev(upstreamAggregate, "k3", &eventsv1.UpstreamLinkReserved{Provider: "synapse:oidc-github", UserId: dave, LinkId: "l3"}),
		u(dave, &eventsv1.UserImported{UserId: dave, Username: "Dave", Source: "synapse", ExternalId: "@Dave:example.org",
			CreatedAt: in(-90 * 24 * time.Hour), Admin: true, Locked: true, DisplayName: "Dave D.", PasswordScheme: "bcrypt",
			SealedPasswordHash: &eventsv1.SealedSecret{KeyId: "k", PersonalKey: "user." + dave, Ciphertext: []byte("x")},
			Emails:             []*eventsv1.UserImported_Email{{Email: "dave@example.org", AddedAt: in(-80 * 24 * time.Hour)}},
			Links: []*eventsv1.UserImported_Link{{LinkId: "l3", Provider: "synapse:oidc-github", ClaimKey: "k3",
				SealedSubject: &eventsv1.SealedSecret{KeyId: "k", PersonalKey: "user." + dave, Ciphertext: []byte("s")}}}}),
		u(dave, &eventsv1.PasswordChanged{UserId: dave, Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_UPGRADE,
			SealedPasswordHash: &eventsv1.SealedSecret{KeyId: "k", PersonalKey: "user." + dave, Ciphertext: []byte("y")}}),
		// Carol registers, signs in, and is erased.
		ev(usernameAggregate, user.UsernameKey("carol"), &eventsv1.UsernameReserved{Username: "carol", UserId: carol}),
		ev(emailAggregate, emailKey("carol@example.org"), &eventsv1.EmailReserved{Email: "carol@example.org", UserId: carol}),
		u(carol, &eventsv1.UserRegistered{UserId: carol, Username: "carol", Email: "carol@example.org", DisplayName: "Carol C.",
			SealedPasswordHash: &eventsv1.SealedSecret{KeyId: "k", PersonalKey: "user." + carol, Ciphertext: []byte("x")}}),
		ev(browserAggregate, s3, &eventsv1.BrowserSessionStarted{SessionId: s3, UserId: carol, SecretHash: "sh3", UserAgent: "Carol's browser", IpAddress: "203.0.113.3"}),
		ev(emailAggregate, emailKey("carol@example.net"), &eventsv1.EmailReserved{Email: "carol@example.net", UserId: carol}),
		u(carol, &eventsv1.EmailAdded{UserId: carol, Email: "carol@example.net"}),
		u(carol, &eventsv1.PrimaryEmailSet{UserId: carol, Email: "carol@example.net"}),
		u(carol, &eventsv1.EmailRemoved{UserId: carol, Email: "carol@example.org"}),
		u(carol, &eventsv1.DisplayNameSet{UserId: carol, DisplayName: "Carol"}),
		ev(emailAggregate, emailKey("carol@example.org"), &eventsv1.EmailReleased{Email: "carol@example.org", UserId: carol}),
		ev(emailAggregate, emailKey("carol@example.net"), &eventsv1.EmailReleased{Email: "carol@example.net", UserId: carol}),
		f(carol, &eventsv1.PasskeyAdded{UserId: carol, PasskeyId: pk4, CredentialId: []byte("cred-4"), PublicKey: []byte("cose-4"), Name: "Carol's key"}),
		f(carol, &eventsv1.TOTPEnabled{UserId: carol, Secret: "KRSXG5CTMVRXEZLU", Step: 7}),
		u(carol, &eventsv1.UserDeactivated{UserId: carol, Erase: true}),
		ev(browserAggregate, s3, &eventsv1.BrowserSessionEnded{SessionId: s3, UserId: carol, Reason: "deactivated"}),
		ev(activityAggregate, ids.New(), &eventsv1.BrowserSessionsActive{Entries: []*eventsv1.BrowserSessionsActive_Entry{
			{SessionId: s1, UserId: alice, LastActiveUnix: time.Now().Add(3 * time.Minute).Unix(), IpAddress: "2001:db8::a"},
		}}),
	})
	// alice's first password change as a version before sealing wrote it.
	for i, e := range history {
		if pc, ok := e.Payload.(*eventsv1.PasswordChanged); ok && pc.GetUserId() == alice {
			history[i].Payload = &eventsv1.PasswordChanged{UserId: alice, PasswordHash: "$argon2id$a2", Reason: pc.GetReason()}
		}
	}
	if err := s.personal.Destroy(context.Background(), personal.User(carol)); err != nil {
		t.Fatal(err)
	}
	return history
}

// confirmationsHistory is what the notify service appends for a
// registration, a new address and two recoveries, 25 minutes apart each.
func confirmationsHistory() []eventlog.Event {
	alice := ids.New()
	v1, v2, v3, v4 := ids.New(), ids.New(), ids.New(), ids.New()
	in := timestamppb.New(time.Now().Add(time.Hour))
	ev := func(id string, p proto.Message) eventlog.Event {
		return eventlog.Event{Aggregate: eventlog.Ref{Type: eventsv1.NotifyVerification.Type, ID: id}, Actor: "system", Payload: p}
	}
	reg, add, rec := eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION, eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL, eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY
	return []eventlog.Event{
		ev(v1, &eventsv1.VerificationStarted{VerificationId: v1, Email: "Alice@Example.org", Purpose: reg, CodeHash: "c1", ExpiresAt: in}),
		ev(v1, &eventsv1.EmailDelivered{VerificationId: v1, Issue: 1, MessageId: "<v1.1@example.org>"}),
		ev(v1, &eventsv1.VerificationAttemptFailed{VerificationId: v1, Attempts: 1}),
		ev(v1, &eventsv1.VerificationCodeReissued{VerificationId: v1, Issue: 2, CodeHash: "c2", ExpiresAt: in}),
		ev(v1, &eventsv1.VerificationConfirmed{VerificationId: v1, Email: "Alice@Example.org", Purpose: reg}),
		ev(v2, &eventsv1.VerificationStarted{VerificationId: v2, Email: "alice@example.net", Purpose: add, UserId: alice, CodeHash: "c3", ExpiresAt: in}),
		ev(v2, &eventsv1.EmailDeliveryFailed{VerificationId: v2, Issue: 1, Reason: "550 no such user"}),
		ev(v2, &eventsv1.VerificationConfirmed{VerificationId: v2, Email: "alice@example.net", Purpose: add, UserId: alice}),
		ev(v3, &eventsv1.VerificationStarted{VerificationId: v3, Email: "alice@example.net", Purpose: rec, UserId: alice, TicketHash: "t1", ExpiresAt: in}),
		ev(v3, &eventsv1.VerificationConfirmed{VerificationId: v3, Email: "alice@example.net", Purpose: rec, UserId: alice}),
		ev(v4, &eventsv1.VerificationStarted{VerificationId: v4, Email: "alice@example.net", Purpose: rec, UserId: alice, TicketHash: "t2", ExpiresAt: in}),
		ev(v4, &eventsv1.VerificationConfirmed{VerificationId: v4, Email: "alice@example.net", Purpose: rec, UserId: alice}),
	}
}
