package synapse

import (
	"time"
)

// The records the streams yield: what Gatehouse imports, already classified.
// Every user reference carries the MXID and its parsed localpart (case kept).
// Times are UTC; the zero time stands for NULL.

// User is one local account to import (appservice users and guests are not:
// see SkipReason).
type User struct {
	MXID, Localpart string
	// PasswordHash is the bcrypt hash ($2a$, $2b$ or $2y$), "" for none
	// (SSO-only users, bots, deactivated users).
	PasswordHash string
	// CreatedAt is creation_ts (seconds in Synapse).
	CreatedAt time.Time
	// Admin, Deactivated: from smallint columns.
	Admin, Deactivated bool
	// Locked (v80+), Suspended (v85+), ShadowBanned: false when absent or NULL.
	Locked, Suspended, ShadowBanned bool
	// Approved is false only when users.approved is false (NULL counts as
	// approved: the rows predate the column).
	Approved bool
	// Erased is set for users in erased_users (GDPR erasure asked for).
	Erased bool
	// PendingDeactivation is set for users in users_pending_deactivation.
	PendingDeactivation bool
	// UserType is user_type (support, bot, …), "" for a normal user.
	UserType string
	// DisplayName and AvatarURL come from the user's profiles row.
	DisplayName, AvatarURL string
	// HasExternalID is set when user_external_ids links the user to an SSO
	// provider.
	HasExternalID bool
}

// Email is one validated email address of an imported user (user_threepids
// with medium email; msisdns are skipped). Address is as stored: rows from
// old Synapse versions may differ in case from today's canonical form.
type Email struct {
	MXID, Localpart string
	Address         string
	// ValidatedAt and AddedAt are milliseconds in Synapse.
	ValidatedAt, AddedAt time.Time
}

// Device is one device of an imported user (hidden cross-signing devices and
// guest_device are skipped).
type Device struct {
	MXID, Localpart string
	DeviceID        string
	DisplayName     string
	// LastSeen is milliseconds in Synapse; zero when never seen.
	LastSeen time.Time
	// IP is a parseable address or "" (Synapse writes "-" for none).
	IP        string
	UserAgent string
}

// AccessToken is one live access token that no refresh token carries
// (puppet tokens, expired tokens and tokens of vanished devices are skipped).
type AccessToken struct {
	// ID is access_tokens.id, stable, for reports.
	ID              int64
	MXID, Localpart string
	// DeviceID is "" for a deviceless token (old registrations, admin
	// "login as user").
	DeviceID string
	// Token is the bearer token the client holds.
	Token Token
	// Format is the token's format, for counts only.
	Format TokenFormat
	// ValidUntil is valid_until_ms; zero: no expiry.
	ValidUntil time.Time
	// LastValidated is when Synapse created or last validated it; zero on
	// very old rows.
	LastValidated time.Time
}

// RefreshPair is a refresh token with the access token it carries: the live
// pair (or pairs, while the client may not have seen the newest) of a refresh
// chain. Pairs whose successor's access token was used are skipped.
type RefreshPair struct {
	// RefreshID is refresh_tokens.id.
	RefreshID       int64
	MXID, Localpart string
	DeviceID        string
	RefreshToken    Token
	// AccessTokenID is access_tokens.id of the access token.
	AccessTokenID int64
	AccessToken   Token
	// AccessValidUntil is the access token's valid_until_ms.
	AccessValidUntil time.Time
	// LastValidated is the access token's last_validated.
	LastValidated time.Time
	// ExpiresAt is the refresh token's expiry_ts; SessionExpiresAt its
	// ultimate_session_expiry_ts; zero: none.
	ExpiresAt, SessionExpiresAt time.Time
	// Superseded is set when a newer pair of the same chain exists, whose
	// access token the client has not used yet.
	Superseded bool
}

// ExternalID is one SSO link (user_external_ids): AuthProvider is Synapse's
// (oidc-<idp_id>, oidc, cas, saml), Subject the upstream subject.
// Deactivated users keep their links.
type ExternalID struct {
	AuthProvider    string
	Subject         string
	MXID, Localpart string
}

// RegistrationToken is one registration token that can still be used.
type RegistrationToken struct {
	Token Token
	// UsesAllowed is the total number of uses, 0 for unlimited.
	UsesAllowed int
	// Completed registrations used it; Pending ones are under way (and will
	// not finish once Synapse delegates authentication).
	Completed, Pending int
	// ExpiresAt is expiry_time; zero: never.
	ExpiresAt time.Time
}

// millis converts a nullable Synapse millisecond timestamp.
func millis(ms *int64) time.Time {
	if ms == nil {
		return time.Time{}
	}
	return time.UnixMilli(*ms).UTC()
}

// seconds converts a nullable Synapse second timestamp.
func seconds(s *int64) time.Time {
	if s == nil {
		return time.Time{}
	}
	return time.Unix(*s, 0).UTC()
}

// str converts a nullable text column.
func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
