package config

import (
	"fmt"
	"regexp"
	"time"
)

// OAuth configures tokens, signing keys and clients known in advance.
type OAuth struct {
	// AccessTokenTTL is the lifetime of access tokens (GATEHOUSE_ACCESS_TOKEN_TTL), 1m..24h.
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`
	// RefreshReuseGrace (GATEHOUSE_REFRESH_REUSE_GRACE, 0..1m): a rotated-out refresh
	// token used again within this time is refused as a concurrent request; later
	// it is a replay and ends the session (MSC2964).
	RefreshReuseGrace time.Duration `yaml:"refresh_reuse_grace"`
	// ActivityFlushInterval (GATEHOUSE_ACTIVITY_FLUSH_INTERVAL, 1s..10m) is how
	// often the token service writes when OAuth and compat sessions were last
	// used (noted in memory on introspection and refresh).
	ActivityFlushInterval time.Duration `yaml:"activity_flush_interval"`
	// SigningKeyFiles are PEM private keys (RSA ≥ 2048, EC P-256/P-384) that sign
	// ID tokens; empty: keys are generated on first start and kept in the event log.
	SigningKeyFiles []string `yaml:"signing_key_files,omitempty"`
	// Clients are registered at start from configuration (the homeserver's own
	// client, first-party apps), next to those registered dynamically.
	Clients []StaticClient `yaml:"clients,omitempty"`
	// AdminClients are the ids of the clients (from Clients or registered
	// dynamically) that the client_credentials grant may give admin scopes:
	// urn:synapse:admin:*, urn:mas:admin and urn:gatehouse:admin
	// (GATEHOUSE_OAUTH_ADMIN_CLIENTS, comma-separated). No other client ever
	// gets one for itself.
	AdminClients []string `yaml:"admin_clients,omitempty"`
	// CompactSessions (GATEHOUSE_COMPACT_SESSIONS): the TOKEN stream keeps
	// only the last event of each session, which holds its whole state, and
	// ended sessions expire after EndedSessionRetention: storage follows
	// live sessions, not their history (ARCHITECTURE "Storage that follows
	// live state"). On by default. The first start with it compacts an
	// existing stream once; stop replicas of earlier versions first. It
	// cannot be turned off.
	CompactSessions bool `yaml:"compact_sessions"`
	// EndedSessionRetention (GATEHOUSE_ENDED_SESSION_RETENTION, ≥ 1h; 0:
	// 720h) is how long an ended session stays listed, with compact_sessions.
	EndedSessionRetention time.Duration `yaml:"ended_session_retention,omitempty"`
	// ActivityRetention (GATEHOUSE_ACTIVITY_RETENTION, ≥ 4h; 0: 24h) is how
	// long a batch of sessions' activity is kept in the TOKEN stream; an
	// idle session's last use is folded into its own event at half of it.
	// With compact_sessions it must be below ended_session_retention.
	ActivityRetention time.Duration `yaml:"activity_retention,omitempty"`
	// InactiveSessionExpiry (GATEHOUSE_INACTIVE_SESSION_EXPIRY, 0: off, the
	// default; otherwise ≥ 24h) ends a person's OAuth or compat session
	// unused for that long, and with it the device on the homeserver.
	InactiveSessionExpiry time.Duration `yaml:"inactive_session_expiry,omitempty"`
}

// StaticClient is an OAuth client defined in configuration.
type StaticClient struct {
	// ClientID is the client's id: letters, digits, '-' and '_'.
	ClientID string `yaml:"client_id"`
	// ClientSecret is required for client_secret_basic and client_secret_post; never logged.
	ClientSecret Secret `yaml:"client_secret"`
	// AuthMethod is the token_endpoint_auth_method: none, client_secret_basic or client_secret_post.
	AuthMethod   string   `yaml:"token_endpoint_auth_method"`
	ClientName   string   `yaml:"client_name"`
	ClientURI    string   `yaml:"client_uri"`
	RedirectURIs []string `yaml:"redirect_uris"`
	GrantTypes   []string `yaml:"grant_types"`
	// Scope is the client's registered scope (RFC 7591 §2): what the
	// client_credentials grant may give it besides admin scopes (see AdminClients).
	Scope string `yaml:"scope,omitempty"`
	// PostLogoutRedirectURIs are where RP-initiated logout may return the
	// browser (OpenID Connect RP-Initiated Logout 1.0).
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris,omitempty"`
}

