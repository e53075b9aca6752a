package web

// The texts of the password recovery pages (recover.go). They are merged into
// the catalog (messages.go) when the package starts, so that this feature's
// texts live with it; a translation adds its own map here under its tag.
const (
	msgRecoverTitle          msgID = "recover.title"
	msgRecoverIntro          msgID = "recover.intro"
	msgRecoverEmailHint      msgID = "recover.email.hint"
	msgRecoverSubmit         msgID = "recover.submit"
	msgRecoverEmailNone      msgID = "recover.email_required"
	msgRecoverRateLimited    msgID = "recover.rate_limited"
	msgRecoverBackToSignIn   msgID = "recover.back_to_sign_in"
	msgRecoverSentTitle      msgID = "recover.sent.title"
	msgRecoverSentBody       msgID = "recover.sent.body"
	msgRecoverSentSpam       msgID = "recover.sent.spam"
	msgRecoverSentAgain      msgID = "recover.sent.again"
	msgRecoverChooseTitle    msgID = "recover.choose.title"
	msgRecoverChooseIntro    msgID = "recover.choose.intro"
	msgRecoverChooseSubmit   msgID = "recover.choose.submit"
	msgRecoverDoneTitle      msgID = "recover.done.title"
	msgRecoverDoneBody       msgID = "recover.done.body"
	msgRecoverDoneSignIn     msgID = "recover.done.sign_in"
	msgRecoverInvalidTitle   msgID = "recover.invalid.title"
	msgRecoverInvalidLink    msgID = "recover.invalid.link"
	msgRecoverExpiredLink    msgID = "recover.invalid.expired"
	msgRecoverStartAgain     msgID = "recover.invalid.start_again"
	msgRecoverAccountBlocked msgID = "recover.account_blocked"
	msgRecoverForgot         msgID = "recover.forgot"
)

var recoverCatalogs = map[string]map[msgID]string{
	"en": {
		msgRecoverTitle:          "Reset your password",
		msgRecoverIntro:          "Enter the email address of your account. We will send you a link to choose a new password.",
		msgRecoverEmailHint:      "The address you used to create your account, or one you added later.",
		msgRecoverSubmit:         "Send the link",
		msgRecoverEmailNone:      "Enter your email address.",
		msgRecoverRateLimited:    "Too many reset links were asked for from your network. Try again later.",
		msgRecoverBackToSignIn:   "Back to sign in",
		msgRecoverSentTitle:      "Check your email",
		msgRecoverSentBody:       "If an account uses %s, we sent a link to that address to choose a new password. The link is valid for 10 minutes.",
		msgRecoverSentSpam:       "Nothing after a few minutes? Check your spam folder, or the address you typed.",
		msgRecoverSentAgain:      "Use a different address",
		msgRecoverChooseTitle:    "Choose a new password",
		msgRecoverChooseIntro:    "Once you change it, you are signed out everywhere you use a browser, and you sign in with the new password.",
		msgRecoverChooseSubmit:   "Change password",
		msgRecoverDoneTitle:      "Your password was changed",
		msgRecoverDoneBody:       "Sign in with your new password. Browsers that were signed in to your account have been signed out.",
		msgRecoverDoneSignIn:     "Sign in",
		msgRecoverInvalidTitle:   "This link does not work",
		msgRecoverInvalidLink:    "This is not a valid password reset link. Copy the whole link from the email, or ask for a new one.",
		msgRecoverExpiredLink:    "This link has expired or has already been used. Links work once, for 10 minutes. Ask for a new one.",
		msgRecoverStartAgain:     "Ask for a new link",
		msgRecoverAccountBlocked: "The password of this account cannot be changed this way. Contact the server's administrators.",
		msgRecoverForgot:         "Forgot your password?",
	},
}

func init() {
	for lang, msgs := range recoverCatalogs {
		if catalogs[lang] == nil {
			catalogs[lang] = map[msgID]string{}
		}
		for id, text := range msgs {
			catalogs[lang][id] = text
		}
	}
	pageNames = append(pageNames, "recover", "recover_password", "recover_message")
}
