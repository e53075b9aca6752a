package i18n

// The texts of upstream identity providers (templates/upstream*.html, the
// buttons on the sign-in and registration pages, the account page's list of
// providers) and of RP-initiated logout (templates/end_session.html): their
// ids, and the English texts (upstreamFrench has the French ones).
const (
	UpstreamContinueWith    ID = "upstream.continue_with"
	UpstreamOr              ID = "upstream.or"
	UpstreamErrorTitle      ID = "upstream.error.title"
	UpstreamUnknown         ID = "upstream.error.unknown"
	UpstreamUnavailable     ID = "upstream.error.unavailable"
	UpstreamRefused         ID = "upstream.error.refused"
	UpstreamDenied          ID = "upstream.error.denied"
	UpstreamProviderError   ID = "upstream.error.provider"
	UpstreamNotVerified     ID = "upstream.error.not_verified"
	UpstreamExpired         ID = "upstream.error.expired"
	UpstreamMissingClaim    ID = "upstream.error.missing_claim"
	UpstreamBlocked         ID = "upstream.error.blocked"
	UpstreamClaimSubject    ID = "upstream.claim.subject"
	UpstreamClaimLocalpart  ID = "upstream.claim.localpart"
	UpstreamClaimName       ID = "upstream.claim.displayname"
	UpstreamClaimEmail      ID = "upstream.claim.email"
	UpstreamRepostTitle     ID = "upstream.repost.title"
	UpstreamRepostBody      ID = "upstream.repost.body"
	UpstreamRepostButton    ID = "upstream.repost.button"
	UpstreamLinkTitle       ID = "upstream.link.title"
	UpstreamLinkIntro       ID = "upstream.link.intro"
	UpstreamCreateHeading   ID = "upstream.create.heading"
	UpstreamCreateIntro     ID = "upstream.create.intro"
	UpstreamUsernameForced  ID = "upstream.create.username_forced"
	UpstreamUseDisplayName  ID = "upstream.create.use_display_name"
	UpstreamDisplayNameSet  ID = "upstream.create.display_name_set"
	UpstreamUseEmail        ID = "upstream.create.use_email"
	UpstreamEmailSet        ID = "upstream.create.email_set"
	UpstreamEmailUnverified ID = "upstream.create.email_unverified"
	UpstreamCreateSubmit    ID = "upstream.create.submit"
	UpstreamUsernameBad     ID = "upstream.create.username_bad"
	UpstreamExistingHeading ID = "upstream.existing.heading"
	UpstreamExistingIntro   ID = "upstream.existing.intro"
	UpstreamExistingSubmit  ID = "upstream.existing.submit"
	UpstreamLinkTaken       ID = "upstream.link.taken"
	UpstreamEmailTaken      ID = "upstream.create.email_taken"
	AccountUpstreamHeading  ID = "account.upstream.heading"
	AccountUpstreamNone     ID = "account.upstream.none"
	AccountUpstreamLinked   ID = "account.upstream.linked"
	AccountUpstreamUnlink   ID = "account.upstream.unlink"
	AccountUpstreamLastWay  ID = "account.upstream.last_way"
	AccountDoneUnlinked     ID = "account.upstream.done_unlinked"
	EndSessionTitle         ID = "end_session.title"
	EndSessionIntro         ID = "end_session.intro"
	EndSessionIntroClient   ID = "end_session.intro_client"
	EndSessionSignOut       ID = "end_session.sign_out"
	EndSessionStay          ID = "end_session.stay"
	EndSessionDoneTitle     ID = "end_session.done.title"
	EndSessionDoneBody      ID = "end_session.done.body"
	EndSessionStayedBody    ID = "end_session.stayed.body"
	EndSessionBadRedirect   ID = "end_session.bad_redirect"
	EndSessionBadClient     ID = "end_session.bad_client"
)

// upstreamEnglish are the English texts of upstream sign-in and RP-initiated logout.
func upstreamEnglish() Texts {
	return Texts{
		UpstreamContinueWith:    "Continue with %s",
		UpstreamOr:              "or",
		UpstreamErrorTitle:      "Sign-in with %s failed",
		UpstreamUnknown:         "There is no such identity provider here.",
		UpstreamUnavailable:     "%s cannot be reached right now. Try again in a moment, or sign in another way.",
		UpstreamRefused:         "%s refused to complete the sign-in. Try again, or sign in another way.",
		UpstreamDenied:          "The sign-in was cancelled at %s. Nothing was created or changed.",
		UpstreamProviderError:   "%s answered with an error (%s). Nothing was created or changed.",
		UpstreamNotVerified:     "The answer from %s could not be verified, so you were not signed in. Nothing was created or changed.",
		UpstreamExpired:         "This sign-in has expired or was started in another browser. Start again.",
		UpstreamMissingClaim:    "%s did not give your %s, which this server needs to sign you in. Nothing was created or changed.",
		UpstreamBlocked:         "The account linked to this identity cannot be used: it is locked or deactivated.",
		UpstreamClaimSubject:    "identifier",
		UpstreamClaimLocalpart:  "username",
		UpstreamClaimName:       "name",
		UpstreamClaimEmail:      "verified email address",
		UpstreamRepostTitle:     "Continue signing in",
		UpstreamRepostBody:      "Your browser came back from %s. Continue to finish signing in.",
		UpstreamRepostButton:    "Continue",
		UpstreamLinkTitle:       "Welcome",
		UpstreamLinkIntro:       "You signed in with %s for the first time here.",
		UpstreamCreateHeading:   "Create an account",
		UpstreamCreateIntro:     "Your new account will be %s.",
		UpstreamUsernameForced:  "%s chose this username for you.",
		UpstreamUseDisplayName:  "Use %s as my display name",
		UpstreamDisplayNameSet:  "Display name: %s",
		UpstreamUseEmail:        "Add %s to my account",
		UpstreamEmailSet:        "Email address: %s",
		UpstreamEmailUnverified: "%s did not say that %s is verified, so it is not added. You can add it from your account page.",
		UpstreamCreateSubmit:    "Create account",
		UpstreamUsernameBad:     "The username %s chose cannot be used here; ask your administrator.",
		UpstreamExistingHeading: "I already have an account",
		UpstreamExistingIntro:   "Sign in with your password to link %s to your account, so you can use it next time.",
		UpstreamExistingSubmit:  "Sign in and link",
		UpstreamLinkTaken:       "This identity is already linked to another account.",
		UpstreamEmailTaken:      "The email address from your identity provider is already used by another account.",
		AccountUpstreamHeading:  "Identity providers",
		AccountUpstreamNone:     "You do not sign in with any identity provider.",
		AccountUpstreamLinked:   "Linked on %s",
		AccountUpstreamUnlink:   "Unlink",
		AccountUpstreamLastWay:  "This is the only way to sign in to your account. Set a password or link another provider first.",
		AccountDoneUnlinked:     "The identity provider was unlinked.",
		EndSessionTitle:         "Sign out?",
		EndSessionIntro:         "Do you want to sign out of %s in this browser?",
		EndSessionIntroClient:   "%s asks to sign you out of %s in this browser.",
		EndSessionSignOut:       "Sign out",
		EndSessionStay:          "Stay signed in",
		EndSessionDoneTitle:     "Signed out",
		EndSessionDoneBody:      "You are signed out. You can close this page.",
		EndSessionStayedBody:    "You are still signed in. You can close this page.",
		EndSessionBadRedirect:   "The application asked to return to an address it did not register, so you stay on this site.",
		EndSessionBadClient:     "The application asking to sign you out is not known here.",
	}
}
