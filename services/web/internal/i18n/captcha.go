package i18n

// The texts of the CAPTCHA on the registration and sign-in forms (the
// "captcha" partial of templates/layout.html): their ids, and the English
// texts (captchaFrench has the French ones).
const (
	CaptchaLabel       ID = "captcha.label"
	CaptchaNoScript    ID = "captcha.noscript"
	CaptchaMissing     ID = "captcha.missing"
	CaptchaFailed      ID = "captcha.failed"
	CaptchaUnavailable ID = "captcha.unavailable"
)

// captchaEnglish are the English texts of the CAPTCHA.
func captchaEnglish() Texts {
	return Texts{
		CaptchaLabel:       "Show that you are a person",
		CaptchaNoScript:    "This check is made by %s and needs JavaScript, which is off in your browser. Turn JavaScript on for this page and reload it. If you cannot, ask the administrators of %s for help.",
		CaptchaMissing:     "Complete the check above to show that you are a person, then send the form again.",
		CaptchaFailed:      "The check did not succeed. Complete it again, then send the form again.",
		CaptchaUnavailable: "The check cannot be confirmed right now. Wait a moment, then try again.",
	}
}
