// Package browser is the browser session aggregate of the accounts service: a
// signed-in browser, one aggregate per session (subject
// accounts.browser.<session id>). Like package user it is pure: a reducer that
// folds a session's events into a State, decisions that turn a command into
// events, and the rules for secrets, lifetimes and client details.
//
// The rules:
//
//   - A session starts for a registered user who is neither locked
//     (errs.KindFailedPrecondition) nor deactivated (likewise); an unknown user
//     is errs.KindNotFound. The cookie secret is SecretBytes random bytes in
//     unpadded base64url; only its SHA-256 (HashSecret) is stored.
//   - A session is live until it ends (BrowserSessionEnded) or expires: MaxAge
//     after it started however busy, or MaxIdle after its last activity.
//     A locked or deactivated user's sessions do not authenticate while the
//     user is; deactivation ends them for good.
//   - Ending an ended session changes nothing, so a retried sign-out succeeds.
//   - IP addresses must parse (net/netip) and are stored in canonical form; the
//     empty address means unknown. User agents are free text from browsers: they
//     are cleaned (valid UTF-8, no control characters, at most
//     MaxUserAgentLength bytes) rather than refused.
package browser

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/user"
)

// Lifetimes of a session. Both are checked when a session authenticates; the
// idle limit uses the last activity recorded in the read model, which lags
// the real one by at most the activity flush interval (30 s), negligible
// against days.
const (
	// MaxAge is how long a session lasts after it started, however busy:
	// the user proves who they are again at least this often.
	MaxAge = 30 * 24 * time.Hour
	// MaxIdle is how long a session lasts without being used.
	MaxIdle = 7 * 24 * time.Hour
)

// Limits on session input.
const (
	// SecretBytes is the entropy of a cookie secret.
	SecretBytes = 32
	// MaxUserAgentLength is the longest user agent kept, in bytes.
	MaxUserAgentLength = 512
)

// secretLength is the length of a secret in unpadded base64url.
var secretLength = base64.RawURLEncoding.EncodedLen(SecretBytes)

