package web

// Account management at /account: the pages a signed-in person uses to look
// after their account — the profile (account_profile.go) and email addresses
// (account_emails.go), the password (account_password.go), the browsers and
// applications signed in to it (account_sessions.go), deactivation
// (account_deactivate.go), the cross-signing reset (account_cross_signing.go)
// and personal access tokens (account_tokens.go).
//
// Every page is for the signed-in user (the route table runs requireUser
// first): a browser that is not signed in is sent to /login?next=<the page>,
// which comes back once signed in. Every form posts through s.page
// (cross-origin protection, no-store) and carries a CSRF token bound to the
// session (checkAccountCSRF). A successful form redirects (303) to a page that says
// what was done (?done=…), so reloading it does not send the form again.
//
// The Matrix account management actions of MSC4191 (/account?action=…, as
// advertised in discovery) redirect to the page that does that action.

import (
	"net/http"
	"net/url"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/input"
	"gatehouse.dev/services/web/internal/render"
)

// accountView is the data of every account page. Section picks what the
// page shows; the matching field holds its data.
type accountView struct {
	Section string
	Nav     []navItem
	// SignOutAction and SignOutCSRF make the sign-out form in the page's header.
	SignOutAction string
	SignOutCSRF   string
	// Notice says what was just done (role=status); Error is about the whole
	// page's form (role=alert). Both show below the heading.
	Notice, Error string

	Profile      *profileView
	EmailVerify  *emailVerifyView
	Password     *passwordView
	Sessions     *sessionsView
	Device       *deviceView
	Deactivate   *deactivateView
	CrossSigning *crossSigningView
	Tokens       *tokensView
	Security     *securityView
	Confirm      *confirmView
}

// navItem is one link of the account pages' navigation.
type navItem struct {
	URL, Label string
	Current    bool
}

// The sections of the account pages.
const (
	sectionProfile      = "profile"
	sectionEmailVerify  = "email-verify"
	sectionPassword     = "password"
	sectionSessions     = "sessions"
	sectionDevice       = "device"
	sectionDeviceEnd    = "device-end"
	sectionDeactivate   = "deactivate"
	sectionDeactivated  = "deactivated"
	sectionCrossSigning = "cross-signing"
	sectionTokens       = "tokens"
)

// renderAccount shows an account page for who, with its navigation and the
// notice or error given.
func (s *Service) renderAccount(w http.ResponseWriter, r *http.Request, status int, who *signedIn, title string, v *accountView, notice, formErr string) {
	l := s.localizer(r)
	current := v.Section
	switch current {
	case sectionEmailVerify:
		current = sectionProfile
	case sectionDevice, sectionDeviceEnd:
		current = sectionSessions
	case sectionConfirm:
		current = ""
	}
	for _, n := range []struct {
		section, page string
		label         i18n.ID
	}{
		{sectionProfile, "account", i18n.AccountNavProfile},
		{sectionSessions, "account/sessions", i18n.AccountNavSessions},
		{sectionTokens, "account/tokens", i18n.AccountNavTokens},
		{sectionPassword, "account/password", i18n.AccountNavPassword},
		{sectionSecurity, "account/security", i18n.AccountNavSecurity},
	} {
		v.Nav = append(v.Nav, navItem{URL: s.path(n.page), Label: l.T(n.label), Current: n.section == current})
	}
	v.SignOutAction = s.path("logout")
	v.SignOutCSRF = s.csrf.Token(w, r, "logout")
	v.Notice, v.Error = notice, formErr
	s.render(w, r, status, "account", &render.View{
		Title: title, User: who.user, Page: v,
		CSRF: s.csrf.Token(w, r, "account-"+v.Section),
	})
}

// checkAccountCSRF reports whether a posted account form carries its token;
// when it does not, it shows the form-expired page.
func (s *Service) checkAccountCSRF(w http.ResponseWriter, r *http.Request, form string) bool {
	if s.csrf.Check(r, form) {
		return true
	}
	s.errorPage(w, r, http.StatusForbidden, i18n.ErrorTitle, i18n.ErrorFormExpired)
	return false
}

// done redirects to an account page that says what was done: key is one of
// those of doneNotice.
func (s *Service) done(w http.ResponseWriter, r *http.Request, page, key string) {
	s.redirect(w, r, page, url.Values{"done": {key}})
}

