package web

import (
	"crypto/hmac"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/input"
	"gatehouse.dev/services/web/internal/render"
)

// The profile page: the username, the display name, and the email addresses
// (listed, made primary, removed, and added with a code emailed by notify).

// addEmailCookie remembers the address being added and its verification
// between the form and the code: "<verification id>.<address, base64url>.<MAC>",
// the MAC (under the CSRF key) binding both to the browser session. It only
// says what to show and which verification to check: the address added is the
// one notify's CheckCode confirms for this very user.
const addEmailCookie = "gatehouse-add-email"

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
	ctx := s.asUser(r.Context(), who.user.GetId())
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
	_, err := s.accounts.SetDisplayName(s.asUser(r.Context(), who.user.GetId()), &accountsv1.SetDisplayNameRequest{
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

// handleEmailAddPost emails a code to a new address and asks for it.
func (s *Service) handleEmailAddPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-email-add") {
		return
	}
	l := s.localizer(r)
	typed := truncate(strings.TrimSpace(r.PostFormValue("email")), 254)
	fail := func(status int, msg string) {
		s.showProfile(w, r, status, who, profileErrors{email: msg, emailValue: typed}, "")
	}
	if !input.ValidEmail(typed) {
		fail(http.StatusBadRequest, l.T(i18n.RegisterEmailBad))
		return
	}
	ctx := s.asUser(r.Context(), who.user.GetId())
	emails, err := s.accounts.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: who.user.GetId()})
	if err != nil {
		s.failure(w, r, "list emails", err)
		return
	}
	for _, em := range emails.GetEmails() {
		if strings.EqualFold(em.GetEmail(), typed) {
			fail(http.StatusConflict, l.T(i18n.AccountEmailYours))
			return
		}
	}
	started, err := s.notify.StartVerification(ctx, &notifyv1.StartVerificationRequest{
		Email: typed, Purpose: notifyv1.Purpose_PURPOSE_ADD_EMAIL, UserId: who.user.GetId(), ClientIp: clientIP(r), Locale: l.Lang,
	})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindInvalid:
			fail(http.StatusBadRequest, l.T(i18n.RegisterEmailBad))
		case errs.KindRateLimited:
			fail(http.StatusTooManyRequests, tryLater(l, err))
		default:
			s.failure(w, r, "start email verification", err)
		}
		return
	}
	s.cookies.Set(w, cookie.AddEmail, s.sealAddEmail(who, started.GetVerificationId(), typed), 15*60)
	s.redirect(w, r, "account/emails/verify", nil)
}

// sealAddEmail makes the value of the add-email cookie.
func (s *Service) sealAddEmail(who *signedIn, verificationID, email string) string {
	enc := base64.RawURLEncoding.EncodeToString([]byte(email))
	return verificationID + "." + enc + "." + s.csrf.Sign("add-email\x00"+verificationID+"\x00"+enc, who.session.GetSessionId())
}

// pendingEmail reads the add-email cookie of the signed-in browser.
func (s *Service) pendingEmail(r *http.Request, who *signedIn) (verificationID, email string, ok bool) {
	parts := strings.Split(s.cookies.Get(r, cookie.AddEmail), ".")
	if len(parts) != 3 {
		return "", "", false
	}
	want := s.csrf.Sign("add-email\x00"+parts[0]+"\x00"+parts[1], who.session.GetSessionId())
	if !hmac.Equal([]byte(want), []byte(parts[2])) {
		return "", "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", false
	}
	return parts[0], string(b), true
}

// emailVerifyView is the data of the page asking for the emailed code.
type emailVerifyView struct {
	Sent         string
	Code         render.Field
	Action       string
	ResendAction string
	ResendCSRF   string
	CancelURL    string
}

// handleEmailVerifyGet asks for the code emailed to the new address.
func (s *Service) handleEmailVerifyGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if _, email, ok := s.pendingEmail(r, who); ok {
		notice := ""
		if r.URL.Query().Get("done") == "resent" {
			notice = s.localizer(r).T(i18n.VerifyResent)
		}
		s.showEmailVerify(w, r, http.StatusOK, who, email, "", "", notice)
		return
	}
	s.redirect(w, r, "account", nil)
}

// showEmailVerify renders the code form.
func (s *Service) showEmailVerify(w http.ResponseWriter, r *http.Request, status int, who *signedIn, email, code, codeErr, notice string) {
	l := s.localizer(r)
	v := &emailVerifyView{
		Sent: l.T(i18n.AccountEmailSent, email),
		Code: render.Field{
			ID: "code", Name: "code", Type: "text", Label: l.T(i18n.FieldCode), Hint: l.T(i18n.FieldCodeHint),
			Autocomplete: "one-time-code", InputMode: "numeric", Value: code, Error: codeErr, MaxLength: 32, Required: true, Autofocus: true,
		},
		Action:       s.path("account/emails/verify"),
		ResendAction: s.path("account/emails/resend"),
		ResendCSRF:   s.csrf.Token(w, r, "account-email-resend"),
		CancelURL:    s.path("account"),
	}
	s.renderAccount(w, r, status, who, l.T(i18n.AccountEmailVerifyTitle), &accountView{Section: sectionEmailVerify, EmailVerify: v}, notice, "")
}

