package web

import (
	"net/http"
	"strings"
	"time"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/input"
	"gatehouse.dev/services/web/internal/render"
)

// Registration takes three steps: the form (username, email, password), then
// the 6-digit code the notify service emails, then the account is created and
// signed in. Between the first two the registration waits in the accounts
// service (StartRegistration keeps the username, the address and the
// password's hash); the browser holds only a cookie naming the registration
// and the verification, so any replica can take the next step, and the
// password is never kept by this service. The accounts service creates the
// user only against the notify service's confirmation of the code.

// registerView is the data of the registration page.
type registerView struct {
	Action   string
	Subtitle string
	Username render.Field
	Email    render.Field
	Password render.Field
	Confirm  render.Field
	// Token is shown when registration requires a registration token.
	Token     render.Field
	NeedToken bool
	TermsURI  string
	Terms     bool
	TermsErr  string
	SignInURL string
	// Captcha is the CAPTCHA's widget, when one is configured.
	Captcha *captchaView
	// Providers are the upstream identity providers' buttons.
	Providers []providerButton
}

// registerForm is what a person typed on the registration page.
type registerForm struct {
	username, email, password, confirm, token string
	terms                                     bool
	errors                                    map[string]string
}

// registrationClosed answers when the deployment does not let people create accounts.
func (s *Service) registrationClosed(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Registration != "closed" {
		return false
	}
	s.errorPage(w, r, http.StatusForbidden, i18n.RegisterClosedTitle, i18n.RegisterClosedBody)
	return true
}

func (s *Service) handleRegisterGet(w http.ResponseWriter, r *http.Request) {
	if s.registrationClosed(w, r) {
		return
	}
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
	s.renderRegister(w, r, http.StatusOK, f, g, registerForm{username: s.usernameFromHint(g.GetLoginHint())}, "")
}

func (s *Service) handleRegisterPost(w http.ResponseWriter, r *http.Request) {
	if s.registrationClosed(w, r) {
		return
	}
	f := flowOf(r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	g, ok := s.loadGrant(w, r, f)
	if !ok {
		return
	}
	l := s.localizer(r)
	form := registerForm{
		username: strings.ToLower(truncate(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("username")), "@"), 255)),
		email:    truncate(strings.TrimSpace(r.PostFormValue("email")), 254),
		password: r.PostFormValue("password"),
		confirm:  r.PostFormValue("password_confirm"),
		token:    truncate(strings.TrimSpace(r.PostFormValue("registration_token")), 128),
		terms:    r.PostFormValue("terms") == "accept",
		errors:   map[string]string{},
	}
	if !s.csrf.Check(r, "register") {
		s.renderRegister(w, r, http.StatusForbidden, f, g, form, l.T(i18n.ErrorFormExpired))
		return
	}
	if id := input.CheckUsername(form.username, s.cfg.ServerName); id != "" {
		form.errors["username"] = l.T(id)
	}
	if !input.ValidEmail(form.email) {
		form.errors["email"] = l.T(i18n.RegisterEmailBad)
	}
	if s.cfg.Registration == "token" && form.token == "" {
		form.errors["registration_token"] = l.T(i18n.RegisterTokenRequired)
	}
	if id := s.passwords.Check(form.password, form.username); id != "" {
		form.errors["password"] = l.T(id)
	} else if form.confirm != form.password {
		form.errors["password_confirm"] = l.T(i18n.RegisterConfirmWrong)
	}
	if s.cfg.TermsURI != "" && !form.terms {
		form.errors["terms"] = l.T(i18n.RegisterTermsNeeded)
	}
	if len(form.errors) > 0 {
		s.renderRegister(w, r, http.StatusBadRequest, f, g, form, "")
		return
	}
	// The CAPTCHA comes before anything is looked up or recorded: the form
	// is whole, and its token is asked about once.
	if s.captcha != nil {
		if text, status := s.checkCaptcha(r); text != "" {
			form.errors["captcha"] = text
			s.renderRegister(w, r, status, f, g, form, "")
			return
		}
	}
	ctx := r.Context()
	// Usernames are public in Matrix, so saying that one is taken reveals
	// nothing; whether an address has an account is only said once the
	// person has proved the address is theirs.
	_, err := s.accounts.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: form.username})
	switch {
	case err == nil:
		form.errors["username"] = l.T(i18n.RegisterUsernameTaken)
		s.renderRegister(w, r, http.StatusConflict, f, g, form, "")
		return
	case errs.KindOf(err) != errs.KindNotFound:
		s.failure(w, r, "check username", err)
		return
	}
	// The homeserver may hold users Gatehouse does not know (appservices, old accounts).
	avail, err := s.token.IsLocalpartAvailable(ctx, &tokenv1.IsLocalpartAvailableRequest{Localpart: form.username})
	switch {
	case err != nil:
		s.failure(w, r, "ask the homeserver about the username", err)
		return
	case !avail.GetAvailable():
		form.errors["username"] = l.T(i18n.RegisterUsernameTaken)
		s.renderRegister(w, r, http.StatusConflict, f, g, form, "")
		return
	}
	limit, err := s.take(w, r, perIP(s.rules.Registration, r))
	if err != nil {
		s.failure(w, r, "rate limit registration", err)
		return
	}
	if !limit.Allowed {
		s.renderRegister(w, r, http.StatusTooManyRequests, f, g, form, l.T(i18n.RegisterRateLimited))
		return
	}
	reg, err := s.accounts.StartRegistration(ctx, &accountsv1.StartRegistrationRequest{
		Username: form.username, Password: form.password, Email: form.email,
	})
	if err != nil {
		s.limiter.Refund(ctx, limit) // no registration started
		s.registrationRefused(w, r, f, g, form, err)
		return
	}
	if s.cfg.Registration == "token" {
		// The use is spent once accounts has accepted the form and before the
		// email is sent: a form accounts refuses costs nothing, a registration
		// that is never finished costs one use of the token.
		if _, err := s.accounts.UseRegistrationToken(ctx, &accountsv1.UseRegistrationTokenRequest{Token: form.token}); err != nil {
			if errs.KindOf(err) != errs.KindFailedPrecondition {
				s.failure(w, r, "use registration token", err)
				return
			}
			form.errors["registration_token"] = l.T(i18n.RegisterTokenInvalid)
			s.renderRegister(w, r, http.StatusForbidden, f, g, form, "")
			return
		}
	}
	started, err := s.notify.StartVerification(ctx, &notifyv1.StartVerificationRequest{
		Email: form.email, Purpose: notifyv1.Purpose_PURPOSE_REGISTRATION, ClientIp: clientaddr.String(r), Locale: l.Lang,
	})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindInvalid:
			form.errors["email"] = l.T(i18n.RegisterEmailBad)
			s.renderRegister(w, r, http.StatusBadRequest, f, g, form, "")
		case errs.KindRateLimited:
			form.errors["email"] = tryLater(l, err)
			s.renderRegister(w, r, http.StatusTooManyRequests, f, g, form, "")
		default:
			s.failure(w, r, "start email verification", err)
		}
		return
	}
	pending := reg.GetRegistration().GetRegistrationId() + "." + started.GetVerificationId()
	s.cookies.Set(w, cookie.Registration, pending, int(pendingTTL.Seconds()))
	s.redirect(w, r, "register/verify", f.query())
}

