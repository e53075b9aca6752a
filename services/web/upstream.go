package web

import (
	"net/http"
	"strings"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
	"gatehouse.dev/services/web/internal/upstreamstate"
)

// Sign-in with upstream identity providers (upstream.providers).
//
// This service runs the browser's side; the accounts service talks to the
// provider and decides who signs in (see accounts' upstream.go):
//
//  1. A button on the sign-in and registration pages opens
//     /upstream/authorize/<provider> (with the flow: an authorization request,
//     a device, a page to return to). accounts.StartUpstreamSignIn gives the
//     provider's authorization URL with a fresh state, nonce and PKCE
//     verifier; they go, with the flow, into a sealed cookie
//     (internal/upstreamstate, 15 minutes), and the browser to the provider.
//  2. The provider sends the browser back to /upstream/callback/<provider>
//     (GET with response_mode query; POST with form_post, which arrives
//     cross-site: no SameSite=Lax cookie comes with it, so the page posts the
//     same fields again from this site, where the cookie comes along). The
//     state must be the cookie's, for this provider, in time; the cookie is
//     then spent. An error from the provider (access_denied, …) ends here.
//  3. accounts.CompleteUpstreamSignIn redeems the code with the nonce and
//     verifier: a linked identity gets a proof and a browser session, and
//     the flow goes on; an unlinked one a ticket (a cookie of its own, sealed
//     by accounts) and the first sign-in page (upstream_link.go).
//
// Every failure is a page that says what happened, never a 500 for the
// provider's or the person's doing, and nothing is created or linked.

// upstreamProvider is a provider as the pages show it.
type upstreamProvider struct {
	ID, HumanName, Brand string
}

// providerButton is a "Continue with …" button.
type providerButton struct {
	URL, Label, Brand string
}

// providerButtons are the buttons of the configured providers, carrying the flow.
func (s *Service) providerButtons(l i18n.Localizer, f flow) []providerButton {
	var out []providerButton
	for _, p := range s.cfg.Upstream {
		out = append(out, providerButton{URL: s.flowURL("upstream/authorize/"+p.ID, f), Label: l.T(i18n.UpstreamContinueWith, p.HumanName), Brand: brandClass(p.Brand)})
	}
	return out
}

// brandClass keeps a brand name to a CSS class suffix.
func brandClass(brand string) string {
	switch b := strings.ToLower(brand); b {
	case "google", "github", "gitlab", "apple", "facebook", "twitter", "microsoft":
		return b
	}
	return ""
}

// upstreamByID returns a configured provider.
func (s *Service) upstreamByID(id string) (upstreamProvider, bool) {
	for _, p := range s.cfg.Upstream {
		if p.ID == id {
			return p, true
		}
	}
	return upstreamProvider{}, false
}

// upstreamError shows the page of a failed upstream sign-in.
func (s *Service) upstreamError(w http.ResponseWriter, r *http.Request, status int, p upstreamProvider, message i18n.ID, args ...any) {
	l := s.localizer(r)
	s.render(w, r, status, "error", &render.View{Title: l.T(i18n.UpstreamErrorTitle, p.HumanName), Page: errorView{Message: l.T(message, args...)}})
}

// handleUpstreamAuthorize is GET /upstream/authorize/{provider}: the redirect to the provider.
func (s *Service) handleUpstreamAuthorize(w http.ResponseWriter, r *http.Request) {
	p, ok := s.upstreamByID(r.PathValue("provider"))
	if !ok {
		s.errorPage(w, r, http.StatusNotFound, i18n.ErrorNotFoundTitle, i18n.UpstreamUnknown)
		return
	}
	f := flowOf(r)
	if _, ok := s.loadGrant(w, r, f); !ok {
		return
	}
	start, err := s.accounts.StartUpstreamSignIn(r.Context(), &accountsv1.StartUpstreamSignInRequest{ProviderId: p.ID})
	if err != nil {
		s.upstreamRefused(w, r, p, err)
		return
	}
	sealed, err := upstreamstate.Seal(s.keys.Upstream, upstreamstate.Attempt{
		Provider: p.ID, State: start.GetState(), Nonce: start.GetNonce(), Verifier: start.GetCodeVerifier(),
		Grant: f.grant, Device: f.device, Next: f.next, Expires: s.now().Add(upstreamstate.TTL).Unix(),
	})
	if err != nil {
		s.failure(w, r, "seal upstream attempt", errs.Internalf("%w", err))
		return
	}
	s.cookies.Set(w, cookie.Upstream, sealed, int(upstreamstate.TTL.Seconds()))
	http.Redirect(w, r, start.GetAuthorizationUrl(), http.StatusSeeOther)
}

