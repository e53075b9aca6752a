package web

import (
	"net/http"
	"strings"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// loginView is the data of the sign-in page.
type loginView struct {
	Action      string
	Subtitle    string
	Username    render.Field
	Password    render.Field
	RegisterURL string
	// Captcha is the CAPTCHA's widget, once failures ask for it.
	Captcha *captchaView
	// Providers are the upstream identity providers' buttons.
	Providers []providerButton
	// Passkey signs in with a passkey alone (offered in the username's
	// autofill, and as a button), nil when it cannot start.
	Passkey *passkeyForm
}

// handleLoginGet shows the sign-in form, or sends a browser that is signed
// in already straight on.
func (s *Service) handleLoginGet(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	g, ok := s.loadGrant(w, r, f)
	if !ok {
		return
	}
	who, err := s.currentUser(w, r)
	if err != nil {
		s.failure(w, r, "authenticate browser session", err)
		return
	}
	if who != nil {
		s.continueFlow(w, r, f)
		return
	}
	s.renderLogin(w, r, http.StatusOK, f, g, loginErrors{}, s.usernameFromHint(g.GetLoginHint()))
}

// loginErrors are the messages of a sign-in form: next to the username, next
// to the password, next to the CAPTCHA, and about the whole form.
type loginErrors struct{ username, password, captcha, form string }

// handleLoginPost checks a username and password and starts a browser session.
func (s *Service) handleLoginPost(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	g, ok := s.loadGrant(w, r, f)
	if !ok {
		return
	}
	who, err := s.currentUser(w, r)
	if err != nil {
		s.failure(w, r, "authenticate browser session", err)
		return
	}
	if who != nil {
		// Signed in meanwhile (in another tab): one session per browser.
		s.continueFlow(w, r, f)
		return
	}
	l := s.localizer(r)
	typed := truncate(strings.TrimSpace(r.PostFormValue("username")), 255)
	password := r.PostFormValue("password")
	if !s.csrf.Check(r, "login") {
		s.renderLogin(w, r, http.StatusForbidden, f, g, loginErrors{form: l.T(i18n.ErrorFormExpired)}, typed)
		return
	}
	var e loginErrors
	if typed == "" {
		e.username = l.T(i18n.LoginUsernameNone)
	}
	if password == "" {
		e.password = l.T(i18n.LoginPasswordNone)
	}
	if e != (loginErrors{}) {
		s.renderLogin(w, r, http.StatusBadRequest, f, g, e, typed)
		return
	}
	username := s.normalizeUsername(typed)
	if s.cfg.LoginWithEmail && strings.Contains(typed, "@") && !strings.HasPrefix(strings.TrimSpace(typed), "@") {
		// An email address: sign in as its owner. An unknown address is left as
		// it is, so the answer is the same "wrong username or password".
		if u, err := s.accounts.GetUserByEmail(r.Context(), &accountsv1.GetUserByEmailRequest{Email: strings.TrimSpace(typed)}); err == nil {
			username = u.GetUser().GetUsername()
		}
	}
	// After failures the CAPTCHA comes first (captcha.login_after_failures).
	if s.captchaAtLogin(r, username) {
		if text, status := s.checkCaptcha(r); text != "" {
			s.renderLogin(w, r, status, f, g, loginErrors{captcha: text}, typed)
			return
		}
	}
	// The attempt takes a token from the address's and the account's
	// budgets before the password is checked (so concurrent guesses cannot
	// overtake the count) and gives them back unless the password is wrong:
	// only failures are counted.
	limit, err := s.take(w, r, s.loginKeys(r, username)...)
	if err != nil {
		s.failure(w, r, "rate limit sign-in", err)
		return
	}
	if !limit.Allowed {
		s.renderLogin(w, r, http.StatusTooManyRequests, f, g, loginErrors{form: l.T(i18n.LoginRateLimited)}, typed)
		return
	}
	resp, err := s.accounts.VerifyPassword(r.Context(), &accountsv1.VerifyPasswordRequest{Username: username, Password: password, SecondFactorCapable: true})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindUnauthenticated, errs.KindNotFound, errs.KindInvalid:
			// One answer for an unknown user and a wrong password.
			s.renderLogin(w, r, http.StatusUnauthorized, f, g, loginErrors{password: l.T(i18n.LoginWrong)}, typed)
		case errs.KindFailedPrecondition, errs.KindPermissionDenied:
			// Only said after a correct password (accounts checks that first).
			s.limiter.Refund(r.Context(), limit)
			s.renderLogin(w, r, http.StatusForbidden, f, g, loginErrors{form: l.T(i18n.LoginBlocked)}, typed)
		default:
			s.limiter.Refund(r.Context(), limit)
			s.failure(w, r, "verify password", err)
		}
		return
	}
	s.limiter.Refund(r.Context(), limit)
	if err := s.startSession(w, r, resp.GetUser(), resp.GetAuthProof()); err != nil {
		s.sessionFailed(w, r, f, err)
		return
	}
	s.continueFlow(w, r, f)
}