// handleEmailVerifyPost checks the code and adds the address.
func (s *Service) handleEmailVerifyPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-"+sectionEmailVerify) {
		return
	}
	l := s.localizer(r)
	verificationID, email, ok := s.pendingEmail(r, who)
	if !ok {
		s.showProfile(w, r, http.StatusBadRequest, who, profileErrors{email: l.T(i18n.AccountEmailExpired)}, "")
		return
	}
	code := truncate(strings.TrimSpace(r.PostFormValue("code")), 32)
	if code == "" {
		s.showEmailVerify(w, r, http.StatusBadRequest, who, email, code, l.T(i18n.VerifyNoCode), "")
		return
	}
	ctx := s.asUser(r.Context(), who.user.GetId())
	_, err := s.notify.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: verificationID, Code: code})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindInvalid:
			msg := wrongCode(l, err)
			s.showEmailVerify(w, r, http.StatusBadRequest, who, email, code, msg, "")
		case errs.KindFailedPrecondition, errs.KindNotFound:
			s.cookies.Clear(w, cookie.AddEmail)
			s.showProfile(w, r, http.StatusBadRequest, who, profileErrors{email: l.T(i18n.AccountEmailExpired), emailValue: email}, "")
		case errs.KindRateLimited:
			s.showEmailVerify(w, r, http.StatusTooManyRequests, who, email, code, tryLater(l, err), "")
		default:
			s.failure(w, r, "check email code", err)
		}
		return
	}
	// accounts checks the confirmation itself (its projection of notify's
	// events): this address, this user, the add-email purpose.
	_, err = s.accounts.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: who.user.GetId(), Email: email, VerificationId: verificationID})
	s.cookies.Clear(w, cookie.AddEmail)
	switch kind := errs.KindOf(err); {
	case err == nil:
	case kind == errs.KindAlreadyExists:
		// The person proved the address is theirs, so saying it is taken reveals nothing new.
		s.showProfile(w, r, http.StatusConflict, who, profileErrors{email: l.T(i18n.AccountEmailTaken), emailValue: email}, "")
		return
	case kind == errs.KindInvalid || kind == errs.KindFailedPrecondition:
		s.showProfile(w, r, http.StatusBadRequest, who, profileErrors{email: errs.PublicMessage(err), emailValue: email}, "")
		return
	default:
		s.failure(w, r, "add email", err)
		return
	}
	s.done(w, r, "account", "email_added")
}

// handleEmailResendPost emails a new code.
func (s *Service) handleEmailResendPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-email-resend") {
		return
	}
	l := s.localizer(r)
	verificationID, email, ok := s.pendingEmail(r, who)
	if !ok {
		s.showProfile(w, r, http.StatusBadRequest, who, profileErrors{email: l.T(i18n.AccountEmailExpired)}, "")
		return
	}
	_, err := s.notify.ResendVerification(s.asUser(r.Context(), who.user.GetId()), &notifyv1.ResendVerificationRequest{
		VerificationId: verificationID, ClientIp: clientIP(r),
	})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindRateLimited:
			s.showEmailVerify(w, r, http.StatusTooManyRequests, who, email, "", "", tryLater(l, err))
		case errs.KindFailedPrecondition, errs.KindNotFound:
			s.cookies.Clear(w, cookie.AddEmail)
			s.showProfile(w, r, http.StatusBadRequest, who, profileErrors{email: l.T(i18n.AccountEmailExpired), emailValue: email}, "")
		default:
			s.failure(w, r, "resend email code", err)
		}
		return
	}
	s.redirect(w, r, "account/emails/verify", url.Values{"done": {"resent"}})
}

// handleEmailRemovePost removes a non-primary address.
func (s *Service) handleEmailRemovePost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.emailChange(w, r, who, "account-email-remove", "email_removed", func(who *signedIn, email string) error {
		_, err := s.accounts.RemoveEmail(s.asUser(r.Context(), who.user.GetId()), &accountsv1.RemoveEmailRequest{UserId: who.user.GetId(), Email: email})
		return err
	})
}

// handleEmailPrimaryPost makes an address the primary one.
func (s *Service) handleEmailPrimaryPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.emailChange(w, r, who, "account-email-primary", "email_primary", func(who *signedIn, email string) error {
		_, err := s.accounts.SetPrimaryEmail(s.asUser(r.Context(), who.user.GetId()), &accountsv1.SetPrimaryEmailRequest{UserId: who.user.GetId(), Email: email})
		return err
	})
}

// emailChange runs a change of one of the user's addresses posted by form.
// Refusals (the primary address cannot be removed, an address that is no
// longer there) are shown at the top of the profile page.
func (s *Service) emailChange(w http.ResponseWriter, r *http.Request, who *signedIn, form, doneKey string, change func(*signedIn, string) error) {
	if !s.checkAccountCSRF(w, r, form) {
		return
	}
	email := truncate(strings.TrimSpace(r.PostFormValue("email")), 254)
	err := change(who, email)
	switch kind := errs.KindOf(err); {
	case err == nil:
		s.done(w, r, "account", doneKey)
	case kind == errs.KindInvalid || kind == errs.KindNotFound || kind == errs.KindFailedPrecondition:
		s.showProfile(w, r, http.StatusBadRequest, who, profileErrors{form: errs.PublicMessage(err)}, "")
	default:
		s.failure(w, r, form, err)
	}
}
