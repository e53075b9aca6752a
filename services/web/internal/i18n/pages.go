package i18n

// The texts of the layout, the form fields and the sign-in, registration,
// consent, device link, start and error pages: their ids, and the English
// texts (pagesFrench has the French ones).

// The texts, by page.
const (
	SkipToContent ID = "layout.skip_to_content"
	Footer        ID = "layout.footer"
	SignOut       ID = "layout.sign_out"

	FieldUsername        ID = "field.username"
	FieldUsernameHint    ID = "field.username.hint"
	FieldPassword        ID = "field.password"
	FieldNewPassword     ID = "field.new_password"
	FieldNewPasswordHint ID = "field.new_password.hint"
	FieldConfirmPassword ID = "field.confirm_password"
	FieldEmail           ID = "field.email"
	FieldEmailHint       ID = "field.email.hint"
	FieldCode            ID = "field.code"
	FieldCodeHint        ID = "field.code.hint"
	FieldUserCode        ID = "field.user_code"
	FieldUserCodeHint    ID = "field.user_code.hint"
	FieldTerms           ID = "field.terms"
	FieldTermsLink       ID = "field.terms.link"

	LoginTitle        ID = "login.title"
	LoginFor          ID = "login.for"
	LoginForDevice    ID = "login.for_device"
	LoginSubmit       ID = "login.submit"
	LoginNoAccount    ID = "login.no_account"
	LoginCreate       ID = "login.create"
	LoginWrong        ID = "login.wrong"
	LoginBlocked      ID = "login.blocked"
	LoginRateLimited  ID = "login.rate_limited"
	LoginUsernameNone ID = "login.username_required"
	LoginPasswordNone ID = "login.password_required"

	RegisterTitle         ID = "register.title"
	RegisterIntro         ID = "register.intro"
	RegisterSubmit        ID = "register.submit"
	RegisterHaveAccount   ID = "register.have_account"
	RegisterSignIn        ID = "register.sign_in"
	RegisterUsernameNone  ID = "register.username_required"
	RegisterUsernameBad   ID = "register.username_invalid"
	RegisterUsernameLong  ID = "register.username_long"
	RegisterUsernameTaken ID = "register.username_taken"
	RegisterEmailBad      ID = "register.email_invalid"
	RegisterEmailTaken    ID = "register.email_taken"
	RegisterPasswordShort ID = "register.password_short"
	RegisterPasswordLong  ID = "register.password_long"
	RegisterPasswordWeak  ID = "register.password_weak"
	RegisterPasswordCommn ID = "register.password_common"
	RegisterPasswordUser  ID = "register.password_username"
	RegisterConfirmWrong  ID = "register.confirm_mismatch"
	RegisterTermsNeeded   ID = "register.terms_required"
	RegisterRateLimited   ID = "register.rate_limited"

	VerifyTitle     ID = "verify.title"
	VerifySent      ID = "verify.sent"
	VerifySubmit    ID = "verify.submit"
	VerifyResend    ID = "verify.resend"
	VerifyResent    ID = "verify.resent"
	VerifyStartOver ID = "verify.start_over"
	VerifyNoCode    ID = "verify.code_required"
	VerifyWrong     ID = "verify.wrong"
	VerifyExpired   ID = "verify.expired"
	VerifyWait      ID = "verify.wait"
	VerifyNoPending ID = "verify.no_pending"
	// Words for other services' answers (refusals.go).
	VerifyWrongLeft     ID = "verify.wrong_left"
	VerifyWrongOneLeft  ID = "verify.wrong_one_left"
	VerifyWrongNoneLeft ID = "verify.wrong_none_left"
	TryAgainMoment      ID = "try_again.moment"
	TryAgainSeconds     ID = "try_again.seconds"
	TryAgainMinute      ID = "try_again.minute"
	TryAgainMinutes     ID = "try_again.minutes"

	ConsentTitle        ID = "consent.title"
	ConsentIntro        ID = "consent.intro"
	ConsentDeviceIntro  ID = "consent.device_intro"
	ConsentDeviceCode   ID = "consent.device_code"
	ConsentWants        ID = "consent.wants"
	ConsentWebsite      ID = "consent.website"
	ConsentPolicy       ID = "consent.policy"
	ConsentTerms        ID = "consent.terms"
	ConsentAccount      ID = "consent.account"
	ConsentNotYou       ID = "consent.not_you"
	ConsentAllow        ID = "consent.allow"
	ConsentDeny         ID = "consent.deny"
	ConsentTrust        ID = "consent.trust"
	ConsentAdminMissing ID = "consent.admin_missing"
	ConsentLogoAlt      ID = "consent.logo_alt"

	ScopeAPI          ID = "scope.api"
	ScopeDevice       ID = "scope.device"
	ScopeNewDevice    ID = "scope.new_device"
	ScopeSynapseAdmin ID = "scope.synapse_admin"
	ScopeMASAdmin     ID = "scope.mas_admin"
	ScopeGraphQL      ID = "scope.graphql"
	ScopeOpenID       ID = "scope.openid"
	ScopeEmail        ID = "scope.email"
	ScopeOther        ID = "scope.other"

	LinkTitle       ID = "link.title"
	LinkIntro       ID = "link.intro"
	LinkSubmit      ID = "link.submit"
	LinkCodeUnknown ID = "link.code_unknown"
	LinkCodeUsed    ID = "link.code_used"
	LinkRateLimited ID = "link.rate_limited"
	LinkDoneTitle   ID = "link.done.title"
	LinkDoneBody    ID = "link.done.body"
	LinkDeniedTitle ID = "link.denied.title"
	LinkDeniedBody  ID = "link.denied.body"

	HomeTitle     ID = "home.title"
	HomeSignedIn  ID = "home.signed_in"
	HomeSignedOut ID = "home.signed_out"
	HomeSignIn    ID = "home.sign_in"
	HomeCreate    ID = "home.create"

	ErrorTitle            ID = "error.title"
	ErrorBackToApp        ID = "error.back_to_app"
	ErrorNotFoundTitle    ID = "error.not_found.title"
	ErrorNotFound         ID = "error.not_found"
	ErrorHome             ID = "error.home"
	ErrorMethodTitle      ID = "error.method.title"
	ErrorMethod           ID = "error.method"
	ErrorCrossOriginTitle ID = "error.cross_origin.title"
	ErrorCrossOrigin      ID = "error.cross_origin"
	ErrorFormExpired      ID = "error.form_expired"
	ErrorUnavailable      ID = "error.unavailable"
	ErrorInternal         ID = "error.internal"
	ErrorGrantUnknown     ID = "error.grant_unknown"
	ErrorGrantAnswered    ID = "error.grant_answered"
	ErrorGrantExpired     ID = "error.grant_expired"
	ErrorBadRequest       ID = "error.bad_request"
)

