package eventsv1

// The streams of the event contract, written by hand next to the generated
// messages: which JetStream stream each service owns, the prefix of its
// subjects, its aggregate types (the second subject token) and the event
// types each aggregate holds. It is the one place these names live. A service
// builds its own stream's configuration and its subject filters from it, and
// reads another service's stream through it (a service may import the
// contract, never another service). The event log refuses to append an
// event the contract does not list for its aggregate, and the guards in
// platform/eventcheck and platform/projection/conformance use it to find
// consumers that forget an event type.

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Stream is one service's event stream.
type Stream struct {
	// Name of the JetStream stream, for example "ACCOUNTS".
	Name string
	// Prefix is the first token of every subject, for example "accounts".
	Prefix string
	// Aggregates are the aggregate types stored in the stream.
	Aggregates []Aggregate
	// ShortLived marks a stream of aggregates that end on their own
	// (pending authorization and device requests, unused client
	// registrations): its events expire and its size is bounded, so
	// anonymous traffic cannot fill the store. It shares its prefix with the
	// service's durable stream, which no longer stores these subjects.
	ShortLived bool
	// TTLs marks a durable stream some of whose events expire (Write.TTL in
	// platform/eventlog): the start of an anonymous flow that, once it
	// completes, is recorded by a durable event of its own.
	TTLs bool
}

// Filters are the subjects the stream stores: its whole prefix, or only its
// aggregates' subjects when another stream of the contract shares the prefix.
func (s Stream) Filters() []string {
	for _, o := range Streams() {
		if o.Name != s.Name && o.Prefix == s.Prefix {
			out := make([]string, len(s.Aggregates))
			for i, a := range s.Aggregates {
				out[i] = a.Subjects()
			}
			return out
		}
	}
	return []string{s.All()}
}

// Aggregate is one aggregate type of a stream. Each instance has its own
// subject, <prefix>.<type>.<id>.
type Aggregate struct {
	// Prefix is the stream's subject prefix.
	Prefix string
	// Type is the aggregate type, the second subject token, for example "user".
	Type string
	// Events are the event types an instance's subject may hold.
	Events []proto.Message
}

// All is the subject filter of every event in the stream.
func (s Stream) All() string { return s.Prefix + ".>" }

// Aggregate returns the stream's aggregate of type typ.
func (s Stream) Aggregate(typ string) (Aggregate, bool) {
	for _, a := range s.Aggregates {
		if a.Type == typ {
			return a, true
		}
	}
	return Aggregate{}, false
}

// EventsOn lists the event types stored on subjects matching any of the
// filters ("accounts.user.*", "accounts.>"), each once, in contract order.
func (s Stream) EventsOn(filters ...string) []proto.Message {
	var out []proto.Message
	for _, a := range s.Aggregates {
		for _, f := range filters {
			if a.matches(f) {
				out = append(out, a.Events...)
				break
			}
		}
	}
	return out
}

// matches reports whether a subject filter selects the aggregate's subjects.
func (a Aggregate) matches(filter string) bool {
	toks := strings.Split(filter, ".")
	if len(toks) == 0 || toks[0] != a.Prefix && toks[0] != "*" && toks[0] != ">" {
		return false
	}
	if toks[0] == ">" || len(toks) >= 2 && toks[1] == ">" {
		return true
	}
	return len(toks) == 3 && (toks[1] == a.Type || toks[1] == "*")
}

// Subject is the subject of one instance.
func (a Aggregate) Subject(id string) string { return a.Prefix + "." + a.Type + "." + id }

// Subjects is the subject filter of every instance.
func (a Aggregate) Subjects() string { return a.Prefix + "." + a.Type + ".*" }

// Holds reports whether the aggregate's subjects may hold events of the type.
func (a Aggregate) Holds(name protoreflect.FullName) bool {
	for _, ev := range a.Events {
		if ev.ProtoReflect().Descriptor().FullName() == name {
			return true
		}
	}
	return false
}

func aggregate(prefix, typ string, events ...proto.Message) Aggregate {
	return Aggregate{Prefix: prefix, Type: typ, Events: events}
}

