package i18n

// The texts of registration policy (closed registration, registration
// tokens), and a few later ones of the account and start pages: their ids,
// and the English texts (registrationFrench has the French ones).
const (
	RegisterClosedTitle   ID = "register.closed.title"
	RegisterClosedBody    ID = "register.closed.body"
	FieldRegToken         ID = "field.registration_token"
	FieldRegTokenHint     ID = "field.registration_token.hint"
	RegisterTokenRequired ID = "register.token_required"
	RegisterTokenInvalid  ID = "register.token_invalid"
	CrossSigningAllow     ID = "account.cross_signing.allow"
	CrossSigningAllowedH  ID = "account.cross_signing.allowed_heading"
	CrossSigningAllowed   ID = "account.cross_signing.allowed"
	HomeAccount           ID = "home.account"
	LayoutPrivacy         ID = "layout.privacy"
)

// registrationEnglish are the English texts of registration policy.
func registrationEnglish() Texts {
	return Texts{
		RegisterClosedTitle:   "Registration is closed",
		RegisterClosedBody:    "New accounts cannot be created on this server. If you have an account, sign in.",
		FieldRegToken:         "Registration token",
		FieldRegTokenHint:     "This server asks for a token to create an account. Ask its administrators for one.",
		RegisterTokenRequired: "Enter the registration token you were given.",
		RegisterTokenInvalid:  "This registration token is not valid. Check it, or ask for a new one.",
		CrossSigningAllow:     "Allow the reset for 10 minutes",
		CrossSigningAllowedH:  "You can reset your digital identity now",
		CrossSigningAllowed:   "Go back to your app and finish the reset within 10 minutes. After that, it will ask you to come here again.",
		HomeAccount:           "Manage your account",
		LayoutPrivacy:         "Privacy policy",
	}
}
