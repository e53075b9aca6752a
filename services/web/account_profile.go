package web

import (
	"net/http"
	"strings"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// The profile page: the username, the display name, and the email addresses
// (listed here; added, made primary and removed in account_emails.go).

// profileView is the data of the profile page.
type profileView struct {
	DisplayName      render.Field
	DisplayNameCSRF  string
	DisplayNameForm  string
	Emails           []emailView
	EmailRemoveForm  string
	EmailRemoveCSRF  string
	EmailPrimaryForm string
	EmailPrimaryCSRF string
	AddEmail         render.Field
	AddEmailForm     string
	AddEmailCSRF     string
	DeactivateURL    string
	// Upstream are the linked identity providers (account_upstream.go).
	Upstream    []upstreamLinkItem
	UnlinkForm  string
	UnlinkCSRF  string
	HasUpstream bool
}

// emailView is one of the user's addresses.
type emailView struct {
	Address  string
	Primary  bool
	Verified bool
	Added    *timeView
}

// profileErrors are the messages (and values to show again) of the profile
// page's forms.
type profileErrors struct {
	displayName, displayNameValue string
	email, emailValue             string
	form                          string
	keepDisplayName               bool
}

// showProfile renders the profile page.
func (s *Service) showProfile(w http.ResponseWriter, r *http.Request, status int, who *signedIn, e profileErrors, notice string) {
	l := s.localizer(r)
	ctx := s.asUser(r.Context(), who)
	user, err := s.accountsUser(r, who)
	if err != nil {
		s.failure(w, r, "get user", err)
		return
	}
	who.user = user
	emails, err := s.accounts.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: user.GetId()})
	if err != nil {
		s.failure(w, r, "list emails", err)
		return
	}
	name := user.GetDisplayName()
	if e.keepDisplayName {
		name = e.displayNameValue
	}
	v := &profileView{
		DisplayName: render.Field{
			ID: "display_name", Name: "display_name", Type: "text", Label: l.T(i18n.AccountDisplayName),
			Hint: l.T(i18n.AccountDisplayNameHint), Autocomplete: "nickname", Value: name, Error: e.displayName, MaxLength: maxDisplayName,
		},
		DisplayNameForm: s.path("account/profile"),
		DisplayNameCSRF: s.csrf.Token(w, r, "account-display-name"),
		AddEmail: render.Field{
			ID: "email", Name: "email", Type: "email", Label: l.T(i18n.AccountEmailNew), Hint: l.T(i18n.AccountEmailNewHint),
			Autocomplete: "email", Autocapitalize: "none", Value: e.emailValue, Error: e.email, MaxLength: 254, Required: true,
		},
		AddEmailForm:     s.path("account/emails/add"),
		AddEmailCSRF:     s.csrf.Token(w, r, "account-email-add"),
		EmailRemoveForm:  s.path("account/emails/remove"),
		EmailRemoveCSRF:  s.csrf.Token(w, r, "account-email-remove"),
		EmailPrimaryForm: s.path("account/emails/primary"),
		EmailPrimaryCSRF: s.csrf.Token(w, r, "account-email-primary"),
		DeactivateURL:    s.path("account/deactivate"),
	}
	if len(s.cfg.Upstream) > 0 {
		if v.Upstream, err = s.upstreamLinks(r, who); err != nil {
			s.failure(w, r, "list identity providers", err)
			return
		}
		v.HasUpstream = true
		v.UnlinkForm, v.UnlinkCSRF = s.path("account/upstream/unlink"), s.csrf.Token(w, r, "account-upstream-unlink")
	}
	for _, em := range emails.GetEmails() {
		v.Emails = append(v.Emails, emailView{Address: em.GetEmail(), Primary: em.GetPrimary(), Verified: em.GetVerified(), Added: when(l, em.GetAddedAt())})
	}
	switch {
	case e.displayName != "":
		v.DisplayName.Autofocus = true
	case e.email != "":
		v.AddEmail.Autofocus = true
	}
	s.renderAccount(w, r, status, who, l.T(i18n.AccountProfileTitle), &accountView{Section: sectionProfile, Profile: v}, notice, e.form)
}

// maxDisplayName is the longest display name accounts accepts, in characters
// (the input's maxlength; accounts decides).
const maxDisplayName = 256

// handleProfilePost saves the display name.
func (s *Service) handleProfilePost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-display-name") {
		return
	}
	name := strings.TrimSpace(r.PostFormValue("display_name"))
	_, err := s.accounts.SetDisplayName(s.asUser(r.Context(), who), &accountsv1.SetDisplayNameRequest{
		UserId: who.user.GetId(), DisplayName: name,
	})
	switch {
	case err == nil:
	case errs.KindOf(err) == errs.KindInvalid:
		s.showProfile(w, r, http.StatusBadRequest, who, profileErrors{
			displayName: textError(s.localizer(r), err), displayNameValue: truncate(name, 1024), keepDisplayName: true,
		}, "")
		return
	default:
		s.failure(w, r, "set display name", err)
		return
	}
	s.done(w, r, "account", "display_name")
}
