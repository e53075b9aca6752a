package web

import (
	"net/http"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/ratelimit"
)

// The pages' rate limits (s.rules, counted by s.limiter and shared by every
// replica). Addresses are the client's as platform/clientaddr finds it behind
// the trusted proxies, IPv6 grouped by /64.

// take takes a token from each key's bucket. When refused, it sets
// Retry-After and the page answers 429 with its own message; a store that
// fails closed is an error for s.failure (503).
func (s *Service) take(w http.ResponseWriter, r *http.Request, keys ...ratelimit.Key) (ratelimit.Decision, error) {
	d, err := s.limiter.Take(r.Context(), keys...)
	if err == nil && !d.Allowed {
		retryAfter(w, d.RetryAfter)
	}
	return d, err
}

// perIP is the key of a rule for the request's client address.
func perIP(rule ratelimit.Rule, r *http.Request) ratelimit.Key {
	return ratelimit.Key{Rule: rule, Subject: clientaddr.Key(r)}
}

// loginKeys are the keys of a password check: the client address's failed
// attempts and the account's. A right password gives both tokens back.
func (s *Service) loginKeys(r *http.Request, username string) []ratelimit.Key {
	return []ratelimit.Key{perIP(s.rules.LoginPerIP, r), {Rule: s.rules.LoginPerAccount, Subject: username}}
}
