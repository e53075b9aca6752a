package i18n

// The texts of the password recovery pages (recover.go, templates/recover*.html):
// their ids, and the English texts (recoverFrench has the French ones).
const (
	RecoverTitle          ID = "recover.title"
	RecoverIntro          ID = "recover.intro"
	RecoverEmailHint      ID = "recover.email.hint"
	RecoverSubmit         ID = "recover.submit"
	RecoverEmailNone      ID = "recover.email_required"
	RecoverRateLimited    ID = "recover.rate_limited"
	RecoverBackToSignIn   ID = "recover.back_to_sign_in"
	RecoverSentTitle      ID = "recover.sent.title"
	RecoverSentBody       ID = "recover.sent.body"
	RecoverSentSpam       ID = "recover.sent.spam"
	RecoverSentAgain      ID = "recover.sent.again"
	RecoverChooseTitle    ID = "recover.choose.title"
	RecoverChooseIntro    ID = "recover.choose.intro"
	RecoverChooseSubmit   ID = "recover.choose.submit"
	RecoverDoneTitle      ID = "recover.done.title"
	RecoverDoneBody       ID = "recover.done.body"
	RecoverDoneSignIn     ID = "recover.done.sign_in"
	RecoverInvalidTitle   ID = "recover.invalid.title"
	RecoverInvalidLink    ID = "recover.invalid.link"
	RecoverExpiredLink    ID = "recover.invalid.expired"
	RecoverStartAgain     ID = "recover.invalid.start_again"
	RecoverAccountBlocked ID = "recover.account_blocked"
	RecoverForgot         ID = "recover.forgot"
)

// recoverEnglish are the English texts of the password recovery pages.
func recoverEnglish() Texts {
	return Texts{
		RecoverTitle:          "Reset your password",
		RecoverIntro:          "Enter the email address of your account. We will send you a link to choose a new password.",
		RecoverEmailHint:      "The address you used to create your account, or one you added later.",
		RecoverSubmit:         "Send the link",
		RecoverEmailNone:      "Enter your email address.",
		RecoverRateLimited:    "Too many reset links were asked for, from your network or for this address. Try again later.",
		RecoverBackToSignIn:   "Back to sign in",
		RecoverSentTitle:      "Check your email",
		RecoverSentBody:       "If an account uses %s, we sent a link to that address to choose a new password. The link is valid for 10 minutes.",
		RecoverSentSpam:       "Nothing after a few minutes? Check your spam folder, or the address you typed.",
		RecoverSentAgain:      "Use a different address",
		RecoverChooseTitle:    "Choose a new password",
		RecoverChooseIntro:    "Once you change it, you are signed out everywhere you use a browser, and you sign in with the new password.",
		RecoverChooseSubmit:   "Change password",
		RecoverDoneTitle:      "Your password was changed",
		RecoverDoneBody:       "Sign in with your new password. Browsers that were signed in to your account have been signed out.",
		RecoverDoneSignIn:     "Sign in",
		RecoverInvalidTitle:   "This link does not work",
		RecoverInvalidLink:    "This is not a valid password reset link. Copy the whole link from the email, or ask for a new one.",
		RecoverExpiredLink:    "This link has expired or has already been used. Links work once, for 10 minutes. Ask for a new one.",
		RecoverStartAgain:     "Ask for a new link",
		RecoverAccountBlocked: "The password of this account cannot be changed this way. Contact the server's administrators.",
		RecoverForgot:         "Forgot your password?",
	}
}