// pendingTTL is how long the registration cookie lives: the accounts
// service's registrations expire after 30 minutes too.
const pendingTTL = 30 * time.Minute

// registrationRefused shows the form again with the accounts service's
// reason next to the field at fault.
func (s *Service) registrationRefused(w http.ResponseWriter, r *http.Request, f flow, g *authorizev1.Grant, form registerForm, err error) {
	l := s.localizer(r)
	if form.errors == nil {
		form.errors = map[string]string{}
	}
	status := http.StatusConflict
	switch errs.KindOf(err) {
	case errs.KindAlreadyExists:
		if errs.FieldOf(err) == "email" {
			form.errors["email"] = l.T(i18n.RegisterEmailTaken)
		} else {
			form.errors["username"] = l.T(i18n.RegisterUsernameTaken)
		}
	case errs.KindInvalid:
		name := errs.FieldOf(err)
		if name != "username" && name != "email" {
			name = "password"
		}
		form.errors[name] = errs.PublicMessage(err)
		status = http.StatusBadRequest
	default:
		s.failure(w, r, "register", err)
		return
	}
	s.renderRegister(w, r, status, f, g, form, "")
}

// renderRegister shows the registration form with what was typed (except
// the passwords) and its errors.
func (s *Service) renderRegister(w http.ResponseWriter, r *http.Request, status int, f flow, g *authorizev1.Grant, form registerForm, formErr string) {
	l := s.localizer(r)
	server := s.serverName()
	v := registerView{
		Action:    s.flowURL("register", f),
		SignInURL: s.flowURL("login", f),
		Providers: s.providerButtons(l, f),
		Subtitle:  l.T(i18n.RegisterIntro, server),
		Username: render.Field{
			ID: "username", Name: "username", Type: "text", Label: l.T(i18n.FieldUsername), Hint: l.T(i18n.FieldUsernameHint, server),
			Autocomplete: "username", Autocapitalize: "none", Value: form.username, Error: form.errors["username"], Required: true, MaxLength: 255,
		},
		Email: render.Field{
			ID: "email", Name: "email", Type: "email", Label: l.T(i18n.FieldEmail), Hint: l.T(i18n.FieldEmailHint),
			Autocomplete: "email", Value: form.email, Error: form.errors["email"], Required: true, MaxLength: 254,
		},
		Password: render.Field{
			ID: "password", Name: "password", Type: "password", Label: l.T(i18n.FieldNewPassword), Hint: l.T(i18n.FieldNewPasswordHint),
			Autocomplete: "new-password", Error: form.errors["password"], Required: true,
		},
		Confirm: render.Field{
			ID: "password_confirm", Name: "password_confirm", Type: "password", Label: l.T(i18n.FieldConfirmPassword),
			Autocomplete: "new-password", Error: form.errors["password_confirm"], Required: true,
		},
		TermsURI: s.cfg.TermsURI, Terms: form.terms, TermsErr: form.errors["terms"],
		NeedToken: s.cfg.Registration == "token",
		Token: render.Field{
			ID: "registration_token", Name: "registration_token", Type: "text", Label: l.T(i18n.FieldRegToken), Hint: l.T(i18n.FieldRegTokenHint),
			Autocomplete: "off", Autocapitalize: "none", Value: form.token, Error: form.errors["registration_token"], Required: true, MaxLength: 128,
		},
	}
	if g != nil {
		v.Subtitle = l.T(i18n.LoginFor, clientName(g.GetClient()))
	}
	render.FocusFirst(&v.Username, &v.Email, &v.Password, &v.Confirm, &v.Token)
	if s.captcha != nil {
		v.Captcha = s.showCaptcha(w, r, form.errors["captcha"])
	}
	s.render(w, r, status, "register", &render.View{Title: l.T(i18n.RegisterTitle), CSRF: s.csrf.Token(w, r, "register"), Error: formErr, Page: v})
}
