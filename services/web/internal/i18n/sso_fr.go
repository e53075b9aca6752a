package i18n

// ssoFrench are the French texts of the compat SSO pages (sso.go).
func ssoFrench() Texts {
	return Texts{
		SSOTitle:          "Continuer vers %s ?",
		SSOIntro:          "Une application demande à se connecter à votre compte et poursuivra à cette adresse :",
		SSOAccess:         "Elle pourra lire vos messages, envoyer des messages et agir dans vos salons en votre nom.",
		SSOInsecure:       "Cette adresse n’utilise pas de connexion sécurisée (http).",
		SSOTrust:          "Ne continuez que si vous avez vous-même lancé cette connexion et que vous faites confiance à cette adresse.",
		SSOContinue:       "Continuer",
		SSOCancel:         "Annuler",
		SSOBadRedirect:    "L’application a demandé à revenir à une adresse qui n’est pas valide : la connexion ne peut donc pas se poursuivre.",
		SSOCancelledTitle: "Connexion annulée",
		SSOCancelledBody:  "Rien n’a été partagé avec %s. Vous pouvez fermer cette page.",
	}
}
