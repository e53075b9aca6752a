package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"gatehouse.dev/services/web/internal/i18n"
)

// route is one row of the route table: a method and path, and the handler
// that answers it. A page for a signed-in user has user set instead of
// anyone: requireUser runs first (see signedInPage), so its handler is given
// the user and never sees a browser that is not signed in.
type route struct {
	// method is GET (which also answers HEAD) or POST.
	method string
	// path is a net/http pattern without a method, such as "/recover/{ticket}".
	path string
	// anyone answers a page that needs nobody signed in (it may look who is,
	// or, for the pages of a flow, call requireUser once it has checked the
	// request).
	anyone http.HandlerFunc
	// user answers a page for the signed-in user.
	user userHandler
	// back is, for a signed-in form (POST), the page the form is on: a browser
	// that is not signed in (any more) signs in and returns there.
	back string
}

// userHandler answers a page for the signed-in user who.
type userHandler func(w http.ResponseWriter, r *http.Request, who *signedIn)

// routes is the route table: every page of the service. Adding a page is a
// row here, its handler (in the file named after the page) and its template
// (templates/<name>.html, found by name); see ARCHITECTURE.md, "Adding a page".
func (s *Service) routes() []route {
	const get, post = http.MethodGet, http.MethodPost
	return []route{
		{method: get, path: "/{$}", anyone: s.handleHome},

		// Signing in and out (login.go, logout.go).
		{method: get, path: "/login", anyone: s.handleLoginGet},
		{method: post, path: "/login", anyone: s.handleLoginPost},
		{method: post, path: "/logout", anyone: s.handleLogoutPost},
		// The second factor after the first (login_second_factor.go), and
		// passwordless sign-in with a passkey from the sign-in page.
		{method: get, path: "/login/second-factor", anyone: s.handleSecondFactorGet},
		{method: post, path: "/login/second-factor", anyone: s.handleSecondFactorPost},
		{method: post, path: "/login/passkey", anyone: s.handlePasskeyLoginPost},

		// Registration (register.go, register_verify.go).
		{method: get, path: "/register", anyone: s.handleRegisterGet},
		{method: post, path: "/register", anyone: s.handleRegisterPost},
		{method: get, path: "/register/verify", anyone: s.handleVerifyGet},
		{method: post, path: "/register/verify", anyone: s.handleVerifyPost},
		{method: post, path: "/register/resend", anyone: s.handleResendPost},

		// Password recovery (recover.go).
		{method: get, path: "/recover", anyone: s.handleRecoverGet},
		{method: post, path: "/recover", anyone: s.handleRecoverPost},
		{method: get, path: "/recover/{ticket}", anyone: s.handleRecoverTicketGet},
		{method: post, path: "/recover/{ticket}", anyone: s.handleRecoverTicketPost},

		// Consent to an application (consent.go) and the device link
		// (link.go): requireUser once the grant or code is checked.
		{method: get, path: "/consent", anyone: s.handleConsentGet},
		{method: post, path: "/consent", anyone: s.handleConsentPost},
		{method: get, path: "/link", anyone: s.handleLinkGet},
		{method: post, path: "/link", anyone: s.handleLinkPost},
		{method: get, path: "/link/done", anyone: s.handleLinkDone},

		// Compat SSO for clients of the old login API (sso.go). The redirect
		// endpoints are literal paths per version, with and without an
		// identity provider, more specific than the token service's
		// /_matrix/client/{version}/login; only r0 and v3 exist in the Matrix
		// specification. The confirmation calls requireUser once its id is
		// checked.
		{method: get, path: "/_matrix/client/r0/login/sso/redirect", anyone: s.handleSSORedirect},
		{method: get, path: "/_matrix/client/r0/login/sso/redirect/", anyone: s.handleSSORedirect},
		{method: get, path: "/_matrix/client/v3/login/sso/redirect", anyone: s.handleSSORedirect},
		{method: get, path: "/_matrix/client/v3/login/sso/redirect/", anyone: s.handleSSORedirect},
		{method: get, path: "/complete-compat-sso/{id}", anyone: s.handleSSOGet},
		{method: post, path: "/complete-compat-sso/{id}", anyone: s.handleSSOPost},

		// Upstream identity providers (upstream.go, upstream_link.go): the
		// redirect to the provider, its callback (POST for form_post, which
		// arrives cross-site: exempt from the cross-origin protection, and
		// checked against the state bound to the browser instead), the first
		// sign-in. The back-channel logout is not a page (RegisterHTTP).
		{method: get, path: "/upstream/authorize/{provider}", anyone: s.handleUpstreamAuthorize},
		{method: get, path: "/upstream/callback/{provider}", anyone: s.handleUpstreamCallback},
		{method: post, path: "/upstream/callback/{provider}", anyone: s.handleUpstreamCallback},
		{method: get, path: "/upstream/link", anyone: s.handleUpstreamLinkGet},
		{method: post, path: "/upstream/link", anyone: s.handleUpstreamLinkPost},

		// RP-initiated logout (end_session.go): GET or POST, as the
		// specification has it (a client's POST arrives cross-site).
		{method: get, path: "/oauth2/logout", anyone: s.handleEndSession},
		{method: post, path: "/oauth2/logout", anyone: s.handleEndSession},

		// The account pages (account*.go), all for the signed-in user.
		{method: get, path: "/account", user: s.handleAccount},
		{method: get, path: "/account/{$}", anyone: s.handleAccountSlash},
		{method: post, path: "/account/profile", user: s.handleProfilePost, back: "account"},
		{method: post, path: "/account/emails/add", user: s.handleEmailAddPost, back: "account"},
		{method: get, path: "/account/emails/verify", user: s.handleEmailVerifyGet},
		{method: post, path: "/account/emails/verify", user: s.handleEmailVerifyPost, back: "account/emails/verify"},
		{method: post, path: "/account/emails/resend", user: s.handleEmailResendPost, back: "account/emails/verify"},
		{method: post, path: "/account/emails/remove", user: s.handleEmailRemovePost, back: "account"},
		{method: post, path: "/account/emails/primary", user: s.handleEmailPrimaryPost, back: "account"},
		{method: post, path: "/account/upstream/unlink", user: s.handleUnlinkPost, back: "account"},
		{method: get, path: "/account/password", user: s.handlePasswordGet},
		{method: post, path: "/account/password", user: s.handlePasswordPost, back: "account/password"},
		{method: get, path: "/account/sessions", user: s.handleSessionsGet},
		{method: get, path: "/account/sessions/device", user: s.handleDeviceGet},
		{method: get, path: "/account/sessions/end", user: s.handleSessionEndGet},
		{method: post, path: "/account/sessions/end", user: s.handleSessionEndPost, back: "account/sessions"},
		{method: get, path: "/account/tokens", user: s.handleTokensGet},
		{method: post, path: "/account/tokens", user: s.handleTokensPost, back: "account/tokens"},
		{method: post, path: "/account/tokens/revoke", user: s.handleTokenRevokePost, back: "account/tokens"},
		{method: get, path: "/account/deactivate", user: s.handleDeactivateGet},
		{method: post, path: "/account/deactivate", user: s.handleDeactivatePost, back: "account/deactivate"},
		{method: get, path: "/account/cross-signing-reset", user: s.handleCrossSigningGet},
		{method: post, path: "/account/cross-signing-reset", user: s.handleCrossSigningPost, back: "account/cross-signing-reset"},
		// Sign-in methods (account_security.go) and the step-up page.
		{method: get, path: "/account/security", user: s.handleSecurityGet},
		{method: get, path: "/account/security/totp", user: s.handleTOTPGet},
		{method: post, path: "/account/security/totp", user: s.handleTOTPPost, back: "account/security/totp"},
		{method: post, path: "/account/security/totp/remove", user: s.handleTOTPRemovePost, back: "account/security"},
		{method: post, path: "/account/security/recovery-codes", user: s.handleRecoveryCodesPost, back: "account/security"},
		{method: get, path: "/account/security/passkeys/new", user: s.handlePasskeyNewGet},
		{method: post, path: "/account/security/passkeys/new", user: s.handlePasskeyNewPost, back: "account/security/passkeys/new"},
		{method: post, path: "/account/security/passkeys/remove", user: s.handlePasskeyRemovePost, back: "account/security"},
		{method: post, path: "/account/security/passkeys/rename", user: s.handlePasskeyRenamePost, back: "account/security"},
		{method: post, path: "/account/security/require", user: s.handleRequirePost, back: "account/security"},
		{method: get, path: "/account/confirm", user: s.handleConfirmGet},
		{method: post, path: "/account/confirm", user: s.handleConfirmPost, back: "account/confirm"},
		// RFC 8615 well-known URL for changing passwords (password managers).
		{method: get, path: "/.well-known/change-password", anyone: s.handleChangePassword},

		// Anything else.
		{method: get, path: "/", anyone: s.handleNotFound},
		{method: post, path: "/", anyone: s.handleNotFound},
	}
}

