package session

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/compat"
	"gatehouse.dev/services/token/internal/entitle"
)

// Personal sessions hold personal access tokens (mpt_): a token a person
// makes for themselves, or an administrator for a bot, acting as one user
// with a fixed scope until it expires or is revoked. There is no refresh
// token; regenerating replaces the token.

// PersonalKind is the kind of personal sessions.
const PersonalKind = "personal"

// MaxPersonalTTL bounds how long a personal access token may be valid for
// when it expires at all (as MAS: an unsigned 32-bit number of seconds).
const MaxPersonalTTL = (1<<32 - 1) * time.Second

// The Matrix scopes a personal token may carry, in their stable and
// unstable (MSC2967) forms.
const (
	matrixAPI          = "urn:matrix:client:api:*"
	unstableMatrixAPI  = "urn:matrix:org.matrix.msc2967.client:api:*"
	devicePrefix       = "urn:matrix:client:device:"
	unstableDevicePref = "urn:matrix:org.matrix.msc2967.client:device:"
)

// PersonalScope checks a personal session's scope: the Matrix API scope
// and at most one device, and admin scopes (urn:gatehouse:admin,
// urn:mas:admin, urn:synapse:admin:*) only when the user it acts as is an
// administrator; it must grant something (the API or administration). It
// returns the scope, each token once, and the device, if any.
func PersonalScope(scope string, actorAdmin bool) (string, string, error) {
	var (
		out      []string
		device   string
		grants   bool
		devScope bool
	)
	for _, tok := range strings.Fields(scope) {
		switch id, ok := cutDevice(tok); {
		case tok == matrixAPI || tok == unstableMatrixAPI:
			grants = true
		case ok:
			if devScope {
				return "", "", errs.InvalidField("scope", "A personal session has at most one device.")
			}
			if !compat.ValidDeviceID(id) {
				return "", "", errs.InvalidField("scope", fmt.Sprintf("%q is not a valid device scope.", tok))
			}
			devScope, device = true, id
		case entitle.IsAdmin(tok):
			if !actorAdmin {
				return "", "", errs.InvalidField("scope", fmt.Sprintf("%q is an admin scope: only an administrator's personal session may have it.", tok))
			}
			grants = true
		default:
			return "", "", errs.InvalidField("scope", fmt.Sprintf("%q is not a scope a personal session can have (the Matrix API, a device, or an admin scope).", tok))
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	if !grants {
		return "", "", errs.InvalidField("scope", "A personal session needs the Matrix API scope ("+matrixAPI+") or an admin scope.")
	}
	if devScope && !slices.Contains(out, matrixAPI) && !slices.Contains(out, unstableMatrixAPI) {
		return "", "", errs.InvalidField("scope", "A device scope needs the Matrix API scope.")
	}
	return strings.Join(out, " "), device, nil
}

// cutDevice returns the device id of a device scope token.
func cutDevice(tok string) (string, bool) {
	if id, ok := strings.CutPrefix(tok, devicePrefix); ok {
		return id, true
	}
	return strings.CutPrefix(tok, unstableDevicePref)
}

// CheckName checks a personal session's name: 1 to MaxDisplayName
// characters, no control characters.
func CheckName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errs.InvalidField("name", "A personal session needs a name.")
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errs.InvalidField("name", "A name cannot contain control characters.")
	case utf8.RuneCountInString(name) > MaxDisplayName:
		return errs.InvalidField("name", fmt.Sprintf("A name has at most %d characters.", MaxDisplayName))
	}
	return nil
}

// CheckTTL checks how long a personal token is to be valid for; zero means
// it never expires.
func CheckTTL(d time.Duration) error {
	if d < 0 || d > MaxPersonalTTL || (d > 0 && d < time.Second) {
		return errs.InvalidField("expires_in", "expires_in must be a whole number of seconds between 1 and 4294967295, or unset for no expiry.")
	}
	return nil
}

// Regenerate decides replacing a live personal session's token: the new
// token (next: its hash and expiry) is issued and the current one revoked.
// owner, when set, must be the session's user.
func Regenerate(s State, owner string, next *eventsv1.TokensIssued) ([]proto.Message, error) {
	switch {
	case !s.Exists(), owner != "" && s.Started.GetUserId() != owner:
		return nil, errs.NotFound("No such session.")
	case s.Started.GetKind() != PersonalKind:
		return nil, errs.FailedPrecondition("Only a personal session's token can be regenerated.")
	case s.Ended:
		return nil, errs.FailedPrecondition("This personal session has been revoked.")
	}
	ev := proto.Clone(next).(*eventsv1.TokensIssued)
	ev.SessionId = s.Started.GetSessionId()
	ev.RefreshHash, ev.ReplacesRefreshHash = "", ""
	ev.RevokesAccessHash = s.CurrentAccess
	return []proto.Message{ev}, nil
}
