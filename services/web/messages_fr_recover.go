package web

// The French texts of the password recovery pages (messages_recover.go).
var frenchRecoverCatalog = map[msgID]string{
	msgRecoverTitle:          "Réinitialiser votre mot de passe",
	msgRecoverIntro:          "Saisissez l’adresse e-mail de votre compte. Nous vous enverrons un lien pour choisir un nouveau mot de passe.",
	msgRecoverEmailHint:      "L’adresse utilisée pour créer votre compte, ou une adresse ajoutée depuis.",
	msgRecoverSubmit:         "Envoyer le lien",
	msgRecoverEmailNone:      "Saisissez votre adresse e-mail.",
	msgRecoverRateLimited:    "Trop de liens de réinitialisation ont été demandés depuis votre réseau. Réessayez plus tard.",
	msgRecoverBackToSignIn:   "Retour à la connexion",
	msgRecoverSentTitle:      "Consultez vos e-mails",
	msgRecoverSentBody:       "Si un compte utilise %s, nous avons envoyé à cette adresse un lien pour choisir un nouveau mot de passe. Le lien est valable 10 minutes.",
	msgRecoverSentSpam:       "Rien reçu après quelques minutes ? Vérifiez votre dossier de courrier indésirable, ou l’adresse saisie.",
	msgRecoverSentAgain:      "Utiliser une autre adresse",
	msgRecoverChooseTitle:    "Choisir un nouveau mot de passe",
	msgRecoverChooseIntro:    "Une fois le mot de passe changé, vous serez déconnecté de tous les navigateurs que vous utilisez, et vous vous connecterez avec le nouveau mot de passe.",
	msgRecoverChooseSubmit:   "Changer le mot de passe",
	msgRecoverDoneTitle:      "Votre mot de passe a été changé",
	msgRecoverDoneBody:       "Connectez-vous avec votre nouveau mot de passe. Les navigateurs connectés à votre compte ont été déconnectés.",
	msgRecoverDoneSignIn:     "Se connecter",
	msgRecoverInvalidTitle:   "Ce lien ne fonctionne pas",
	msgRecoverInvalidLink:    "Ce lien de réinitialisation du mot de passe n’est pas valide. Copiez le lien complet depuis l’e-mail, ou demandez-en un nouveau.",
	msgRecoverExpiredLink:    "Ce lien a expiré ou a déjà été utilisé. Un lien ne sert qu’une fois, pendant 10 minutes. Demandez-en un nouveau.",
	msgRecoverStartAgain:     "Demander un nouveau lien",
	msgRecoverAccountBlocked: "Le mot de passe de ce compte ne peut pas être changé de cette façon. Contactez les administrateurs du serveur.",
	msgRecoverForgot:         "Mot de passe oublié ?",
}
