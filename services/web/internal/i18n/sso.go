package i18n

// The texts of the compat SSO pages (templates/sso*.html): their ids,
// and the English texts (ssoFrench has the French ones).
const (
	SSOTitle          ID = "sso.title"
	SSOIntro          ID = "sso.intro"
	SSOAccess         ID = "sso.access"
	SSOInsecure       ID = "sso.insecure"
	SSOTrust          ID = "sso.trust"
	SSOContinue       ID = "sso.continue"
	SSOCancel         ID = "sso.cancel"
	SSOBadRedirect    ID = "sso.bad_redirect"
	SSOCancelledTitle ID = "sso.cancelled.title"
	SSOCancelledBody  ID = "sso.cancelled.body"
)

// ssoEnglish are the English texts of the compat SSO pages.
func ssoEnglish() Texts {
	return Texts{
		SSOTitle:          "Continue to %s?",
		SSOIntro:          "An application asks to sign in to your account and will continue at this address:",
		SSOAccess:         "It will be able to read your messages, send messages and act in your rooms on your behalf.",
		SSOInsecure:       "This address does not use a secure connection (http).",
		SSOTrust:          "Only continue if you started this sign-in yourself and you trust this address.",
		SSOContinue:       "Continue",
		SSOCancel:         "Cancel",
		SSOBadRedirect:    "The application asked to return to an address that is not valid, so the sign-in cannot go on.",
		SSOCancelledTitle: "Sign-in cancelled",
		SSOCancelledBody:  "Nothing was shared with %s. You can close this page.",
	}
}