// RegisterHTTP adds the static files and every page of the route table to the
// public mux. Each path answers its own methods, so that a wrong one gets the
// 405 page rather than the 404. A malformed table panics, as the mux does for
// conflicting paths.
func (s *Service) RegisterHTTP(mux *http.ServeMux) {
	mux.Handle("/static/", s.templates.Static(s.page(s.handleNotFound, nil)))
	// A provider's back-channel logout: server to server, not a page.
	mux.HandleFunc("/upstream/backchannel-logout/{provider}", s.handleBackchannelLogout)
	type methods struct{ get, post http.HandlerFunc }
	byPath := map[string]*methods{}
	var paths []string
	for _, rt := range s.routes() {
		h, err := s.handler(rt)
		if err != nil {
			panic(fmt.Sprintf("web: route %s %s: %v", rt.method, rt.path, err))
		}
		m := byPath[rt.path]
		if m == nil {
			m = &methods{}
			byPath[rt.path] = m
			paths = append(paths, rt.path)
		}
		slot := &m.get
		if rt.method == http.MethodPost {
			slot = &m.post
		}
		if *slot != nil {
			panic(fmt.Sprintf("web: route %s %s is listed twice", rt.method, rt.path))
		}
		*slot = h
	}
	for _, p := range paths {
		mux.Handle(p, s.page(byPath[p].get, byPath[p].post))
	}
}