// repostView is the page that posts a form_post callback again from this site.
type repostView struct {
	Action   string
	Provider string
	Fields   []hiddenField
}

type hiddenField struct{ Name, Value string }

// callbackFields are the parameters of a callback that are posted again.
var callbackFields = []string{"code", "state", "error", "error_description", "iss"}

// handleUpstreamCallback is GET and POST /upstream/callback/{provider}.
func (s *Service) handleUpstreamCallback(w http.ResponseWriter, r *http.Request) {
	p, ok := s.upstreamByID(r.PathValue("provider"))
	if !ok {
		s.errorPage(w, r, http.StatusNotFound, i18n.ErrorNotFoundTitle, i18n.UpstreamUnknown)
		return
	}
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
			return
		}
		params = r.PostForm
	}
	raw := s.cookies.Get(r, cookie.Upstream)
	if raw == "" && r.Method == http.MethodPost && params.Get("continued") == "" {
		// A form_post from the provider's site: the SameSite=Lax cookie did
		// not come along. Post the same fields again from this site.
		v := repostView{Action: s.path("upstream/callback/" + p.ID), Provider: p.HumanName}
		for _, name := range callbackFields {
			if val := params.Get(name); val != "" {
				v.Fields = append(v.Fields, hiddenField{Name: name, Value: truncate(val, 4096)})
			}
		}
		v.Fields = append(v.Fields, hiddenField{Name: "continued", Value: "1"})
		l := s.localizer(r)
		s.render(w, r, http.StatusOK, "upstream_repost", &render.View{Title: l.T(i18n.UpstreamRepostTitle), Page: v})
		return
	}
	attempt, ok := upstreamstate.Open(s.keys.Upstream, raw, p.ID, s.now())
	if !ok || !attempt.StateMatches(params.Get("state")) {
		s.upstreamError(w, r, http.StatusBadRequest, p, i18n.UpstreamExpired)
		return
	}
	s.cookies.Clear(w, cookie.Upstream) // one callback per attempt
	f := flow{grant: attempt.Grant, device: attempt.Device, next: safeNext(attempt.Next)}
	if e := params.Get("error"); e != "" {
		if e == "access_denied" {
			s.upstreamError(w, r, http.StatusForbidden, p, i18n.UpstreamDenied, p.HumanName)
		} else {
			s.upstreamError(w, r, http.StatusBadGateway, p, i18n.UpstreamProviderError, p.HumanName, errorCode(e))
		}
		return
	}
	resp, err := s.accounts.CompleteUpstreamSignIn(r.Context(), &accountsv1.CompleteUpstreamSignInRequest{
		ProviderId: p.ID, Code: params.Get("code"), Nonce: attempt.Nonce, CodeVerifier: attempt.Verifier,
	})
	if err != nil {
		s.upstreamRefused(w, r, p, err)
		return
	}
	if resp.GetUser() == nil {
		s.cookies.Set(w, cookie.UpstreamTicket, resp.GetTicket(), int(ticketLife.Seconds()))
		s.redirect(w, r, "upstream/link", f.query())
		return
	}
	if err := s.replaceSession(w, r, resp.GetUser(), resp.GetAuthProof()); err != nil {
		s.sessionFailed(w, r, f, err)
		return
	}
	s.continueFlow(w, r, f)
}

// replaceSession signs the user in on this browser, ending the session it
// had (one session per browser).
func (s *Service) replaceSession(w http.ResponseWriter, r *http.Request, user *accountsv1.User, proof string) error {
	if who, err := s.currentUser(w, r); err == nil && who != nil {
		if _, err := s.accounts.EndBrowserSession(s.asUser(r.Context(), who), &accountsv1.EndBrowserSessionRequest{
			SessionId: who.session.GetSessionId(), UserId: who.user.GetId(),
		}); err != nil {
			s.logger.WarnContext(r.Context(), "the browser's earlier session was not ended", "err", err)
		}
	}
	return s.startSession(w, r, user, proof)
}

