package authorize

import (
	"fmt"
	"net/http"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ratelimit"
)

// The anonymous endpoints (/oauth2/registration, /authorize, /oauth2/device)
// each record what they are asked, so each is limited per client address
// (Config.Limits; an IPv6 /64 counts as one), with the counts shared by every
// replica.

// admit takes a token from rule's bucket for r's client address. Refused, it
// is a rate-limited error with the refusal as its message and the wait as
// its RetryAfter (429 with Retry-After); when the store cannot be reached and
// the rule fails closed, an unavailable error (503). The HTTP edge writes
// either in the endpoint's form.
func (s *Service) admit(r *http.Request, rule ratelimit.Rule, refusal string) error {
	d, err := s.limiter.Take(r.Context(), ratelimit.Key{Rule: rule, Subject: clientaddr.Key(r)})
	switch {
	case err != nil:
		return errs.Wrap(errs.KindUnavailable, "the request cannot be taken right now; try again", fmt.Errorf("rate limit %s: %w", rule.Name, err))
	case !d.Allowed:
		e := errs.RateLimited(refusal)
		e.RetryAfter = d.RetryAfter
		return e
	}
	return nil
}

// tooMany is the refusal of an OAuth endpoint's rate limit.
func tooMany(what string) string {
	return "too many " + what + " from this address; try again later (Retry-After)"
}