// The ACCOUNTS stream: users, their claims, browser sessions, registration
// tokens, self-service registrations and the key of proofs of sign-in.
var (
	AccountsUser = aggregate("accounts", "user",
		&UserRegistered{}, &PasswordChanged{}, &UserLocked{}, &UserUnlocked{}, &UserDeactivated{}, &UserReactivated{},
		&DisplayNameSet{}, &AdminSet{}, &EmailAdded{}, &EmailRemoved{}, &PrimaryEmailSet{},
		&UpstreamLinked{}, &UpstreamUnlinked{}, &UserImported{})
	AccountsUsername     = aggregate("accounts", "username", &UsernameReserved{})
	AccountsEmail        = aggregate("accounts", "email", &EmailReserved{}, &EmailReleased{})
	AccountsBrowser      = aggregate("accounts", "browser", &BrowserSessionStarted{}, &BrowserSessionEnded{}, &BrowserSessionReauthenticated{})
	AccountsActivity     = aggregate("accounts", "activity", &BrowserSessionsActive{})
	AccountsRegToken     = aggregate("accounts", "regtoken", &RegistrationTokenCreated{}, &RegistrationTokenUsed{}, &RegistrationTokenRevoked{}, &RegistrationTokenUnrevoked{}, &RegistrationTokenUpdated{})
	AccountsRegistration = aggregate("accounts", "registration", &RegistrationStarted{}, &RegistrationCompleted{})
	AccountsKeys         = aggregate("accounts", "keys", &AuthProofKeyGenerated{}, &ClaimKeyGenerated{})
	// AccountsUpstream is the claim of an upstream identity (one user each).
	AccountsUpstream = aggregate("accounts", "upstream", &UpstreamLinkReserved{}, &UpstreamLinkReleased{})
	// AccountsBackchannelLogout is a provider's logout token, received once.
	AccountsBackchannelLogout = aggregate("accounts", "bclogout", &UpstreamLogoutReceived{})
	// AccountsFactors is a user's passkeys, TOTP, recovery codes and
	// second-factor requirement (accounts.factors.<user_id>).
	AccountsFactors = aggregate("accounts", "factors",
		&PasskeyAdded{}, &PasskeyUsed{}, &PasskeyRenamed{}, &PasskeyRemoved{}, &TOTPEnabled{}, &TOTPUsed{}, &TOTPDisabled{},
		&RecoveryCodesGenerated{}, &RecoveryCodeUsed{}, &SecondFactorRequirementSet{}, &SecondFactorsReset{})

	// RegistrationStarted expires (registrations.go in the accounts
	// service); RegistrationCompleted stays.
	Accounts = Stream{Name: "ACCOUNTS", Prefix: "accounts", TTLs: true, Aggregates: []Aggregate{
		AccountsUser, AccountsUsername, AccountsEmail, AccountsBrowser, AccountsActivity, AccountsRegToken, AccountsRegistration,
		AccountsKeys, AccountsUpstream, AccountsBackchannelLogout, AccountsFactors,
	}}
)

// The AUTHORIZE stream: OAuth clients that are kept, the key client secrets
// are derived from and the client assertions used at any endpoint; and the
// AUTHORIZE_PENDING stream, on the same prefix: authorization grants, device
// authorizations and dynamically registered clients no person has approved
// yet, which expire.
var (
	AuthorizeClient = aggregate("authorize", "client", &ClientRegistered{})
	AuthorizeKeys   = aggregate("authorize", "keys", &ClientSecretKeyGenerated{})
	// AuthorizeAssertion is a client assertion's jti, claimed once.
	AuthorizeAssertion = aggregate("authorize", "assertion", &ClientAssertionClaimed{})

	Authorize = Stream{Name: "AUTHORIZE", Prefix: "authorize", TTLs: true, Aggregates: []Aggregate{
		AuthorizeClient, AuthorizeKeys, AuthorizeAssertion,
	}}

	AuthorizeGrant  = aggregate("authorize", "grant", &GrantRequested{}, &GrantApproved{}, &GrantDenied{}, &GrantExchanged{})
	AuthorizeDevice = aggregate("authorize", "device",
		&DeviceAuthorizationRequested{}, &DeviceApproved{}, &DeviceDenied{}, &DeviceTokenIssued{})
	// AuthorizePendingClient is a dynamically registered client until a
	// person approves it (it is then registered on AuthorizeClient), or
	// until it expires unused.
	AuthorizePendingClient = aggregate("authorize", "pendingclient", &ClientRegistrationPending{})

	AuthorizePending = Stream{Name: "AUTHORIZE_PENDING", Prefix: "authorize", ShortLived: true, Aggregates: []Aggregate{
		AuthorizeGrant, AuthorizeDevice, AuthorizePendingClient,
	}}
)

