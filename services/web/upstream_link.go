package web

import (
	"net/http"
	"strings"
	"time"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/input"
	"gatehouse.dev/services/web/internal/render"
)

// The first sign-in with an upstream identity (/upstream/link): the page
// shows what will be created from the provider's claims, and offers either
// to create the account (choosing or confirming the username, checked with
// accounts and the homeserver as registration does) or to link the identity
// to an existing account by signing in to it with its password. The ticket
// of the verified identity is the accounts service's, kept in its own cookie;
// the page carries the flow in its query.

// ticketLife is how long the ticket cookie lives (the ticket itself expires
// after 30 minutes in accounts).
const ticketLife = 30 * time.Minute

// upstreamLinkView is the data of the first sign-in page.
type upstreamLinkView struct {
	Action       string
	Provider     string
	Intro        string
	CreateIntro  string
	Username     render.Field
	UsernameNote string
	Forced       bool
	// DisplayName and Email are what the provider gave: offered with a
	// checkbox (suggested), or stated (forced).
	DisplayName, Email           string
	DisplayForced, EmailForced   bool
	UseDisplayName, UseEmail     bool
	DisplayNameLabel, EmailLabel string
	EmailUnverified              string
	ExistingIntro                string
	LinkUsername, LinkPassword   render.Field
	CreateError, LinkError       string
}

// linkForm is what was typed in the page's forms, and the errors.
type linkForm struct {
	username, linkUsername   string
	useDisplayName, useEmail bool
	usernameErr, linkErr     string
	createErr, passwordErr   string
	fresh                    bool
}

// upstreamTicket returns the ticket's sign-in, or shows that it expired.
func (s *Service) upstreamTicket(w http.ResponseWriter, r *http.Request) (string, *accountsv1.UpstreamSignIn, bool) {
	ticket := s.cookies.Get(r, cookie.UpstreamTicket)
	if ticket == "" {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.UpstreamExpired)
		return "", nil, false
	}
	resp, err := s.accounts.GetUpstreamSignIn(r.Context(), &accountsv1.GetUpstreamSignInRequest{Ticket: ticket})
	if err != nil {
		if k := errs.KindOf(err); k == errs.KindFailedPrecondition || k == errs.KindInvalid {
			s.cookies.Clear(w, cookie.UpstreamTicket)
			s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.UpstreamExpired)
			return "", nil, false
		}
		s.failure(w, r, "read upstream ticket", err)
		return "", nil, false
	}
	return ticket, resp.GetSignIn(), true
}

func (s *Service) handleUpstreamLinkGet(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if _, ok := s.loadGrant(w, r, f); !ok {
		return
	}
	_, in, ok := s.upstreamTicket(w, r)
	if !ok {
		return
	}
	s.renderUpstreamLink(w, r, http.StatusOK, f, in, linkForm{username: in.GetLocalpart(), useDisplayName: true, useEmail: true, fresh: true})
}

func (s *Service) handleUpstreamLinkPost(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	if _, ok := s.loadGrant(w, r, f); !ok {
		return
	}
	ticket, in, ok := s.upstreamTicket(w, r)
	if !ok {
		return
	}
	l := s.localizer(r)
	form := linkForm{
		username:       strings.ToLower(truncate(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("username")), "@"), 255)),
		linkUsername:   truncate(strings.TrimSpace(r.PostFormValue("link_username")), 255),
		useDisplayName: r.PostFormValue("use_display_name") == "yes",
		useEmail:       r.PostFormValue("use_email") == "yes",
	}
	if in.GetLocalpartForced() {
		form.username = in.GetLocalpart()
	}
	if !s.csrf.Check(r, "upstream-link") {
		form.createErr = l.T(i18n.ErrorFormExpired)
		s.renderUpstreamLink(w, r, http.StatusForbidden, f, in, form)
		return
	}
	switch r.PostFormValue("action") {
	case "create":
		s.upstreamCreate(w, r, f, ticket, in, form)
	case "link":
		s.upstreamLinkExisting(w, r, f, ticket, in, form)
	default:
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
	}
}

