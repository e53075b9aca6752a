package i18n

// recoverFrench are the French texts of recover.go.
func recoverFrench() Texts {
	return Texts{
		RecoverTitle:          "Réinitialiser votre mot de passe",
		RecoverIntro:          "Saisissez l’adresse e-mail de votre compte. Nous vous enverrons un lien pour choisir un nouveau mot de passe.",
		RecoverEmailHint:      "L’adresse utilisée pour créer votre compte, ou une adresse ajoutée depuis.",
		RecoverSubmit:         "Envoyer le lien",
		RecoverEmailNone:      "Saisissez votre adresse e-mail.",
		RecoverRateLimited:    "Trop de liens de réinitialisation ont été demandés, depuis votre réseau ou pour cette adresse. Réessayez plus tard.",
		RecoverBackToSignIn:   "Retour à la connexion",
		RecoverSentTitle:      "Consultez vos e-mails",
		RecoverSentBody:       "Si un compte utilise %s, nous avons envoyé à cette adresse un lien pour choisir un nouveau mot de passe. Le lien est valable 10 minutes.",
		RecoverSentSpam:       "Rien reçu après quelques minutes ? Vérifiez votre dossier de courrier indésirable, ou l’adresse saisie.",
		RecoverSentAgain:      "Utiliser une autre adresse",
		RecoverChooseTitle:    "Choisir un nouveau mot de passe",
		RecoverChooseIntro:    "Une fois le mot de passe changé, vous serez déconnecté de tous les navigateurs que vous utilisez, et vous vous connecterez avec le nouveau mot de passe.",
		RecoverChooseSubmit:   "Changer le mot de passe",
		RecoverDoneTitle:      "Votre mot de passe a été changé",
		RecoverDoneBody:       "Connectez-vous avec votre nouveau mot de passe. Les navigateurs connectés à votre compte ont été déconnectés.",
		RecoverDoneSignIn:     "Se connecter",
		RecoverInvalidTitle:   "Ce lien ne fonctionne pas",
		RecoverInvalidLink:    "Ce lien de réinitialisation du mot de passe n’est pas valide. Copiez le lien complet depuis l’e-mail, ou demandez-en un nouveau.",
		RecoverExpiredLink:    "Ce lien a expiré ou a déjà été utilisé. Un lien ne sert qu’une fois, pendant 10 minutes. Demandez-en un nouveau.",
		RecoverStartAgain:     "Demander un nouveau lien",
		RecoverAccountBlocked: "Le mot de passe de ce compte ne peut pas être changé de cette façon. Contactez les administrateurs du serveur.",
		RecoverForgot:         "Mot de passe oublié ?",
	}
}