// doneNotice is the notice for a request's done parameter, or "": the
// message a page shows after a form succeeded. Only these are shown: the
// parameter never becomes text.
func (s *Service) doneNotice(r *http.Request) string {
	var id i18n.ID
	switch r.URL.Query().Get("done") {
	case "display_name":
		id = i18n.AccountDoneDisplayName
	case "email_added":
		id = i18n.AccountDoneEmailAdded
	case "email_removed":
		id = i18n.AccountDoneEmailRemoved
	case "email_primary":
		id = i18n.AccountDoneEmailPrimary
	case "password":
		id = i18n.AccountDonePassword
	case "password_signout":
		id = i18n.AccountDonePasswordSignOut
	case "session_ended":
		id = i18n.AccountDoneSessionEnded
	case "token_revoked":
		id = i18n.AccountDoneTokenRevoked
	case "unlinked":
		id = i18n.AccountDoneUnlinked
	case "passkey_added", "totp_added":
		id = i18n.AccountDonePasskeyAdded
		if r.URL.Query().Get("done") == "totp_added" {
			id = i18n.AccountDoneRequire
		}
	case "passkey_removed":
		id = i18n.AccountDonePasskeyRemoved
	case "passkey_renamed":
		id = i18n.AccountDonePasskeyRenamed
	case "totp_removed":
		id = i18n.AccountDoneTOTPRemoved
	case "require":
		id = i18n.AccountDoneRequire
	default:
		return ""
	}
	return s.localizer(r).T(id)
}

// handleChangePassword sends /.well-known/change-password (RFC 8615, for
// password managers) to the password page.
func (s *Service) handleChangePassword(w http.ResponseWriter, r *http.Request) {
	s.redirect(w, r, "account/password", nil)
}

// handleAccountSlash sends /account/ (MAS's account_management_uri) to /account.
func (s *Service) handleAccountSlash(w http.ResponseWriter, r *http.Request) {
	target := s.path("account")
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// handleAccount is the profile page, and the entry point of the MSC4191
// actions, which it redirects to their pages.
func (s *Service) handleAccount(w http.ResponseWriter, r *http.Request, who *signedIn) {
	q := r.URL.Query()
	if page, params := accountAction(q.Get("action"), q.Get("device_id")); page != "" {
		s.redirect(w, r, page, params)
		return
	}
	s.showProfile(w, r, http.StatusOK, who, profileErrors{}, s.doneNotice(r))
}

// accountAction maps an MSC4191 action (and the device it names) to the page
// that does it, or "" for the profile page. Unknown actions show the profile,
// as the MSC asks. The deprecated session_* actions and MAS's unprefixed
// spellings mean the same as their device_* twins.
func accountAction(action, deviceID string) (string, url.Values) {
	deviceID = input.CleanDeviceID(deviceID)
	device := func(page string) (string, url.Values) {
		if deviceID == "" {
			return "account/sessions", nil
		}
		return page, url.Values{"device_id": {deviceID}}
	}
	switch action {
	case "org.matrix.devices_list", "org.matrix.sessions_list", "sessions_list":
		return "account/sessions", nil
	case "org.matrix.device_view", "org.matrix.session_view", "session_view":
		return device("account/sessions/device")
	case "org.matrix.device_delete", "org.matrix.session_end", "session_end":
		return device("account/sessions/end")
	case "org.matrix.account_deactivate":
		return "account/deactivate", nil
	case "org.matrix.cross_signing_reset":
		return "account/cross-signing-reset", nil
	}
	return "", nil
}

// timeView is a moment shown on a page, with its machine-readable form.
type timeView struct {
	Text, ISO string
}

// when formats a timestamp for people (UTC, to the minute), or nil.
func when(l i18n.Localizer, ts *timestamppb.Timestamp) *timeView {
	if ts == nil || !ts.IsValid() {
		return nil
	}
	t := ts.AsTime().UTC()
	return &timeView{Text: l.Date(t), ISO: t.Format(time.RFC3339)}
}

// accountsUser re-reads the signed-in user, for pages showing what may have
// just changed.
func (s *Service) accountsUser(r *http.Request, who *signedIn) (*accountsv1.User, error) {
	resp, err := s.accounts.GetUser(s.asUser(r.Context(), who), &accountsv1.GetUserRequest{UserId: who.user.GetId()})
	if err != nil {
		return nil, err
	}
	return resp.GetUser(), nil
}