// NewSecret returns a fresh cookie secret and its hash.
func NewSecret() (secret, hash string) {
	b := make([]byte, SecretBytes)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret is the stored form of a cookie secret: the lower-case hex
// SHA-256 of its text.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// WellFormedSecret reports whether s looks like a secret from NewSecret, so
// that garbage is refused before any lookup.
func WellFormedSecret(s string) bool {
	if len(s) != secretLength {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}

// NormalizeIP returns an IP address in canonical form, "" for "", or an
// errs.KindInvalid error (Field "ip_address").
func NormalizeIP(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return "", errs.InvalidField("ip_address", "ip_address must be an IPv4 or IPv6 address")
	}
	return addr.Unmap().String(), nil
}

// CleanUserAgent makes a browser's user agent safe to store and show: valid
// UTF-8, control characters replaced by spaces, surrounding space trimmed,
// cut to MaxUserAgentLength bytes on a character boundary.
func CleanUserAgent(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > MaxUserAgentLength {
		cut := MaxUserAgentLength
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimSpace(s[:cut])
	}
	return s
}

// Live reports whether a session that has not ended, started at started and
// last active at lastActive, is still live at now.
func Live(started, lastActive, now time.Time) bool {
	return now.Before(ExpiresAt(started, lastActive))
}

// ExpiresAt is when a session started at started and last active at
// lastActive expires unless it is used again.
func ExpiresAt(started, lastActive time.Time) time.Time {
	return minTime(started.Add(MaxAge), lastActive.Add(MaxIdle))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// State is a browser session as its events describe it. Activity is not part
// of it: it is recorded in batches on other subjects and only the read model
// follows it.
type State struct {
	// ID is the session's id (a ULID); empty until the session starts.
	ID string
	// UserID is the signed-in user.
	UserID string
	// SecretHash is HashSecret of the cookie secret.
	SecretHash string
	// UserAgent and IPAddress describe the browser when the session started.
	UserAgent, IPAddress string
	// StartedAt is when the session started.
	StartedAt time.Time
	// Ended reports whether the session ended; EndReason says why.
	Ended     bool
	EndReason string
	// Version is the sequence of the last record applied, 0 for none.
	Version uint64
}

// Exists reports whether the session has started.
func (s State) Exists() bool { return s.ID != "" }

// Fold replays a session's history, oldest first.
func Fold(history []eventlog.Record) State {
	var s State
	for _, rec := range history {
		s.Apply(rec)
	}
	return s
}

// Apply applies one record. Every record advances Version; unknown event
// types change nothing else.
func (s *State) Apply(rec eventlog.Record) {
	s.Version = rec.Seq
	switch ev := rec.Event.(type) {
	case *eventsv1.BrowserSessionStarted:
		s.ID = ev.GetSessionId()
		s.UserID = ev.GetUserId()
		s.SecretHash = ev.GetSecretHash()
		s.UserAgent = ev.GetUserAgent()
		s.IPAddress = ev.GetIpAddress()
		s.StartedAt = rec.OccurredAt()
	case *eventsv1.BrowserSessionEnded:
		if !s.Ended {
			s.Ended, s.EndReason = true, ev.GetReason()
		}
	case *eventsv1.BrowserSessionReauthenticated:
		// Only the read model keeps when and how; the session itself is unchanged.
	}
}

// StartCommand asks to sign a user in on a browser.
type StartCommand struct {
	// SessionID is the new session's id, chosen by the caller (a ULID).
	SessionID string
	// SecretHash is HashSecret of the cookie secret, chosen by the caller.
	SecretHash string
	// UserAgent is the browser's user agent; it is cleaned, never refused.
	UserAgent string
	// IPAddress is the browser's address, or empty.
	IPAddress string
	// UpstreamProvider and UpstreamSID name the upstream session the person
	// signed in with (from the authentication proof), if any.
	UpstreamProvider, UpstreamSID string
	// AuthMethods are how the person proved who they are (from the proof).
	AuthMethods []string
}

// Start decides starting session s for user u.
func Start(s State, u user.State, cmd StartCommand) ([]proto.Message, error) {
	if s.Exists() {
		return nil, errs.AlreadyExists("This session already exists")
	}
	if cmd.SessionID == "" || len(cmd.SecretHash) != hex.EncodedLen(sha256.Size) {
		return nil, errs.Internalf("start browser session: session id %q and a secret hash are required", cmd.SessionID)
	}
	ip, err := NormalizeIP(cmd.IPAddress)
	if err != nil {
		return nil, err
	}
	switch {
	case !u.Exists():
		return nil, errs.NotFound("No such user")
	case u.Deactivated:
		return nil, errs.FailedPrecondition("This account has been deactivated")
	case u.Locked:
		return nil, errs.FailedPrecondition("This account is locked")
	}
	return []proto.Message{&eventsv1.BrowserSessionStarted{
		SessionId:        cmd.SessionID,
		UserId:           u.ID,
		SecretHash:       cmd.SecretHash,
		UserAgent:        CleanUserAgent(cmd.UserAgent),
		IpAddress:        ip,
		UpstreamProvider: cmd.UpstreamProvider,
		UpstreamSid:      cmd.UpstreamSID,
		AuthMethods:      cmd.AuthMethods,
	}}, nil
}

// Reasons a session ends.
const (
	// ReasonLogout: the user signed out of this browser.
	ReasonLogout = "logout"
	// ReasonEnded: someone else (the user from another browser, an
	// administrator) ended it.
	ReasonEnded = "ended"
	// ReasonDeactivated: the account was deactivated.
	ReasonDeactivated = "deactivated"
	// ReasonPasswordChanged: the password changed and other sessions were ended.
	ReasonPasswordChanged = "password_changed"
	// ReasonPasswordRecovered: the password was reset through a recovery
	// link; every session of the user ended.
	ReasonPasswordRecovered = "password_recovered"
	// ReasonUpstreamLogout: the upstream identity provider the person signed
	// in with ended its session (back-channel logout).
	ReasonUpstreamLogout = "upstream_logout"
)

// End decides ending a session for reason.
func End(s State, reason string) ([]proto.Message, error) {
	return EndWith(s, reason, false)
}

// EndWith decides ending a session for reason; endStarted asks for the
// OAuth and compat sessions started from it to end too.
func EndWith(s State, reason string, endStarted bool) ([]proto.Message, error) {
	if !s.Exists() {
		return nil, errs.NotFound("No such session")
	}
	if reason == "" {
		return nil, errs.Internalf("end browser session %s: a reason is required", s.ID)
	}
	if s.Ended {
		return nil, nil
	}
	return []proto.Message{&eventsv1.BrowserSessionEnded{SessionId: s.ID, UserId: s.UserID, Reason: reason, EndStartedSessions: endStarted}}, nil
}
