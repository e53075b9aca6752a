package web

// The texts of the compat SSO pages (sso.go), merged into the catalog
// (messages.go) when the package starts.
const (
	msgSSOTitle          msgID = "sso.title"
	msgSSOIntro          msgID = "sso.intro"
	msgSSOAccess         msgID = "sso.access"
	msgSSOInsecure       msgID = "sso.insecure"
	msgSSOTrust          msgID = "sso.trust"
	msgSSOContinue       msgID = "sso.continue"
	msgSSOCancel         msgID = "sso.cancel"
	msgSSOBadRedirect    msgID = "sso.bad_redirect"
	msgSSOCancelledTitle msgID = "sso.cancelled.title"
	msgSSOCancelledBody  msgID = "sso.cancelled.body"
)

var ssoCatalogs = map[string]map[msgID]string{
	"en": {
		msgSSOTitle:          "Continue to %s?",
		msgSSOIntro:          "An application asks to sign in to your account and will continue at this address:",
		msgSSOAccess:         "It will be able to read your messages, send messages and act in your rooms on your behalf.",
		msgSSOInsecure:       "This address does not use a secure connection (http).",
		msgSSOTrust:          "Only continue if you started this sign-in yourself and you trust this address.",
		msgSSOContinue:       "Continue",
		msgSSOCancel:         "Cancel",
		msgSSOBadRedirect:    "The application asked to return to an address that is not valid, so the sign-in cannot go on.",
		msgSSOCancelledTitle: "Sign-in cancelled",
		msgSSOCancelledBody:  "Nothing was shared with %s. You can close this page.",
	},
}

func init() {
	for lang, msgs := range ssoCatalogs {
		if catalogs[lang] == nil {
			catalogs[lang] = map[msgID]string{}
		}
		for id, text := range msgs {
			catalogs[lang][id] = text
		}
	}
	pageNames = append(pageNames, "sso", "sso_message")
}