// upstreamCreate creates the account of the ticket.
func (s *Service) upstreamCreate(w http.ResponseWriter, r *http.Request, f flow, ticket string, in *accountsv1.UpstreamSignIn, form linkForm) {
	l := s.localizer(r)
	ctx := r.Context()
	again := func(status int) { s.renderUpstreamLink(w, r, status, f, in, form) }
	if id := input.CheckUsername(form.username, s.cfg.ServerName); id != "" {
		form.usernameErr = l.T(id)
		if in.GetLocalpartForced() {
			form.usernameErr = l.T(i18n.UpstreamUsernameBad, in.GetProviderName())
		}
		again(http.StatusBadRequest)
		return
	}
	_, err := s.accounts.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: form.username})
	switch {
	case err == nil:
		form.usernameErr = l.T(i18n.RegisterUsernameTaken)
		again(http.StatusConflict)
		return
	case errs.KindOf(err) != errs.KindNotFound:
		s.failure(w, r, "check username", err)
		return
	}
	if s.token != nil {
		// The homeserver may hold users Gatehouse does not know (appservices, old accounts).
		avail, err := s.token.IsLocalpartAvailable(ctx, &tokenv1.IsLocalpartAvailableRequest{Localpart: form.username})
		switch {
		case err != nil:
			s.failure(w, r, "ask the homeserver about the username", err)
			return
		case !avail.GetAvailable():
			form.usernameErr = l.T(i18n.RegisterUsernameTaken)
			again(http.StatusConflict)
			return
		}
	}
	resp, err := s.accounts.RegisterUpstreamUser(ctx, &accountsv1.RegisterUpstreamUserRequest{
		Ticket: ticket, Username: form.username, UseDisplayName: form.useDisplayName, UseEmail: form.useEmail,
	})
	if err != nil {
		switch k := errs.KindOf(err); {
		case k == errs.KindAlreadyExists && errs.FieldOf(err) == "email":
			form.createErr = l.T(i18n.UpstreamEmailTaken)
		case k == errs.KindAlreadyExists && errs.FieldOf(err) == "subject":
			form.createErr = l.T(i18n.UpstreamLinkTaken)
		case k == errs.KindAlreadyExists:
			form.usernameErr = l.T(i18n.RegisterUsernameTaken)
		case k == errs.KindInvalid:
			form.usernameErr = errs.PublicMessage(err)
		case k == errs.KindFailedPrecondition:
			s.cookies.Clear(w, cookie.UpstreamTicket)
			s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.UpstreamExpired)
			return
		default:
			s.failure(w, r, "register upstream user", err)
			return
		}
		again(http.StatusConflict)
		return
	}
	s.finishUpstream(w, r, f, resp.GetUser(), resp.GetAuthProof())
}

// upstreamLinkExisting links the ticket's identity to an account the person
// signs in to with its password (counted as a sign-in: failures only).
func (s *Service) upstreamLinkExisting(w http.ResponseWriter, r *http.Request, f flow, ticket string, in *accountsv1.UpstreamSignIn, form linkForm) {
	l := s.localizer(r)
	ctx := r.Context()
	password := r.PostFormValue("link_password")
	if form.linkUsername == "" || password == "" {
		form.linkErr = l.T(i18n.LoginWrong)
		s.renderUpstreamLink(w, r, http.StatusBadRequest, f, in, form)
		return
	}
	username := s.normalizeUsername(form.linkUsername)
	limit, err := s.take(w, r, s.loginKeys(r, username)...)
	if err != nil {
		s.failure(w, r, "rate limit sign-in", err)
		return
	}
	if !limit.Allowed {
		form.linkErr = l.T(i18n.LoginRateLimited)
		s.renderUpstreamLink(w, r, http.StatusTooManyRequests, f, in, form)
		return
	}
	verified, err := s.accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: username, Password: password, SecondFactorCapable: true})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindUnauthenticated, errs.KindNotFound, errs.KindInvalid:
			form.linkErr = l.T(i18n.LoginWrong)
			s.renderUpstreamLink(w, r, http.StatusUnauthorized, f, in, form)
		case errs.KindFailedPrecondition, errs.KindPermissionDenied:
			s.limiter.Refund(ctx, limit)
			form.linkErr = l.T(i18n.LoginBlocked)
			s.renderUpstreamLink(w, r, http.StatusForbidden, f, in, form)
		default:
			s.limiter.Refund(ctx, limit)
			s.failure(w, r, "verify password", err)
		}
		return
	}
	s.limiter.Refund(ctx, limit)
	resp, err := s.accounts.LinkUpstream(ctx, &accountsv1.LinkUpstreamRequest{
		Ticket: ticket, UserId: verified.GetUser().GetId(), AuthProof: verified.GetAuthProof(),
	})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindAlreadyExists:
			form.linkErr = l.T(i18n.UpstreamLinkTaken)
			s.renderUpstreamLink(w, r, http.StatusConflict, f, in, form)
		case errs.KindFailedPrecondition:
			if v, _ := errs.FactOf(err, errs.FactSecondFactor); v != "" {
				// Linking signs in: an account with a second factor cannot
				// be linked with its password alone.
				form.linkErr = l.T(i18n.UpstreamLinkSecondFactor)
				s.renderUpstreamLink(w, r, http.StatusForbidden, f, in, form)
				return
			}
			s.cookies.Clear(w, cookie.UpstreamTicket)
			s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.UpstreamExpired)
		default:
			s.failure(w, r, "link upstream identity", err)
		}
		return
	}
	s.finishUpstream(w, r, f, resp.GetUser(), resp.GetAuthProof())
}

