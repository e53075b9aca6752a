package web

// The French texts of registration policy (messages_registration.go).
var frenchRegistrationCatalog = map[msgID]string{
	msgRegisterClosedTitle:   "Les inscriptions sont fermées",
	msgRegisterClosedBody:    "Il n’est pas possible de créer de nouveaux comptes sur ce serveur. Si vous avez un compte, connectez-vous.",
	msgFieldRegToken:         "Jeton d’inscription",
	msgFieldRegTokenHint:     "Ce serveur demande un jeton pour créer un compte. Demandez-en un à ses administrateurs.",
	msgRegisterTokenRequired: "Saisissez le jeton d’inscription qui vous a été remis.",
	msgRegisterTokenInvalid:  "Ce jeton d’inscription n’est pas valide. Vérifiez-le, ou demandez-en un nouveau.",
	msgCrossSigningAllow:     "Autoriser la réinitialisation pendant 10 minutes",
	msgCrossSigningAllowedH:  "Vous pouvez maintenant réinitialiser votre identité numérique",
	msgCrossSigningAllowed:   "Retournez dans votre application et terminez la réinitialisation dans les 10 minutes. Passé ce délai, elle vous demandera de revenir ici.",
	msgHomeAccount:           "Gérer votre compte",
	msgLayoutPrivacy:         "Politique de confidentialité",
}