var staticClientID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validateOAuth adds the problems of the oauth section.
func (p *problems) validateOAuth(o OAuth) {
	if o.AccessTokenTTL < time.Minute || o.AccessTokenTTL > 24*time.Hour {
		p.add("oauth.access_token_ttl", "%s is outside 1m..24h", o.AccessTokenTTL)
	}
	if o.RefreshReuseGrace < 0 || o.RefreshReuseGrace > time.Minute {
		p.add("oauth.refresh_reuse_grace", "%s is outside 0..1m", o.RefreshReuseGrace)
	}
	if o.EndedSessionRetention != 0 && o.EndedSessionRetention < time.Hour {
		p.add("oauth.ended_session_retention", "%s is below 1h", o.EndedSessionRetention)
	}
	if o.ActivityRetention != 0 && o.ActivityRetention < 4*time.Hour {
		p.add("oauth.activity_retention", "%s is below 4h (idle sessions are folded hourly, at half the retention)", o.ActivityRetention)
	}
	if o.CompactSessions && activityRetention(o) >= endedSessionRetention(o) {
		p.add("oauth.activity_retention", "%s must be below oauth.ended_session_retention (%s)", activityRetention(o), endedSessionRetention(o))
	}
	if o.InactiveSessionExpiry != 0 && o.InactiveSessionExpiry < 24*time.Hour {
		p.add("oauth.inactive_session_expiry", "%s is below 24h (0 turns it off)", o.InactiveSessionExpiry)
	}
	if o.ActivityFlushInterval < time.Second || o.ActivityFlushInterval > 10*time.Minute {
		p.add("oauth.activity_flush_interval", "%s is outside 1s..10m", o.ActivityFlushInterval)
	}
	seen := map[string]bool{}
	for i, c := range o.Clients {
		field := fmt.Sprintf("oauth.clients[%d]", i)
		if !staticClientID.MatchString(c.ClientID) {
			p.add(field+".client_id", "%q must be 1 to 64 letters, digits, '-' or '_'", c.ClientID)
		}
		if seen[c.ClientID] {
			p.add(field+".client_id", "%q is defined twice", c.ClientID)
		}
		seen[c.ClientID] = true
		switch c.AuthMethod {
		case "none":
			if c.ClientSecret != "" {
				p.add(field+".client_secret", "a public client (none) has no secret")
			}
		case "client_secret_basic", "client_secret_post":
			if len(c.ClientSecret) < 16 {
				p.add(field+".client_secret", "must be at least 16 characters for %s", c.AuthMethod)
			}
		default:
			p.add(field+".token_endpoint_auth_method", "%q must be none, client_secret_basic or client_secret_post", c.AuthMethod)
		}
		if len(c.GrantTypes) == 0 {
			p.add(field+".grant_types", "at least one grant type is required")
		}
		if !scopeTokens.MatchString(c.Scope) {
			p.add(field+".scope", "%q must be scope tokens separated by single spaces (RFC 6749 §3.3)", c.Scope)
		}
	}
	for i, id := range o.AdminClients {
		if !staticClientID.MatchString(id) {
			p.add(fmt.Sprintf("oauth.admin_clients[%d]", i), "%q must be 1 to 64 letters, digits, '-' or '_'", id)
		}
	}
}

// scopeTokens matches a scope (RFC 6749 §3.3), or nothing.
var scopeTokens = regexp.MustCompile(`^([\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*)?$`)

// activityRetention is oauth.activity_retention, its default when unset.
func activityRetention(o OAuth) time.Duration {
	if o.ActivityRetention == 0 {
		return 24 * time.Hour
	}
	return o.ActivityRetention
}

// DefaultEndedSessionRetention is oauth.ended_session_retention when unset:
// how long an ended session stays listed, and a browser session past its
// longest life.
const DefaultEndedSessionRetention = 720 * time.Hour

// endedSessionRetention is oauth.ended_session_retention, its default when
// unset.
func endedSessionRetention(o OAuth) time.Duration {
	if o.EndedSessionRetention == 0 {
		return DefaultEndedSessionRetention
	}
	return o.EndedSessionRetention
}

// EndedClientSessionRetention is how long a client's own session
// (client_credentials) stays once ended, given how long other ended sessions
// and the activity batches stay: a client's session is one token that
// nobody lists, so it stays only until no activity batch can name it any
// more (a batch outliving it would bring its use back into a rebuilt read
// model), an hour past the batches, which covers the flush interval.
// Otherwise a client asking for a token per request would keep a TOKEN
// subject per token for the whole retention — at 3,000 tokens a second,
// 7.8 billion, each in every NATS server's memory.
func EndedClientSessionRetention(ended, activity time.Duration) time.Duration {
	return min(ended, activity+time.Hour)
}

// EndedClientTokenSessionsKept is EndedTokenSessionsKept for a client's own
// session (EndedClientSessionRetention).
func (o OAuth) EndedClientTokenSessionsKept() time.Duration {
	if !o.CompactSessions {
		return 0
	}
	return EndedClientSessionRetention(endedSessionRetention(o), activityRetention(o))
}

// EndedTokenSessionsKept is how long the TOKEN stream keeps an ended
// session, so how long the read models that follow it keep its row: the
// retention when compact_sessions is on, 0 (for ever) when it is off.
func (o OAuth) EndedTokenSessionsKept() time.Duration {
	if !o.CompactSessions {
		return 0
	}
	return endedSessionRetention(o)
}