// handler checks a row of the route table and returns its handler: for a
// signed-in page, requireUser in front of it.
func (s *Service) handler(rt route) (http.HandlerFunc, error) {
	switch {
	case rt.method != http.MethodGet && rt.method != http.MethodPost:
		return nil, fmt.Errorf("method %q: want GET or POST", rt.method)
	case (rt.anyone == nil) == (rt.user == nil):
		return nil, fmt.Errorf("want exactly one of anyone and user")
	case rt.user != nil && (rt.method == http.MethodPost) != (rt.back != ""):
		return nil, fmt.Errorf("a signed-in form (POST), and only one, names the page it is on (back)")
	case rt.anyone != nil && rt.back != "":
		return nil, fmt.Errorf("back is for signed-in forms")
	case rt.user != nil:
		return s.signedInPage(rt.back, rt.user), nil
	}
	return rt.anyone, nil
}

// signedInPage runs requireUser in front of a page for the signed-in user. A
// browser that is not signed in is sent to sign in and come back: to the same
// page for a GET (with its query), to back, the page the form is on, for a
// POST — whose body is parsed first, so that a malformed one is a bad request
// whoever sends it.
func (s *Service) signedInPage(back string, h userHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		next := s.path(back)
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
				return
			}
		} else {
			next = s.path(strings.TrimPrefix(r.URL.Path, "/"))
			if r.URL.RawQuery != "" {
				next += "?" + r.URL.RawQuery
			}
		}
		if safeNext(next) == "" {
			next = s.path("account")
		}
		who, ok := s.requireUser(w, r, "login", url.Values{"next": {next}})
		if !ok {
			return
		}
		// A sensitive action refused for want of a recent authentication
		// comes back here after the step-up (failure).
		h(w, r.WithContext(context.WithValue(r.Context(), returnPageKey{}, next)), who)
	}
}

// csp is the Content-Security-Policy of every page: no inline script or
// style, images from here or https (client logos), no framing. Forms may post
// only here, except on the consent page (cspConsent), whose answer redirects
// to the client: browsers apply form-action to the redirects after a form
// submission, and the client's redirect URI is not known when the page is made.
const (
	cspBase    = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https:; base-uri 'none'; frame-ancestors 'none'"
	csp        = cspBase + "; form-action 'self'"
	cspConsent = cspBase
)

// page wraps the GET (and HEAD) and POST handlers of one address: security
// headers and no caching on every answer, and for POST the cross-origin
// protection of net/http before the handler (which checks the CSRF token).
func (s *Service) page(get, post http.HandlerFunc) http.Handler {
	var protected http.Handler
	if post != nil {
		protected = s.cop.Handler(post)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		switch {
		case (r.Method == http.MethodGet || r.Method == http.MethodHead) && get != nil:
			get(w, r)
		case r.Method == http.MethodPost && post != nil:
			protected.ServeHTTP(w, r)
		default:
			var allow []string
			if get != nil {
				allow = append(allow, "GET", "HEAD")
			}
			if post != nil {
				allow = append(allow, "POST")
			}
			h.Set("Allow", strings.Join(allow, ", "))
			s.errorPage(w, r, http.StatusMethodNotAllowed, i18n.ErrorMethodTitle, i18n.ErrorMethod)
		}
	})
}

func (s *Service) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, r, http.StatusNotFound, i18n.ErrorNotFoundTitle, i18n.ErrorNotFound)
}

// path is the absolute path of a page under the public URL, e.g. "/login".
func (s *Service) path(page string) string { return s.base.Path + page }

// redirect answers 303 See Other to a page under the public URL with query q.
func (s *Service) redirect(w http.ResponseWriter, r *http.Request, page string, q url.Values) {
	target := s.path(page)
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// returnPageKey keys the page a signed-in request returns to in its context.
type returnPageKey struct{}
