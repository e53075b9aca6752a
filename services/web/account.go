package web

// Account management at /account: the pages a signed-in person uses to look
// after their account — profile and email addresses (account_profile.go),
// password and deactivation (account_password.go), and the browsers and
// applications signed in to it (account_sessions.go).
//
// Every page needs a browser session; without one it sends the browser to
// /login?next=<the page>, which comes back once signed in. Every form posts
// through s.page (cross-origin protection, no-store) and carries a CSRF token
// bound to the session. A successful form redirects (303) to a page that says
// what was done (?done=…), so reloading it does not send the form again.
//
// The Matrix account management actions of MSC4191 (/account?action=…, as
// advertised in discovery) redirect to the page that does that action.

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"google.golang.org/protobuf/types/known/timestamppb"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

func init() {
	pageNames = append(pageNames, "account")
}

// registerAccount adds the account pages to the public mux.
func (s *Service) registerAccount(mux *http.ServeMux) {
	mux.Handle("/account", s.page(s.handleAccount, nil))
	mux.Handle("/account/{$}", s.page(s.handleAccountSlash, nil))
	mux.Handle("/account/profile", s.page(nil, s.handleProfilePost))
	mux.Handle("/account/emails/add", s.page(nil, s.handleEmailAddPost))
	mux.Handle("/account/emails/verify", s.page(s.handleEmailVerifyGet, s.handleEmailVerifyPost))
	mux.Handle("/account/emails/resend", s.page(nil, s.handleEmailResendPost))
	mux.Handle("/account/emails/remove", s.page(nil, s.handleEmailRemovePost))
	mux.Handle("/account/emails/primary", s.page(nil, s.handleEmailPrimaryPost))
	mux.Handle("/account/password", s.page(s.handlePasswordGet, s.handlePasswordPost))
	mux.Handle("/account/sessions", s.page(s.handleSessionsGet, nil))
	mux.Handle("/account/sessions/device", s.page(s.handleDeviceGet, nil))
	mux.Handle("/account/sessions/end", s.page(s.handleSessionEndGet, s.handleSessionEndPost))
	mux.Handle("/account/deactivate", s.page(s.handleDeactivateGet, s.handleDeactivatePost))
	mux.Handle("/account/cross-signing-reset", s.page(s.handleCrossSigningGet, s.handleCrossSigningPost))
	// RFC 8615 well-known URL for changing passwords (password managers).
	mux.Handle("/.well-known/change-password", s.page(func(w http.ResponseWriter, r *http.Request) {
		s.redirect(w, r, "account/password", nil)
	}, nil))
}

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
)

// requireUser returns the signed-in user of an account page. Without one it
// sends the browser to sign in and come back (a GET to the same page, a POST
// to the page the form was on, given as back) and reports false.
func (s *Service) requireUser(w http.ResponseWriter, r *http.Request, back string) (*signedIn, bool) {
	who, err := s.currentUser(w, r)
	if err != nil {
		s.failure(w, r, "authenticate browser session", err)
		return nil, false
	}
	if who != nil {
		return who, true
	}
	next := back
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		next = s.path(strings.TrimPrefix(r.URL.Path, "/"))
		if r.URL.RawQuery != "" {
			next += "?" + r.URL.RawQuery
		}
	}
	if safeNext(next) == "" {
		next = s.path("account")
	}
	s.redirect(w, r, "login", url.Values{"next": {next}})
	return nil, false
}

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
	}
	for _, n := range []struct {
		section, page string
		label         msgID
	}{
		{sectionProfile, "account", msgAccountNavProfile},
		{sectionSessions, "account/sessions", msgAccountNavSessions},
		{sectionPassword, "account/password", msgAccountNavPassword},
	} {
		v.Nav = append(v.Nav, navItem{URL: s.path(n.page), Label: l.T(n.label), Current: n.section == current})
	}
	v.SignOutAction = s.path("logout")
	v.SignOutCSRF = s.csrfToken(w, r, "logout")
	v.Notice, v.Error = notice, formErr
	s.render(w, r, status, "account", &view{
		Title: title, User: who.user, Page: v,
		CSRF: s.csrfToken(w, r, "account-"+v.Section),
	})
}

