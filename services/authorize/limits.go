package authorize

import (
	"math"
	"net/http"
	"strconv"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ratelimit"
)

// The anonymous endpoints (/oauth2/registration, /authorize, /oauth2/device)
// each record what they are asked, so each is limited per client address
// (Config.Limits; an IPv6 /64 counts as one), with the counts shared by every
// replica.

// admit takes a token from rule's bucket for r's client address. When it is
// refused it sets Retry-After and returns false with 429; when the store
// cannot be reached and the rule fails closed, false with 503.
func (s *Service) admit(w http.ResponseWriter, r *http.Request, rule ratelimit.Rule) (bool, int) {
	d, err := s.limiter.Take(r.Context(), ratelimit.Key{Rule: rule, Subject: clientaddr.Key(r)})
	switch {
	case err != nil:
		s.logger.WarnContext(r.Context(), "rate limit", "rule", rule.Name, "err", err)
		return false, errs.KindUnavailable.HTTPStatus()
	case !d.Allowed:
		w.Header().Set("Retry-After", strconv.Itoa(max(int(math.Ceil(d.RetryAfter.Seconds())), 1)))
		return false, http.StatusTooManyRequests
	}
	return true, 0
}

// tooManyText explains a refusal of admit.
func tooManyText(status int, what string) string {
	if status == http.StatusTooManyRequests {
		return "too many " + what + " from this address; try again later (Retry-After)"
	}
	return "the request cannot be taken right now; try again"
}
