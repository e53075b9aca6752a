package i18n

// registrationFrench are the French texts of registration.go.
func registrationFrench() Texts {
	return Texts{
		RegisterClosedTitle:   "Les inscriptions sont fermées",
		RegisterClosedBody:    "Il n’est pas possible de créer de nouveaux comptes sur ce serveur. Si vous avez un compte, connectez-vous.",
		FieldRegToken:         "Jeton d’inscription",
		FieldRegTokenHint:     "Ce serveur demande un jeton pour créer un compte. Demandez-en un à ses administrateurs.",
		RegisterTokenRequired: "Saisissez le jeton d’inscription qui vous a été remis.",
		RegisterTokenInvalid:  "Ce jeton d’inscription n’est pas valide. Vérifiez-le, ou demandez-en un nouveau.",
		CrossSigningAllow:     "Autoriser la réinitialisation pendant 10 minutes",
		CrossSigningAllowedH:  "Vous pouvez maintenant réinitialiser votre identité numérique",
		CrossSigningAllowed:   "Retournez dans votre application et terminez la réinitialisation dans les 10 minutes. Passé ce délai, elle vous demandera de revenir ici.",
		HomeAccount:           "Gérer votre compte",
		LayoutPrivacy:         "Politique de confidentialité",
	}
}
