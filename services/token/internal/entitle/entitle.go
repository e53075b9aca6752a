// Package entitle decides which scopes a client acting for itself — the
// client_credentials grant (RFC 6749 §4.4) — may have. Never a person's:
// OpenID Connect's (openid, email, profile, …) and every Matrix client scope
// (urn:matrix:…) need a person who consented. Admin scopes
// (urn:synapse:admin:*, urn:mas:admin, Gatehouse's own urn:gatehouse:admin,
// and anything under them) only for the clients the deployment's
// configuration names as admin clients. Anything else only as the client
// registered it (its scope metadata, RFC 7591 §2). The rest is invalid_scope.
package entitle

import (
	"slices"
	"strings"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/oautherr"
)

// The admin scopes.
const (
	// SynapseAdmin is access to Synapse's admin API.
	SynapseAdmin = "urn:synapse:admin:*"
	// MASAdmin is matrix-authentication-service's admin API scope, recognised
	// so that no client gets it by accident.
	MASAdmin = "urn:mas:admin"
	// GatehouseAdmin is the scope of Gatehouse's own admin API.
	GatehouseAdmin = "urn:gatehouse:admin"
)

// adminPrefixes start every admin scope.
var adminPrefixes = []string{"urn:synapse:admin:", MASAdmin, GatehouseAdmin}

// userScopes are OpenID Connect's scopes (Core §5.4, §11), which describe a person.
var userScopes = []string{"openid", "email", "profile", "phone", "address", "offline_access"}

// userPrefixes start the Matrix client scopes (MSC2967, stable and unstable).
var userPrefixes = []string{"urn:matrix:"}

// Client is what the decision looks at of a client.
type Client struct {
	// Admin says the configuration names the client as an admin client.
	Admin bool
	// Registered is the scope the client registered (space-separated), if any.
	Registered string
}

// IsAdmin reports whether tok is an admin scope.
func IsAdmin(tok string) bool { return hasPrefix(tok, adminPrefixes) }

// IsUser reports whether tok is a scope only a person can grant.
func IsUser(tok string) bool { return slices.Contains(userScopes, tok) || hasPrefix(tok, userPrefixes) }

// ClientScope returns the scope a client acting for itself gets for the
// requested one: its tokens once each, in the order asked. A token it may not
// have makes the whole request an invalid_scope error naming that token.
func ClientScope(requested string, c Client) (string, error) {
	registered := strings.Fields(c.Registered)
	var out []string
	for _, tok := range strings.Fields(requested) {
		if err := check(tok); err != nil {
			return "", err
		}
		switch {
		case IsUser(tok):
			return "", oautherr.Errorf(oautherr.InvalidScope, "%q is a person's scope: a client acting for itself cannot have it", tok)
		case IsAdmin(tok):
			if !c.Admin {
				return "", oautherr.Errorf(oautherr.InvalidScope, "%q is an admin scope: only the admin clients the configuration names can have it", tok)
			}
		case !slices.Contains(registered, tok):
			return "", oautherr.Errorf(oautherr.InvalidScope, "%q is not a scope this client registered", tok)
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	return strings.Join(out, " "), nil
}

// check validates a scope token's characters (RFC 6749 §3.3).
func check(tok string) error {
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return errs.Coded(errs.KindInvalid, oautherr.InvalidScope, "a scope token holds a character RFC 6749 does not allow")
		}
	}
	return nil
}

// hasPrefix reports whether s starts with one of the prefixes.
func hasPrefix(s string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(s, p) })
}
