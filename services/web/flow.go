package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/input"
	"gatehouse.dev/services/web/internal/render"
)

// flow is what a person is in the middle of while signing in or signing up:
// an authorization request (grant, from /authorize) or a device to connect
// (device, a user code from /link). It travels in the query string of every
// page and form on the way, and decides where to go once signed in. Only
// these two are accepted, never a URL, so there is no open redirect — except
// next, a page of this site to return to (a same-origin relative path, see
// safeNext), used when no grant or device is under way.
type flow struct {
	grant  string
	device string
	next   string
}

// invalidGrant stands for a grant parameter that is not a grant id.
const invalidGrant = "invalid"

// flowOf reads the flow from a request's query string.
func flowOf(r *http.Request) flow {
	q := r.URL.Query()
	f := flow{device: input.CleanUserCode(q.Get("device")), next: safeNext(q.Get("next"))}
	if g := q.Get("grant"); ids.Valid(g) {
		f.grant = g
	} else if g != "" {
		f.grant = invalidGrant
	}
	return f
}

// query is the flow as query parameters.
func (f flow) query() url.Values {
	q := url.Values{}
	if f.grant != "" {
		q.Set("grant", f.grant)
	}
	if f.device != "" {
		q.Set("device", f.device)
	}
	if f.next != "" {
		q.Set("next", f.next)
	}
	return q
}

// flowURL is the path of a page carrying the flow.
func (s *Service) flowURL(page string, f flow) string {
	u := s.path(page)
	if q := f.query(); len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// continueFlow sends a signed-in browser on: to the consent page of its
// authorization request, to the device it is connecting, or to the start page.
func (s *Service) continueFlow(w http.ResponseWriter, r *http.Request, f flow) {
	switch {
	case f.grant != "":
		s.redirect(w, r, "consent", url.Values{"grant": {f.grant}})
	case f.device != "":
		s.redirect(w, r, "link", url.Values{"code": {f.device}})
	case f.next != "" && strings.HasPrefix(f.next, s.base.Path):
		http.Redirect(w, r, f.next, http.StatusSeeOther)
	default:
		s.redirect(w, r, "", nil)
	}
}

// loadGrant fetches the flow's authorization request, if it has one, and
// checks that it still waits for an answer. When it does not, it shows the
// error page and reports false.
func (s *Service) loadGrant(w http.ResponseWriter, r *http.Request, f flow) (*authorizev1.Grant, bool) {
	if f.grant == "" {
		return nil, true
	}
	if f.grant == invalidGrant {
		s.grantError(w, r, http.StatusBadRequest, i18n.ErrorGrantUnknown)
		return nil, false
	}
	resp, err := s.authorize.GetGrant(r.Context(), &authorizev1.GetGrantRequest{GrantId: f.grant})
	if err != nil {
		if k := errs.KindOf(err); k == errs.KindNotFound || k == errs.KindInvalid {
			s.grantError(w, r, http.StatusNotFound, i18n.ErrorGrantUnknown)
		} else {
			s.failure(w, r, "get grant", err)
		}
		return nil, false
	}
	g := resp.GetGrant()
	switch {
	case g.GetStatus() != authorizev1.GrantStatus_GRANT_STATUS_PENDING:
		s.grantError(w, r, http.StatusConflict, i18n.ErrorGrantAnswered)
		return nil, false
	case g.GetExpiresAt() != nil && s.now().After(g.GetExpiresAt().AsTime()):
		s.grantError(w, r, http.StatusGone, i18n.ErrorGrantExpired)
		return nil, false
	}
	return g, true
}

// grantError shows the error page of a sign-in request that cannot go on.
func (s *Service) grantError(w http.ResponseWriter, r *http.Request, status int, message i18n.ID) {
	l := s.localizer(r)
	s.render(w, r, status, "error", &render.View{Title: l.T(i18n.ErrorTitle), Page: errorView{Message: l.T(message), Back: true}})
}

// clientName is how a client is named to people: its name, else its id.
func clientName(c *authorizev1.ClientInfo) string {
	if n := strings.TrimSpace(c.GetClientName()); n != "" {
		return n
	}
	return c.GetClientId()
}

// retryAfter sets Retry-After to a whole number of seconds, at least 1.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
}

// safeNext returns next when it is a page of this site to return to after
// signing in — a path starting with a single "/", with no scheme, host,
// backslash or control character — and "" otherwise, so that the sign-in page
// is no open redirect. continueFlow further requires the public URL's path.
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || next[0] != '/' || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\") || strings.ContainsFunc(next, unicode.IsControl) {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") ||
		strings.HasPrefix(u.Path, "//") || strings.Contains(u.Path, "/../") || strings.HasSuffix(u.Path, "/..") {
		return ""
	}
	return next
}
