package web

import (
	"fmt"
	"sort"
)

// msgID names one piece of text a person sees. Every such text lives in the
// catalog below, keyed by its id, so a translation is one more map: add it to
// catalogs under its BCP 47 tag, as messages_fr*.go do for French; the pages
// pick a language from Accept-Language (render.go). Texts with %s or %d take
// arguments, in order.
type msgID string

// The texts, by page.
const (
	msgSkipToContent msgID = "layout.skip_to_content"
	msgFooter        msgID = "layout.footer"
	msgSignOut       msgID = "layout.sign_out"

	msgFieldUsername        msgID = "field.username"
	msgFieldUsernameHint    msgID = "field.username.hint"
	msgFieldPassword        msgID = "field.password"
	msgFieldNewPassword     msgID = "field.new_password"
	msgFieldNewPasswordHint msgID = "field.new_password.hint"
	msgFieldConfirmPassword msgID = "field.confirm_password"
	msgFieldEmail           msgID = "field.email"
	msgFieldEmailHint       msgID = "field.email.hint"
	msgFieldCode            msgID = "field.code"
	msgFieldCodeHint        msgID = "field.code.hint"
	msgFieldUserCode        msgID = "field.user_code"
	msgFieldUserCodeHint    msgID = "field.user_code.hint"
	msgFieldTerms           msgID = "field.terms"
	msgFieldTermsLink       msgID = "field.terms.link"

	msgLoginTitle        msgID = "login.title"
	msgLoginFor          msgID = "login.for"
	msgLoginForDevice    msgID = "login.for_device"
	msgLoginSubmit       msgID = "login.submit"
	msgLoginNoAccount    msgID = "login.no_account"
	msgLoginCreate       msgID = "login.create"
	msgLoginWrong        msgID = "login.wrong"
	msgLoginBlocked      msgID = "login.blocked"
	msgLoginRateLimited  msgID = "login.rate_limited"
	msgLoginUsernameNone msgID = "login.username_required"
	msgLoginPasswordNone msgID = "login.password_required"

	msgRegisterTitle         msgID = "register.title"
	msgRegisterIntro         msgID = "register.intro"
	msgRegisterSubmit        msgID = "register.submit"
	msgRegisterHaveAccount   msgID = "register.have_account"
	msgRegisterSignIn        msgID = "register.sign_in"
	msgRegisterUsernameNone  msgID = "register.username_required"
	msgRegisterUsernameBad   msgID = "register.username_invalid"
	msgRegisterUsernameLong  msgID = "register.username_long"
	msgRegisterUsernameTaken msgID = "register.username_taken"
	msgRegisterEmailBad      msgID = "register.email_invalid"
	msgRegisterEmailTaken    msgID = "register.email_taken"
	msgRegisterPasswordShort msgID = "register.password_short"
	msgRegisterPasswordLong  msgID = "register.password_long"
	msgRegisterPasswordWeak  msgID = "register.password_weak"
	msgRegisterPasswordCommn msgID = "register.password_common"
	msgRegisterPasswordUser  msgID = "register.password_username"
	msgRegisterConfirmWrong  msgID = "register.confirm_mismatch"
	msgRegisterTermsNeeded   msgID = "register.terms_required"
	msgRegisterRateLimited   msgID = "register.rate_limited"

	msgVerifyTitle     msgID = "verify.title"
	msgVerifySent      msgID = "verify.sent"
	msgVerifySubmit    msgID = "verify.submit"
	msgVerifyResend    msgID = "verify.resend"
	msgVerifyResent    msgID = "verify.resent"
	msgVerifyStartOver msgID = "verify.start_over"
	msgVerifyNoCode    msgID = "verify.code_required"
	msgVerifyWrong     msgID = "verify.wrong"
	msgVerifyExpired   msgID = "verify.expired"
	msgVerifyWait      msgID = "verify.wait"
	msgVerifyNoPending msgID = "verify.no_pending"
	// Words for other services' answers (notify_errors.go).
	msgVerifyWrongLeft     msgID = "verify.wrong_left"
	msgVerifyWrongOneLeft  msgID = "verify.wrong_one_left"
	msgVerifyWrongNoneLeft msgID = "verify.wrong_none_left"
	msgTryAgainMoment      msgID = "try_again.moment"
	msgTryAgainSeconds     msgID = "try_again.seconds"
	msgTryAgainMinute      msgID = "try_again.minute"
	msgTryAgainMinutes     msgID = "try_again.minutes"

	msgConsentTitle        msgID = "consent.title"
	msgConsentIntro        msgID = "consent.intro"
	msgConsentDeviceIntro  msgID = "consent.device_intro"
	msgConsentDeviceCode   msgID = "consent.device_code"
	msgConsentWants        msgID = "consent.wants"
	msgConsentWebsite      msgID = "consent.website"
	msgConsentPolicy       msgID = "consent.policy"
	msgConsentTerms        msgID = "consent.terms"
	msgConsentAccount      msgID = "consent.account"
	msgConsentNotYou       msgID = "consent.not_you"
	msgConsentAllow        msgID = "consent.allow"
	msgConsentDeny         msgID = "consent.deny"
	msgConsentTrust        msgID = "consent.trust"
	msgConsentAdminMissing msgID = "consent.admin_missing"
	msgConsentLogoAlt      msgID = "consent.logo_alt"

	msgScopeAPI          msgID = "scope.api"
	msgScopeDevice       msgID = "scope.device"
	msgScopeNewDevice    msgID = "scope.new_device"
	msgScopeSynapseAdmin msgID = "scope.synapse_admin"
	msgScopeMASAdmin     msgID = "scope.mas_admin"
	msgScopeGraphQL      msgID = "scope.graphql"
	msgScopeOpenID       msgID = "scope.openid"
	msgScopeEmail        msgID = "scope.email"
	msgScopeOther        msgID = "scope.other"

	msgLinkTitle       msgID = "link.title"
	msgLinkIntro       msgID = "link.intro"
	msgLinkSubmit      msgID = "link.submit"
	msgLinkCodeUnknown msgID = "link.code_unknown"
	msgLinkCodeUsed    msgID = "link.code_used"
	msgLinkRateLimited msgID = "link.rate_limited"
	msgLinkDoneTitle   msgID = "link.done.title"
	msgLinkDoneBody    msgID = "link.done.body"
	msgLinkDeniedTitle msgID = "link.denied.title"
	msgLinkDeniedBody  msgID = "link.denied.body"

	msgHomeTitle     msgID = "home.title"
	msgHomeSignedIn  msgID = "home.signed_in"
	msgHomeSignedOut msgID = "home.signed_out"
	msgHomeSignIn    msgID = "home.sign_in"
	msgHomeCreate    msgID = "home.create"

	msgErrTitle            msgID = "error.title"
	msgErrBackToApp        msgID = "error.back_to_app"
	msgErrNotFoundTitle    msgID = "error.not_found.title"
	msgErrNotFound         msgID = "error.not_found"
	msgErrHome             msgID = "error.home"
	msgErrMethodTitle      msgID = "error.method.title"
	msgErrMethod           msgID = "error.method"
	msgErrCrossOriginTitle msgID = "error.cross_origin.title"
	msgErrCrossOrigin      msgID = "error.cross_origin"
	msgErrFormExpired      msgID = "error.form_expired"
	msgErrUnavailable      msgID = "error.unavailable"
	msgErrInternal         msgID = "error.internal"
	msgErrGrantUnknown     msgID = "error.grant_unknown"
	msgErrGrantAnswered    msgID = "error.grant_answered"
	msgErrGrantExpired     msgID = "error.grant_expired"
	msgErrBadRequest       msgID = "error.bad_request"
)

