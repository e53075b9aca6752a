// Package caller says who is calling a gRPC method: which kind of caller (the
// homeserver, an administrator, one of Gatehouse's services) and, when the web
// service acts for a signed-in person, which person. The platform's gRPC
// interceptor authenticates every call and puts the identity in the context;
// handlers read it from there and never from anything the caller merely
// claims.
package caller

import (
	"context"
	"time"

	"gatehouse.dev/platform/errs"
	authv1 "gatehouse.dev/proto/gatehouse/auth/v1"
)

// Kind is a kind of caller, as the access option of every RPC names them.
type Kind = authv1.Caller

// The kinds of callers.
const (
	Homeserver = authv1.Caller_CALLER_HOMESERVER
	Admin      = authv1.Caller_CALLER_ADMIN
	Accounts   = authv1.Caller_CALLER_ACCOUNTS
	Authorize  = authv1.Caller_CALLER_AUTHORIZE
	Token      = authv1.Caller_CALLER_TOKEN
	Notify     = authv1.Caller_CALLER_NOTIFY
	Web        = authv1.Caller_CALLER_WEB
	// WebUser is the web service acting for a signed-in person; an Identity
	// has Kind Web and a User instead.
	WebUser = authv1.Caller_CALLER_WEB_USER
)

// Names maps the name of each caller that holds a credential of its own to
// its kind: "admin", the services, and "homeserver".
var names = map[string]Kind{
	"homeserver": Homeserver,
	"admin":      Admin,
	"accounts":   Accounts,
	"authorize":  Authorize,
	"token":      Token,
	"notify":     Notify,
	"web":        Web,
}

// ByName returns the kind of caller a name stands for ("web", "admin", ...).
func ByName(name string) (Kind, bool) {
	k, ok := names[name]
	return k, ok
}

// Name returns the name of a kind of caller ("web", "admin", ...), or "" for
// WebUser and unknown kinds.
func Name(k Kind) string {
	for n, v := range names {
		if v == k {
			return n
		}
	}
	return ""
}

// Identity is an authenticated caller.
type Identity struct {
	// Kind is what the caller is. The web service acting for a person is Web
	// with a User.
	Kind Kind
	// User is the signed-in person the web service acts for, from a browser
	// session the callee verified; nil otherwise.
	User *User
	// Token is, for an administrator who called with an OAuth access token
	// or a personal access token (the admin API forwards the bearer it was
	// given), who that token stands for; nil for the admin CLI's credential.
	Token *TokenSubject
}

// TokenSubject is who an administrator's bearer token stands for: a client
// acting for itself (client_credentials) or a user.
type TokenSubject struct {
	// ClientID is the client a client_credentials token was issued to; empty
	// for a user's token.
	ClientID string
	// UserID is the administrator whose token it is; empty for a client's.
	UserID string
	// SessionID is the token's session.
	SessionID string
}

// Actor names the subject in events: "client:<id>" or "user:<id>".
func (t *TokenSubject) Actor() string {
	if t.UserID != "" {
		return "user:" + t.UserID
	}
	return "client:" + t.ClientID
}

// User is a signed-in person, as their browser session shows them.
type User struct {
	// ID is the user's id.
	ID string
	// Username is the Matrix localpart.
	Username string
	// Admin says whether the user is an administrator.
	Admin bool
	// SessionID is the browser session the call came with.
	SessionID string
	// AuthenticatedAt is when the person last proved who they are in that session.
	AuthenticatedAt time.Time
	// AuthMethods is how they did ("password", "passkey", "totp", ...).
	AuthMethods []string
}

// Is reports whether the identity is of kind k; for WebUser, whether it is the
// web service acting for a person.
func (id Identity) Is(k Kind) bool {
	if k == WebUser {
		return id.Kind == Web && id.User != nil
	}
	return id.Kind == k
}

// Actor names the identity in events and the audit log: "user:<id>" for a
// person acting through the web service, "admin:cli" for the admin CLI's
// credential, "admin:user:<id>" or "admin:client:<id>" for an administrator's
// bearer token (the admin API), otherwise the caller's name ("web", "token",
// "homeserver").
func (id Identity) Actor() string {
	switch {
	case id.User != nil:
		return "user:" + id.User.ID
	case id.Kind == Admin && id.Token != nil:
		return "admin:" + id.Token.Actor()
	case id.Kind == Admin:
		return "admin:cli"
	default:
		if n := Name(id.Kind); n != "" {
			return n
		}
		return "unknown"
	}
}

type ctxKey struct{}

// NewContext returns ctx carrying the identity.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the identity the interceptor authenticated, if any.
func From(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// Actor names whoever ctx's call comes from, for events: see Identity.Actor.
// Work the process does on its own (no caller) is "system".
func Actor(ctx context.Context) string {
	if id, ok := From(ctx); ok {
		return id.Actor()
	}
	return "system"
}

// UserFor returns the user a call concerns. When the web service acts for a
// signed-in person, that is the person: a request naming someone else is
// refused, and one naming nobody means them. Any other caller the access table
// let through must name the user.
func UserFor(ctx context.Context, requested string) (string, error) {
	id, _ := From(ctx)
	if id.User != nil {
		if requested != "" && requested != id.User.ID {
			return "", errs.PermissionDenied("this call may only concern the signed-in user")
		}
		return id.User.ID, nil
	}
	if requested == "" {
		return "", errs.InvalidField("user_id", "user_id is required")
	}
	return requested, nil
}

// SignedIn returns the signed-in person the web service acts for, or a
// permission error when the call does not come with one.
func SignedIn(ctx context.Context) (*User, error) {
	if id, ok := From(ctx); ok && id.User != nil {
		return id.User, nil
	}
	return nil, errs.PermissionDenied("this call needs a signed-in user")
}

// RequireRecentAuth refuses a call made for a signed-in person whose browser
// session last authenticated longer than window before now: a sensitive
// action (a password, an address or a factor changed, a deactivation, a
// cross-signing reset) needs a step-up first. PERMISSION_DENIED with the fact
// errs.FactStepUp = "required". Other callers (administrators, services
// acting on their own) pass.
func RequireRecentAuth(ctx context.Context, window time.Duration, now time.Time) error {
	id, _ := From(ctx)
	if id.User == nil || window <= 0 || now.Sub(id.User.AuthenticatedAt) <= window {
		return nil
	}
	e := errs.PermissionDenied("Confirm it is you: sign in again to do this.")
	e.Facts = map[string]string{errs.FactStepUp: "required"}
	return e
}