// renderLogin shows the sign-in form with the username filled in and its
// errors. The password is never shown again.
func (s *Service) renderLogin(w http.ResponseWriter, r *http.Request, status int, f flow, g *authorizev1.Grant, e loginErrors, username string) {
	l := s.localizer(r)
	v := loginView{
		Action:      s.flowURL("login", f),
		RegisterURL: s.flowURL("register", f),
		Providers:   s.providerButtons(l, f),
		Username: render.Field{
			ID: "username", Name: "username", Type: "text", Label: l.T(i18n.FieldUsername), Autocomplete: "username webauthn",
			Autocapitalize: "none", Value: username, Error: e.username, Required: true, MaxLength: 255,
		},
		Password: render.Field{
			ID: "password", Name: "password", Type: "password", Label: l.T(i18n.FieldPassword), Autocomplete: "current-password",
			Error: e.password, Required: true,
		},
	}
	switch {
	case g != nil:
		v.Subtitle = l.T(i18n.LoginFor, clientName(g.GetClient()))
	case f.device != "":
		v.Subtitle = l.T(i18n.LoginForDevice)
	}
	if pf, err := s.passkeyGet(w, r, &accountsv1.BeginPasskeySignInRequest{}, s.flowURL("login/passkey", f), "login", true); err == nil {
		v.Passkey = pf
	} else if errs.KindOf(err) != errs.KindFailedPrecondition { // none where the public URL is an IP address
		s.logger.WarnContext(r.Context(), "passkey sign-in not offered", "err", err)
	}
	render.FocusFirst(&v.Username, &v.Password)
	if e.form != "" && username != "" {
		v.Username.Autofocus, v.Password.Autofocus = false, true
	}
	if e.captcha != "" || s.captchaAtLogin(r, s.normalizeUsername(username)) {
		v.Captcha = s.showCaptcha(w, r, e.captcha)
	}
	s.render(w, r, status, "login", &render.View{Title: l.T(i18n.LoginTitle), CSRF: s.csrf.Token(w, r, "login"), Error: e.form, Page: v})
}

// normalizeUsername turns what a person typed into a localpart: "@alice",
// "@alice:example.org" (of this server) and "Alice" all mean "alice".
// Anything else is passed on as typed, and fails like a wrong password.
func (s *Service) normalizeUsername(typed string) string {
	u := strings.TrimPrefix(typed, "@")
	if s.cfg.ServerName != "" {
		u = strings.TrimSuffix(u, ":"+s.cfg.ServerName)
	}
	return strings.ToLower(u)
}

// usernameFromHint reads an OIDC login_hint of the form mxid:@alice:server
// (of this server) as the username to fill in.
func (s *Service) usernameFromHint(hint string) string {
	mxid, ok := strings.CutPrefix(hint, "mxid:")
	if !ok || !strings.HasPrefix(mxid, "@") {
		return ""
	}
	local, server, ok := strings.Cut(mxid[1:], ":")
	if !ok || local == "" || (s.cfg.ServerName != "" && server != s.cfg.ServerName) {
		return ""
	}
	return truncate(local, 255)
}