// catalogs holds the texts of every language, by BCP 47 tag.
var catalogs = map[string]map[msgID]string{
	"en": {
		msgSkipToContent: "Skip to content",
		msgFooter:        "%s · sign-in for %s",
		msgSignOut:       "Sign out",

		msgFieldUsername:        "Username",
		msgFieldUsernameHint:    "Your Matrix ID will be @username:%s. Use lower-case letters, digits and . _ = - / +",
		msgFieldPassword:        "Password",
		msgFieldNewPassword:     "Password",
		msgFieldNewPasswordHint: "At least 8 characters. A few unrelated words make a strong password.",
		msgFieldConfirmPassword: "Confirm password",
		msgFieldEmail:           "Email address",
		msgFieldEmailHint:       "We will send a code to this address to check that it is yours.",
		msgFieldCode:            "Code",
		msgFieldCodeHint:        "The 6 digits from the email.",
		msgFieldUserCode:        "Code shown on your device",
		msgFieldUserCodeHint:    "8 letters, like BCDF-GHJK.",
		msgFieldTerms:           "I accept the",
		msgFieldTermsLink:       "terms of service",

		msgLoginTitle:        "Sign in",
		msgLoginFor:          "to continue to %s",
		msgLoginForDevice:    "to connect your device",
		msgLoginSubmit:       "Sign in",
		msgLoginNoAccount:    "New here?",
		msgLoginCreate:       "Create an account",
		msgLoginWrong:        "The username or password is incorrect.",
		msgLoginBlocked:      "This account cannot sign in. Contact the server's administrators.",
		msgLoginRateLimited:  "Too many sign-in attempts. Wait a minute, then try again.",
		msgLoginUsernameNone: "Enter your username.",
		msgLoginPasswordNone: "Enter your password.",

		msgRegisterTitle:         "Create an account",
		msgRegisterIntro:         "on %s",
		msgRegisterSubmit:        "Continue",
		msgRegisterHaveAccount:   "Already have an account?",
		msgRegisterSignIn:        "Sign in",
		msgRegisterUsernameNone:  "Choose a username.",
		msgRegisterUsernameBad:   "Use only lower-case letters, digits and . _ = - / +, and not only digits.",
		msgRegisterUsernameLong:  "This username is too long.",
		msgRegisterUsernameTaken: "This username is taken. Choose another one.",
		msgRegisterEmailBad:      "Enter an email address like name@example.com.",
		msgRegisterEmailTaken:    "An account already uses this email address. Sign in instead, or use another address.",
		msgRegisterPasswordShort: "Use at least 8 characters.",
		msgRegisterPasswordLong:  "Use at most 256 characters.",
		msgRegisterPasswordWeak:  "This password is too easy to guess. Make it longer or mix letters, digits and symbols.",
		msgRegisterPasswordCommn: "This password is one of the most common ones. Choose another.",
		msgRegisterPasswordUser:  "Do not build your password from your username.",
		msgRegisterConfirmWrong:  "The two passwords are not the same.",
		msgRegisterTermsNeeded:   "Accept the terms of service to create an account.",
		msgRegisterRateLimited:   "Too many accounts were created from your network. Try again later.",

		msgVerifyTitle:         "Check your email",
		msgVerifySent:          "We sent a 6-digit code to %s. Enter it below to finish creating your account.",
		msgVerifySubmit:        "Create account",
		msgVerifyResend:        "Send a new code",
		msgVerifyResent:        "We sent a new code. The previous one no longer works.",
		msgVerifyStartOver:     "Use a different email address",
		msgVerifyNoCode:        "Enter the code from the email.",
		msgVerifyWrong:         "This code is not right. Check the email and try again.",
		msgVerifyExpired:       "This code has expired or was tried too many times. Send a new code.",
		msgVerifyWait:          "Wait a little before asking for another code.",
		msgVerifyNoPending:     "Your sign-up has expired. Start again.",
		msgVerifyWrongLeft:     "This code is not right: %d attempts left.",
		msgVerifyWrongOneLeft:  "This code is not right: 1 attempt left.",
		msgVerifyWrongNoneLeft: "This code is not right, and no attempts left. Send a new code.",
		msgTryAgainMoment:      "Too many tries. Try again in a moment.",
		msgTryAgainSeconds:     "Too many tries. Try again in %d seconds.",
		msgTryAgainMinute:      "Too many tries. Try again in a minute.",
		msgTryAgainMinutes:     "Too many tries. Try again in %d minutes.",

		msgConsentTitle:        "Allow access to your account?",
		msgConsentIntro:        "%s wants to use your account.",
		msgConsentDeviceIntro:  "%s on another device wants to use your account.",
		msgConsentDeviceCode:   "Check that your device shows the code",
		msgConsentWants:        "This will allow it to:",
		msgConsentWebsite:      "Website",
		msgConsentPolicy:       "Privacy policy",
		msgConsentTerms:        "Terms of service",
		msgConsentAccount:      "Signed in as",
		msgConsentNotYou:       "Not you? Sign out",
		msgConsentAllow:        "Continue",
		msgConsentDeny:         "Cancel",
		msgConsentTrust:        "Only continue if you trust this application and started this sign-in yourself.",
		msgConsentAdminMissing: "This application asks for administrator access, which your account does not have.",
		msgConsentLogoAlt:      "%s logo",

		msgScopeAPI:          "Read your messages, send messages and act in your rooms on your behalf",
		msgScopeDevice:       "Sign in as the device %s",
		msgScopeNewDevice:    "Sign in as a new device",
		msgScopeSynapseAdmin: "Administer the Matrix server: manage every user and room",
		msgScopeMASAdmin:     "Administer the accounts of this server",
		msgScopeGraphQL:      "See and change your account settings",
		msgScopeOpenID:       "Know who you are (your user ID)",
		msgScopeEmail:        "See your email address",
		msgScopeOther:        "Other access: %s",

		msgLinkTitle:       "Connect a device",
		msgLinkIntro:       "Enter the code your device shows to connect it to your account.",
		msgLinkSubmit:      "Continue",
		msgLinkCodeUnknown: "This code is not valid. Check it and try again.",
		msgLinkCodeUsed:    "This code has already been used or has expired. Start again on your device.",
		msgLinkRateLimited: "Too many codes were tried. Wait a minute, then try again.",
		msgLinkDoneTitle:   "Device connected",
		msgLinkDoneBody:    "%s can now use your account. You can return to your device.",
		msgLinkDeniedTitle: "Access denied",
		msgLinkDeniedBody:  "%s will not be connected to your account. You can close this page.",

		msgHomeTitle:     "Your account",
		msgHomeSignedIn:  "You are signed in as",
		msgHomeSignedOut: "You are not signed in.",
		msgHomeSignIn:    "Sign in",
		msgHomeCreate:    "Create an account",

		msgErrTitle:            "Something went wrong",
		msgErrBackToApp:        "Go back to the application and start again.",
		msgErrNotFoundTitle:    "Page not found",
		msgErrNotFound:         "There is nothing at this address. Check it, or go back to the application you came from.",
		msgErrHome:             "Go to the start page",
		msgErrMethodTitle:      "Not allowed",
		msgErrMethod:           "This page cannot be used this way.",
		msgErrCrossOriginTitle: "Request refused",
		msgErrCrossOrigin:      "This form was sent from another website, so it was refused. Open the page again and send it from there.",
		msgErrFormExpired:      "This form has expired. Check it and send it again.",
		msgErrUnavailable:      "This is unavailable right now. Try again in a moment.",
		msgErrInternal:         "An unexpected error happened. Try again; if it keeps happening, tell the server's administrators.",
		msgErrGrantUnknown:     "This sign-in request is not valid or has expired.",
		msgErrGrantAnswered:    "This sign-in request has already been answered.",
		msgErrGrantExpired:     "This sign-in request has expired.",
		msgErrBadRequest:       "The request could not be understood.",
	},
}

// defaultLanguage is the language used when no other is chosen.
const defaultLanguage = "en"

// localizer gives the texts of one language.
type localizer struct {
	lang string
	msgs map[msgID]string
}

func newLocalizer(lang string) localizer {
	msgs, ok := catalogs[lang]
	if !ok {
		lang, msgs = defaultLanguage, catalogs[defaultLanguage]
	}
	return localizer{lang: lang, msgs: msgs}
}

// T returns the text of id, formatted with args; a missing text falls back to
// English, and a missing English text to the id itself (a test catches those).
func (l localizer) T(id msgID, args ...any) string {
	s, ok := l.msgs[id]
	if !ok {
		if s, ok = catalogs[defaultLanguage][id]; !ok {
			return string(id)
		}
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// languages lists the catalog's languages, sorted.
func languages() []string {
	out := make([]string, 0, len(catalogs))
	for lang := range catalogs {
		out = append(out, lang)
	}
	sort.Strings(out)
	return out
}