// checkAccountCSRF reports whether a posted account form carries its token;
// when it does not, it shows the form-expired page.
func (s *Service) checkAccountCSRF(w http.ResponseWriter, r *http.Request, form string) bool {
	if s.checkCSRF(r, form) {
		return true
	}
	s.errorPage(w, r, http.StatusForbidden, msgErrTitle, msgErrFormExpired)
	return false
}

// parseAccountForm parses a posted form and returns the signed-in user, or
// answers (bad request, sign in first, expired form) and reports false. form
// is the CSRF form name; back is the page to return to after signing in.
func (s *Service) parseAccountForm(w http.ResponseWriter, r *http.Request, form, back string) (*signedIn, bool) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, msgErrTitle, msgErrBadRequest)
		return nil, false
	}
	who, ok := s.requireUser(w, r, s.path(back))
	if !ok {
		return nil, false
	}
	if !s.checkAccountCSRF(w, r, form) {
		return nil, false
	}
	return who, true
}

// done redirects to an account page that says what was done: key is one of
// doneNotices.
func (s *Service) done(w http.ResponseWriter, r *http.Request, page, key string) {
	s.redirect(w, r, page, url.Values{"done": {key}})
}

// doneNotices are the messages a page shows after a form succeeded, by the
// done parameter. Only these are shown: the parameter never becomes text.
var doneNotices = map[string]msgID{
	"display_name":     msgAccountDoneDisplayName,
	"email_added":      msgAccountDoneEmailAdded,
	"email_removed":    msgAccountDoneEmailRemoved,
	"email_primary":    msgAccountDoneEmailPrimary,
	"password":         msgAccountDonePassword,
	"password_signout": msgAccountDonePasswordSignOut,
	"session_ended":    msgAccountDoneSessionEnded,
}

// doneNotice is the notice for a request's done parameter, or "".
func (s *Service) doneNotice(r *http.Request) string {
	id, ok := doneNotices[r.URL.Query().Get("done")]
	if !ok {
		return ""
	}
	return s.localizer(r).T(id)
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
func (s *Service) handleAccount(w http.ResponseWriter, r *http.Request) {
	who, ok := s.requireUser(w, r, "")
	if !ok {
		return
	}
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
	deviceID = cleanDeviceID(deviceID)
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

// cleanDeviceID returns a Matrix device id as given, or "" when it is not
// one: device ids are opaque, but printable and at most 255 bytes.
func cleanDeviceID(id string) string {
	if id == "" || len(id) > 255 || strings.ContainsFunc(id, func(c rune) bool { return !unicode.IsPrint(c) || c == ' ' }) {
		return ""
	}
	return id
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

// timeView is a moment shown on a page, with its machine-readable form.
type timeView struct {
	Text, ISO string
}

// when formats a timestamp for people (UTC, to the minute), or nil.
func when(l localizer, ts *timestamppb.Timestamp) *timeView {
	if ts == nil || !ts.IsValid() {
		return nil
	}
	t := ts.AsTime().UTC()
	month := l.T(msgID(fmt.Sprintf("month.%d", int(t.Month()))))
	return &timeView{Text: l.T(msgDate, t.Day(), month, t.Year(), t.Format("15:04")), ISO: t.Format(time.RFC3339)}
}

// owns reports whether a user id is the signed-in user's.
func (who *signedIn) owns(userID string) bool { return userID != "" && userID == who.user.GetId() }

// accountsUser re-reads the signed-in user, for pages showing what may have
// just changed.
func (s *Service) accountsUser(r *http.Request, who *signedIn) (*accountsv1.User, error) {
	resp, err := s.accounts.GetUser(s.asUser(r.Context(), who), &accountsv1.GetUserRequest{UserId: who.user.GetId()})
	if err != nil {
		return nil, err
	}
	return resp.GetUser(), nil
}
