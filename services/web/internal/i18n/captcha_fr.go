package i18n

// captchaFrench are the French texts of the CAPTCHA (captcha.go).
func captchaFrench() Texts {
	return Texts{
		CaptchaLabel:       "Montrez que vous êtes une personne",
		CaptchaNoScript:    "Cette vérification est faite par %s et nécessite JavaScript, qui est désactivé dans votre navigateur. Activez JavaScript pour cette page et rechargez-la. Si vous ne le pouvez pas, demandez de l’aide aux administrateurs de %s.",
		CaptchaMissing:     "Effectuez la vérification ci-dessus pour montrer que vous êtes une personne, puis envoyez de nouveau le formulaire.",
		CaptchaFailed:      "La vérification n’a pas abouti. Effectuez-la de nouveau, puis envoyez de nouveau le formulaire.",
		CaptchaUnavailable: "La vérification ne peut pas être confirmée pour le moment. Patientez un instant, puis réessayez.",
	}
}
