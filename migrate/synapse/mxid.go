package synapse

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxUserIDLength is the longest Matrix user ID, "@localpart:server", in
// bytes, as Gatehouse (and the Matrix specification) allows it today.
const MaxUserIDLength = 255

// Reasons a Synapse MXID does not parse.
var (
	// ErrNoAt: the user ID does not start with '@'.
	ErrNoAt = errors.New("user ID does not start with @")
	// ErrNoColon: the user ID has no ':' separating localpart and server name.
	ErrNoColon = errors.New("user ID has no : separator")
	// ErrWrongServer: the user ID's server name is not the homeserver's.
	ErrWrongServer = errors.New("user ID is not on this server")
	// ErrColonInLocalpart: the user ID is on this server but its localpart
	// holds a ':' (application services registered such users).
	ErrColonInLocalpart = errors.New("user ID's localpart contains :")
)

// ParseMXID returns the localpart of mxid, a user of serverName: the text
// between the leading '@' and the FIRST ':', whose remainder must be
// serverName exactly (a server name may itself hold a port, so the last ':'
// would be wrong). The localpart keeps its case. The error wraps one of
// ErrNoAt, ErrNoColon, ErrWrongServer or ErrColonInLocalpart.
func ParseMXID(mxid, serverName string) (string, error) {
	rest, ok := strings.CutPrefix(mxid, "@")
	if !ok {
		return "", fmt.Errorf("%q: %w", mxid, ErrNoAt)
	}
	localpart, server, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("%q: %w", mxid, ErrNoColon)
	}
	if server != serverName {
		if strings.HasSuffix(rest, ":"+serverName) {
			return "", fmt.Errorf("%q: %w", mxid, ErrColonInLocalpart)
		}
		return "", fmt.Errorf("%q: %w %q", mxid, ErrWrongServer, serverName)
	}
	return localpart, nil
}

// MXID returns "@localpart:serverName".
func MXID(localpart, serverName string) string {
	return "@" + localpart + ":" + serverName
}

// LocalpartProblem says why localpart would not be accepted for a new user
// of serverName today (Gatehouse's and current Synapse's rule: only
// a-z 0-9 . _ = / + -, not all digits, "@localpart:server" at most
// MaxUserIDLength bytes), or "" when it would be. Synapse kept older
// localparts (upper case, other "historical" characters) as they were.
func LocalpartProblem(localpart, serverName string) string {
	if localpart == "" {
		return "empty"
	}
	digits := true
	for i := 0; i < len(localpart); i++ {
		c := localpart[i]
		switch {
		case c >= 'A' && c <= 'Z':
			return "upper case"
		case c >= 'a' && c <= 'z', strings.IndexByte("._=/+-", c) >= 0:
			digits = false
		case c >= '0' && c <= '9':
		default:
			r, _ := utf8.DecodeRuneInString(localpart[i:])
			return fmt.Sprintf("character %c (%U)", r, r)
		}
	}
	if digits {
		return "digits only"
	}
	if n := len(MXID(localpart, serverName)); n > MaxUserIDLength {
		return fmt.Sprintf("user ID is %d bytes, more than %d", n, MaxUserIDLength)
	}
	return ""
}
