package web

// The texts of registration policy: closed registration, registration tokens
// and signing in with an email address. Merged into the catalog at start.
const (
	msgRegisterClosedTitle   msgID = "register.closed.title"
	msgRegisterClosedBody    msgID = "register.closed.body"
	msgFieldRegToken         msgID = "field.registration_token"
	msgFieldRegTokenHint     msgID = "field.registration_token.hint"
	msgRegisterTokenRequired msgID = "register.token_required"
	msgRegisterTokenInvalid  msgID = "register.token_invalid"
	msgCrossSigningAllow     msgID = "account.cross_signing.allow"
	msgCrossSigningAllowedH  msgID = "account.cross_signing.allowed_heading"
	msgCrossSigningAllowed   msgID = "account.cross_signing.allowed"
	msgHomeAccount           msgID = "home.account"
	msgLayoutPrivacy         msgID = "layout.privacy"
)

var registrationCatalogs = map[string]map[msgID]string{
	"en": {
		msgRegisterClosedTitle:   "Registration is closed",
		msgRegisterClosedBody:    "New accounts cannot be created on this server. If you have an account, sign in.",
		msgFieldRegToken:         "Registration token",
		msgFieldRegTokenHint:     "This server asks for a token to create an account. Ask its administrators for one.",
		msgRegisterTokenRequired: "Enter the registration token you were given.",
		msgRegisterTokenInvalid:  "This registration token is not valid. Check it, or ask for a new one.",
		msgCrossSigningAllow:     "Allow the reset for 10 minutes",
		msgCrossSigningAllowedH:  "You can reset your digital identity now",
		msgCrossSigningAllowed:   "Go back to your app and finish the reset within 10 minutes. After that, it will ask you to come here again.",
		msgHomeAccount:           "Manage your account",
		msgLayoutPrivacy:         "Privacy policy",
	},
}

func init() {
	for lang, msgs := range registrationCatalogs {
		if catalogs[lang] == nil {
			catalogs[lang] = map[msgID]string{}
		}
		for id, text := range msgs {
			catalogs[lang][id] = text
		}
	}
}
