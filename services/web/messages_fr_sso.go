package web

// The French texts of the compat SSO pages (messages_sso.go).
var frenchSSOCatalog = map[msgID]string{
	msgSSOTitle:          "Continuer vers %s ?",
	msgSSOIntro:          "Une application demande à se connecter à votre compte et poursuivra à cette adresse :",
	msgSSOAccess:         "Elle pourra lire vos messages, envoyer des messages et agir dans vos salons en votre nom.",
	msgSSOInsecure:       "Cette adresse n’utilise pas de connexion sécurisée (http).",
	msgSSOTrust:          "Ne continuez que si vous avez vous-même lancé cette connexion et que vous faites confiance à cette adresse.",
	msgSSOContinue:       "Continuer",
	msgSSOCancel:         "Annuler",
	msgSSOBadRedirect:    "L’application a demandé à revenir à une adresse qui n’est pas valide : la connexion ne peut donc pas se poursuivre.",
	msgSSOCancelledTitle: "Connexion annulée",
	msgSSOCancelledBody:  "Rien n’a été partagé avec %s. Vous pouvez fermer cette page.",
}