// The NOTIFY stream: the key codes and recovery tickets are derived from;
// and the NOTIFY_PENDING stream, on the same prefix: email verifications,
// which anonymous requests start and which expire once no one can use them.
// (NOTIFY held the verifications before the split; those it still stores
// are no longer read.)
var (
	NotifyKeys = aggregate("notify", "keys", &VerificationKeyGenerated{})

	Notify = Stream{Name: "NOTIFY", Prefix: "notify", Aggregates: []Aggregate{NotifyKeys}}

	NotifyVerification = aggregate("notify", "verification",
		&VerificationStarted{}, &VerificationCodeReissued{}, &VerificationAttemptFailed{}, &VerificationConfirmed{},
		&EmailDelivered{}, &EmailDeliveryFailed{})

	NotifyPending = Stream{Name: "NOTIFY_PENDING", Prefix: "notify", ShortLived: true, Aggregates: []Aggregate{NotifyVerification}}
)

// The TOKEN stream: sessions and their tokens, session activity, the signing
// keys, the client assertions used before they were claimed on AUTHORIZE (no
// longer written) and compat login tokens.
var (
	TokenSession    = aggregate("token", "session", &SessionStarted{}, &TokensIssued{}, &SessionRenamed{}, &SessionEnded{}, &SessionImported{}, &SessionSnapshotted{})
	TokenActivity   = aggregate("token", "activity", &SessionsActive{})
	TokenKeys       = aggregate("token", "keys", &SigningKeysGenerated{})
	TokenAssertion  = aggregate("token", "assertion", &ClientAssertionUsed{})
	TokenLoginToken = aggregate("token", "logintoken", &LoginTokenIssued{}, &LoginTokenUsed{})

	// Every session event after the first carries the session's whole
	// state (SessionSnapshot), so the stream may keep only the last message
	// of each subject (the token service's CompactSessions).
	Token = Stream{Name: "TOKEN", Prefix: "token", Aggregates: []Aggregate{
		TokenSession, TokenActivity, TokenKeys, TokenAssertion, TokenLoginToken,
	}}
)

// The AUDIT stream: the audit trail of what matters (sign-ins, sessions,
// consents, revocations, administrators' acts), one entry per audited event,
// appended by each service's audit reactor from its own stream. Its events
// expire after the configured retention (audit.retention), so the trail is
// bounded by time, not by history.
var (
	AuditAccounts = aggregate("audit", "accounts", &AccountsAuditRecorded{})
	AuditToken    = aggregate("audit", "token", &TokenAuditRecorded{})

	Audit = Stream{Name: "AUDIT", Prefix: "audit", Aggregates: []Aggregate{AuditAccounts, AuditToken}}
)

// Parts are the messages of the event files that are parts of events, never
// appended on their own.
var Parts = []proto.Message{&SessionSnapshot{}, &SessionToken{}, &AuditEntry{}, &AuditRecord{}, &SessionLastUse{}}

// PersonalKeys is the stream of personal keys (platform/personal): one
// message per key, the key sealed with the key-encryption key, on
// personalkeys.user.<user_id> (a person's) or personalkeys.flow.<id> (an
// anonymous flow's, with a message TTL). It holds no events: it keeps at most
// one message per subject and allows deletes, so that erasing a person
// destroys their key. Every service that seals personal data reads it; the
// accounts service creates and destroys users' keys, notify and accounts the
// keys of their anonymous flows.
var PersonalKeys = struct{ Name, Prefix string }{Name: "PERSONALKEYS", Prefix: "personalkeys"}

// Streams lists every stream of the contract.
func Streams() []Stream {
	return []Stream{Accounts, Authorize, AuthorizePending, Notify, NotifyPending, Token, Audit}
}

// AggregateOf finds the aggregate whose subjects hold events of the type.
func AggregateOf(name protoreflect.FullName) (Stream, Aggregate, bool) {
	for _, s := range Streams() {
		for _, a := range s.Aggregates {
			if a.Holds(name) {
				return s, a, true
			}
		}
	}
	return Stream{}, Aggregate{}, false
}