// finishUpstream signs the person in after a first sign-in and goes on with the flow.
func (s *Service) finishUpstream(w http.ResponseWriter, r *http.Request, f flow, user *accountsv1.User, proof string) {
	s.cookies.Clear(w, cookie.UpstreamTicket)
	if err := s.replaceSession(w, r, user, proof); err != nil {
		s.sessionFailed(w, r, f, err)
		return
	}
	s.continueFlow(w, r, f)
}

// renderUpstreamLink shows the first sign-in page.
func (s *Service) renderUpstreamLink(w http.ResponseWriter, r *http.Request, status int, f flow, in *accountsv1.UpstreamSignIn, form linkForm) {
	l := s.localizer(r)
	name := in.GetProviderName()
	v := upstreamLinkView{
		Action:   s.flowURL("upstream/link", f),
		Provider: name,
		Intro:    l.T(i18n.UpstreamLinkIntro, name),
		Forced:   in.GetLocalpartForced(),
		Username: render.Field{
			ID: "username", Name: "username", Type: "text", Label: l.T(i18n.FieldUsername), Hint: l.T(i18n.FieldUsernameHint, s.serverName()),
			Autocomplete: "username", Autocapitalize: "none", Value: form.username, Error: form.usernameErr, Required: true, MaxLength: 255,
		},
		DisplayName: in.GetDisplayName(), DisplayForced: in.GetDisplayNameForced(),
		Email: in.GetEmail(), EmailForced: in.GetEmailForced(),
		UseDisplayName: form.useDisplayName, UseEmail: form.useEmail,
		ExistingIntro: l.T(i18n.UpstreamExistingIntro, name),
		LinkUsername: render.Field{
			ID: "link_username", Name: "link_username", Type: "text", Label: l.T(i18n.FieldUsername), Autocomplete: "username",
			Autocapitalize: "none", Value: form.linkUsername, Required: true, MaxLength: 255,
		},
		LinkPassword: render.Field{
			ID: "link_password", Name: "link_password", Type: "password", Label: l.T(i18n.FieldPassword), Autocomplete: "current-password",
			Error: form.linkErr, Required: true,
		},
		CreateError: form.createErr,
	}
	if form.username != "" {
		v.CreateIntro = l.T(i18n.UpstreamCreateIntro, s.matrixID(form.username))
	}
	if v.Forced {
		v.UsernameNote = l.T(i18n.UpstreamUsernameForced, name)
	}
	if v.DisplayForced {
		v.DisplayNameLabel = l.T(i18n.UpstreamDisplayNameSet, v.DisplayName)
	} else if v.DisplayName != "" {
		v.DisplayNameLabel = l.T(i18n.UpstreamUseDisplayName, v.DisplayName)
	}
	if v.EmailForced {
		v.EmailLabel = l.T(i18n.UpstreamEmailSet, v.Email)
	} else if v.Email != "" {
		v.EmailLabel = l.T(i18n.UpstreamUseEmail, v.Email)
	}
	if u := in.GetEmailUnverified(); u != "" {
		v.EmailUnverified = l.T(i18n.UpstreamEmailUnverified, name, u)
	}
	if form.linkErr != "" {
		v.LinkPassword.Autofocus = true
	} else if !form.fresh || !v.Forced {
		render.FocusFirst(&v.Username)
	}
	s.render(w, r, status, "upstream_link", &render.View{Title: l.T(i18n.UpstreamLinkTitle), CSRF: s.csrf.Token(w, r, "upstream-link"), Page: v})
}
