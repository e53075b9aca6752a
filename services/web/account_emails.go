package web

import (
	"crypto/hmac"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/input"
	"gatehouse.dev/services/web/internal/render"
)

// The email addresses of the account, on the profile page: adding one (a
// 6-digit code emailed by notify, typed on /account/emails/verify), making one
// primary and removing one. Between the form and the code the browser holds
// the add-email cookie (cookie.AddEmail), sealed to its session.

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
	ctx := s.asUser(r.Context(), who)
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
		Email: typed, Purpose: notifyv1.Purpose_PURPOSE_ADD_EMAIL, UserId: who.user.GetId(), ClientIp: clientaddr.String(r), Locale: l.Lang,
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
	ctx := s.asUser(r.Context(), who)
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
	_, err := s.notify.ResendVerification(s.asUser(r.Context(), who), &notifyv1.ResendVerificationRequest{
		VerificationId: verificationID, ClientIp: clientaddr.String(r),
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
		_, err := s.accounts.RemoveEmail(s.asUser(r.Context(), who), &accountsv1.RemoveEmailRequest{UserId: who.user.GetId(), Email: email})
		return err
	})
}

// handleEmailPrimaryPost makes an address the primary one.
func (s *Service) handleEmailPrimaryPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.emailChange(w, r, who, "account-email-primary", "email_primary", func(who *signedIn, email string) error {
		_, err := s.accounts.SetPrimaryEmail(s.asUser(r.Context(), who), &accountsv1.SetPrimaryEmailRequest{UserId: who.user.GetId(), Email: email})
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