// upstreamRefused shows accounts' refusal of an upstream sign-in.
func (s *Service) upstreamRefused(w http.ResponseWriter, r *http.Request, p upstreamProvider, err error) {
	l := s.localizer(r)
	switch errs.KindOf(err) {
	case errs.KindUnavailable:
		retryAfter(w, 10e9)
		s.upstreamError(w, r, http.StatusServiceUnavailable, p, i18n.UpstreamUnavailable, p.HumanName)
	case errs.KindPermissionDenied:
		s.upstreamError(w, r, http.StatusForbidden, p, i18n.UpstreamNotVerified, p.HumanName)
	case errs.KindInvalid:
		s.upstreamError(w, r, http.StatusBadRequest, p, i18n.UpstreamExpired)
	case errs.KindNotFound:
		s.upstreamError(w, r, http.StatusNotFound, p, i18n.UpstreamUnknown)
	case errs.KindFailedPrecondition:
		if claim, ok := errs.FactOf(err, "claim"); ok {
			s.upstreamError(w, r, http.StatusForbidden, p, i18n.UpstreamMissingClaim, p.HumanName, l.T(claimName(claim)))
			return
		}
		s.upstreamError(w, r, http.StatusForbidden, p, i18n.UpstreamBlocked)
	default:
		s.failure(w, r, "upstream sign-in", err)
	}
}

// claimName names a claim of the mapping in the person's language.
func claimName(claim string) i18n.ID {
	switch claim {
	case "localpart":
		return i18n.UpstreamClaimLocalpart
	case "displayname":
		return i18n.UpstreamClaimName
	case "email":
		return i18n.UpstreamClaimEmail
	}
	return i18n.UpstreamClaimSubject
}

// errorCode keeps a provider's error code printable: letters, digits and '_', at most 64.
func errorCode(e string) string {
	e = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return -1
	}, e)
	return truncate(e, 64)
}

// handleBackchannelLogout is POST /upstream/backchannel-logout/{provider}
// (OpenID Connect Back-Channel Logout 1.0 §2.5): the provider posts a
// logout_token; accounts validates it and ends the sessions. It answers 200
// with no body, 400 with a JSON error for a token that is not valid, 503 when
// it cannot tell. It is not a page: the provider calls it server to server.
func (s *Service) handleBackchannelLogout(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		h.Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Refused tokens are counted per address: each may make accounts fetch
	// the provider's keys again (an unknown key id), so nobody may have it
	// do so without end. A valid token gives its token back.
	limit, err := s.limiter.Take(r.Context(), perIP(s.rules.BackchannelLogout, r))
	switch {
	case err != nil:
		retryAfter(w, 5e9)
		writeLogoutError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	case !limit.Allowed:
		retryAfter(w, limit.RetryAfter)
		writeLogoutError(w, http.StatusTooManyRequests, "invalid_request", "too many invalid logout tokens; try again later")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeLogoutError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	_, err = s.accounts.UpstreamBackchannelLogout(r.Context(), &accountsv1.UpstreamBackchannelLogoutRequest{
		ProviderId: r.PathValue("provider"), LogoutToken: r.PostForm.Get("logout_token"),
	})
	if err == nil {
		s.limiter.Refund(r.Context(), limit)
		w.WriteHeader(http.StatusOK)
		return
	}
	if k := errs.KindOf(err); k == errs.KindUnavailable || k == errs.KindConflict || k == errs.KindInternal {
		s.limiter.Refund(r.Context(), limit) // not the caller's doing
	}
	switch errs.KindOf(err) {
	case errs.KindInvalid, errs.KindNotFound, errs.KindFailedPrecondition, errs.KindPermissionDenied:
		writeLogoutError(w, http.StatusBadRequest, "invalid_request", errs.PublicMessage(err))
	case errs.KindUnavailable, errs.KindConflict:
		retryAfter(w, 5e9)
		writeLogoutError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
	default:
		s.logger.ErrorContext(r.Context(), "back-channel logout", "err", err)
		writeLogoutError(w, http.StatusInternalServerError, "server_error", "")
	}
}

// writeLogoutError writes a back-channel logout's error (§2.8).
func writeLogoutError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := `{"error":"` + code + `"`
	if description != "" {
		body += `,"error_description":` + jsonString(description)
	}
	_, _ = w.Write([]byte(body + "}"))
}

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(" ")
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