// pagesEnglish are the English texts of the sign-in, registration, consent,
// device and error pages and of the layout.
func pagesEnglish() Texts {
	return Texts{
		SkipToContent: "Skip to content",
		Footer:        "%s · sign-in for %s",
		SignOut:       "Sign out",

		FieldUsername:        "Username",
		FieldUsernameHint:    "Your Matrix ID will be @username:%s. Use lower-case letters, digits and . _ = - / +",
		FieldPassword:        "Password",
		FieldNewPassword:     "Password",
		FieldNewPasswordHint: "At least 8 characters. A few unrelated words make a strong password.",
		FieldConfirmPassword: "Confirm password",
		FieldEmail:           "Email address",
		FieldEmailHint:       "We will send a code to this address to check that it is yours.",
		FieldCode:            "Code",
		FieldCodeHint:        "The 6 digits from the email.",
		FieldUserCode:        "Code shown on your device",
		FieldUserCodeHint:    "8 letters, like BCDF-GHJK.",
		FieldTerms:           "I accept the",
		FieldTermsLink:       "terms of service",

		LoginTitle:        "Sign in",
		LoginFor:          "to continue to %s",
		LoginForDevice:    "to connect your device",
		LoginSubmit:       "Sign in",
		LoginNoAccount:    "New here?",
		LoginCreate:       "Create an account",
		LoginWrong:        "The username or password is incorrect.",
		LoginBlocked:      "This account cannot sign in. Contact the server's administrators.",
		LoginRateLimited:  "Too many sign-in attempts. Wait a minute, then try again.",
		LoginUsernameNone: "Enter your username.",
		LoginPasswordNone: "Enter your password.",

		RegisterTitle:         "Create an account",
		RegisterIntro:         "on %s",
		RegisterSubmit:        "Continue",
		RegisterHaveAccount:   "Already have an account?",
		RegisterSignIn:        "Sign in",
		RegisterUsernameNone:  "Choose a username.",
		RegisterUsernameBad:   "Use only lower-case letters, digits and . _ = - / +, and not only digits.",
		RegisterUsernameLong:  "This username is too long.",
		RegisterUsernameTaken: "This username is taken. Choose another one.",
		RegisterEmailBad:      "Enter an email address like name@example.com.",
		RegisterEmailTaken:    "An account already uses this email address. Sign in instead, or use another address.",
		RegisterPasswordShort: "Use at least 8 characters.",
		RegisterPasswordLong:  "Use at most 256 characters.",
		RegisterPasswordWeak:  "This password is too easy to guess. Make it longer or mix letters, digits and symbols.",
		RegisterPasswordCommn: "This password is one of the most common ones. Choose another.",
		RegisterPasswordUser:  "Do not build your password from your username.",
		RegisterConfirmWrong:  "The two passwords are not the same.",
		RegisterTermsNeeded:   "Accept the terms of service to create an account.",
		RegisterRateLimited:   "Too many accounts were created from your network. Try again later.",

		VerifyTitle:         "Check your email",
		VerifySent:          "We sent a 6-digit code to %s. Enter it below to finish creating your account.",
		VerifySubmit:        "Create account",
		VerifyResend:        "Send a new code",
		VerifyResent:        "We sent a new code. The previous one no longer works.",
		VerifyStartOver:     "Use a different email address",
		VerifyNoCode:        "Enter the code from the email.",
		VerifyWrong:         "This code is not right. Check the email and try again.",
		VerifyExpired:       "This code has expired or was tried too many times. Send a new code.",
		VerifyWait:          "Wait a little before asking for another code.",
		VerifyNoPending:     "Your sign-up has expired. Start again.",
		VerifyWrongLeft:     "This code is not right: %d attempts left.",
		VerifyWrongOneLeft:  "This code is not right: 1 attempt left.",
		VerifyWrongNoneLeft: "This code is not right, and no attempts left. Send a new code.",
		TryAgainMoment:      "Too many tries. Try again in a moment.",
		TryAgainSeconds:     "Too many tries. Try again in %d seconds.",
		TryAgainMinute:      "Too many tries. Try again in a minute.",
		TryAgainMinutes:     "Too many tries. Try again in %d minutes.",

		ConsentTitle:        "Allow access to your account?",
		ConsentIntro:        "%s wants to use your account.",
		ConsentDeviceIntro:  "%s on another device wants to use your account.",
		ConsentDeviceCode:   "Check that your device shows the code",
		ConsentWants:        "This will allow it to:",
		ConsentWebsite:      "Website",
		ConsentPolicy:       "Privacy policy",
		ConsentTerms:        "Terms of service",
		ConsentAccount:      "Signed in as",
		ConsentNotYou:       "Not you? Sign out",
		ConsentAllow:        "Continue",
		ConsentDeny:         "Cancel",
		ConsentTrust:        "Only continue if you trust this application and started this sign-in yourself.",
		ConsentAdminMissing: "This application asks for administrator access, which your account does not have.",
		ConsentLogoAlt:      "%s logo",

		ScopeAPI:          "Read your messages, send messages and act in your rooms on your behalf",
		ScopeDevice:       "Sign in as the device %s",
		ScopeNewDevice:    "Sign in as a new device",
		ScopeSynapseAdmin: "Administer the Matrix server: manage every user and room",
		ScopeMASAdmin:     "Administer the accounts of this server",
		ScopeGraphQL:      "See and change your account settings",
		ScopeOpenID:       "Know who you are (your user ID)",
		ScopeEmail:        "See your email address",
		ScopeOther:        "Other access: %s",

		LinkTitle:       "Connect a device",
		LinkIntro:       "Enter the code your device shows to connect it to your account.",
		LinkSubmit:      "Continue",
		LinkCodeUnknown: "This code is not valid. Check it and try again.",
		LinkCodeUsed:    "This code has already been used or has expired. Start again on your device.",
		LinkRateLimited: "Too many codes were tried. Wait a minute, then try again.",
		LinkDoneTitle:   "Device connected",
		LinkDoneBody:    "%s can now use your account. You can return to your device.",
		LinkDeniedTitle: "Access denied",
		LinkDeniedBody:  "%s will not be connected to your account. You can close this page.",

		HomeTitle:     "Your account",
		HomeSignedIn:  "You are signed in as",
		HomeSignedOut: "You are not signed in.",
		HomeSignIn:    "Sign in",
		HomeCreate:    "Create an account",

		ErrorTitle:            "Something went wrong",
		ErrorBackToApp:        "Go back to the application and start again.",
		ErrorNotFoundTitle:    "Page not found",
		ErrorNotFound:         "There is nothing at this address. Check it, or go back to the application you came from.",
		ErrorHome:             "Go to the start page",
		ErrorMethodTitle:      "Not allowed",
		ErrorMethod:           "This page cannot be used this way.",
		ErrorCrossOriginTitle: "Request refused",
		ErrorCrossOrigin:      "This form was sent from another website, so it was refused. Open the page again and send it from there.",
		ErrorFormExpired:      "This form has expired. Check it and send it again.",
		ErrorUnavailable:      "This is unavailable right now. Try again in a moment.",
		ErrorInternal:         "An unexpected error happened. Try again; if it keeps happening, tell the server's administrators.",
		ErrorGrantUnknown:     "This sign-in request is not valid or has expired.",
		ErrorGrantAnswered:    "This sign-in request has already been answered.",
		ErrorGrantExpired:     "This sign-in request has expired.",
		ErrorBadRequest:       "The request could not be understood.",
	}
}
