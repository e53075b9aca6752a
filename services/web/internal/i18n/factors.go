package i18n

// The texts of second factors and passkeys: the sign-in's second step
// (templates/second_factor.html), the account page's sign-in methods
// (templates/account.html, section "security") and the step-up page.
const (
	SecondFactorTitle          ID = "factors.title"
	SecondFactorIntro          ID = "factors.intro"
	SecondFactorTOTPHeading    ID = "factors.totp.heading"
	SecondFactorTOTPLabel      ID = "factors.totp.label"
	SecondFactorTOTPHint       ID = "factors.totp.hint"
	SecondFactorSubmit         ID = "factors.submit"
	SecondFactorRecoveryHead   ID = "factors.recovery.heading"
	SecondFactorRecoveryLabel  ID = "factors.recovery.label"
	SecondFactorRecoverySubmit ID = "factors.recovery.submit"
	SecondFactorPasskeyHeading ID = "factors.passkey.heading"
	SecondFactorPasskeyButton  ID = "factors.passkey.button"
	SecondFactorPasskeyFailed  ID = "factors.passkey.failed"
	SecondFactorNoScript       ID = "factors.passkey.noscript"
	SecondFactorWrong          ID = "factors.wrong"
	SecondFactorRateLimited    ID = "factors.rate_limited"
	SecondFactorExpired        ID = "factors.expired"
	SecondFactorCodeNone       ID = "factors.code_none"
	EnrolTitle                 ID = "factors.enrol.title"
	EnrolIntro                 ID = "factors.enrol.intro"
	EnrolIntroAccount          ID = "factors.enrol.intro_account"
	EnrolQRLabel               ID = "factors.enrol.qr_label"
	EnrolKeyLabel              ID = "factors.enrol.key_label"
	EnrolSubmit                ID = "factors.enrol.submit"
	RecoveryCodesTitle         ID = "factors.codes.title"
	RecoveryCodesIntro         ID = "factors.codes.intro"
	RecoveryCodesContinue      ID = "factors.codes.continue"
	LoginPasskey               ID = "login.passkey"
	AccountNavSecurity         ID = "account.nav.security"
	AccountSecurityTitle       ID = "account.security.title"
	AccountPasskeysHeading     ID = "account.passkeys.heading"
	AccountPasskeysNone        ID = "account.passkeys.none"
	AccountPasskeyAdd          ID = "account.passkeys.add"
	AccountPasskeyName         ID = "account.passkeys.name"
	AccountPasskeyNameHint     ID = "account.passkeys.name_hint"
	AccountPasskeyAdded        ID = "account.passkeys.added"
	AccountPasskeyLastUsed     ID = "account.passkeys.last_used"
	AccountPasskeyNeverUsed    ID = "account.passkeys.never_used"
	AccountPasskeySynced       ID = "account.passkeys.synced"
	AccountPasskeyRemove       ID = "account.passkeys.remove"
	AccountPasskeyRename       ID = "account.passkeys.rename"
	AccountPasskeyNewName      ID = "account.passkeys.new_name"
	AccountDonePasskeyRenamed  ID = "account.done.passkey_renamed"
	AccountPasskeyFailed       ID = "account.passkeys.failed"
	AccountTOTPHeading         ID = "account.totp.heading"
	AccountTOTPOn              ID = "account.totp.on"
	AccountTOTPOff             ID = "account.totp.off"
	AccountTOTPSetUp           ID = "account.totp.set_up"
	AccountTOTPRemove          ID = "account.totp.remove"
	AccountRecoveryHeading     ID = "account.recovery.heading"
	AccountRecoveryLeft        ID = "account.recovery.left"
	AccountRecoveryNew         ID = "account.recovery.new"
	AccountRequireLabel        ID = "account.require.label"
	AccountRequireSave         ID = "account.require.save"
	AccountRequiredByAdmin     ID = "account.require.by_admin"
	AccountRequiredByPolicy    ID = "account.require.by_policy"
	AccountDonePasskeyAdded    ID = "account.done.passkey_added"
	AccountDonePasskeyRemoved  ID = "account.done.passkey_removed"
	AccountDoneTOTPRemoved     ID = "account.done.totp_removed"
	AccountDoneRequire         ID = "account.done.require"
	StepUpTitle                ID = "stepup.title"
	StepUpIntro                ID = "stepup.intro"
	StepUpPasswordSubmit       ID = "stepup.password.submit"
	StepUpOr                   ID = "stepup.or"
	UpstreamLinkSecondFactor   ID = "upstream.link.second_factor"
)

// factorsEnglish are the English texts of second factors and passkeys.
func factorsEnglish() Texts {
	return Texts{
		SecondFactorTitle:          "Confirm it’s you",
		SecondFactorIntro:          "Your account asks for a second factor. Use one of these.",
		SecondFactorTOTPHeading:    "Authenticator app",
		SecondFactorTOTPLabel:      "Code from the app",
		SecondFactorTOTPHint:       "Six digits, from the app you set up for this account.",
		SecondFactorSubmit:         "Continue",
		SecondFactorRecoveryHead:   "Recovery code",
		SecondFactorRecoveryLabel:  "One of your recovery codes",
		SecondFactorRecoverySubmit: "Use the recovery code",
		SecondFactorPasskeyHeading: "Passkey",
		SecondFactorPasskeyButton:  "Use a passkey",
		SecondFactorPasskeyFailed:  "The passkey could not be used. Try again, or use another way.",
		SecondFactorNoScript:       "Passkeys need JavaScript in this browser.",
		SecondFactorWrong:          "This code is wrong or was already used.",
		SecondFactorRateLimited:    "Too many wrong codes. Wait a few minutes, then try again.",
		SecondFactorExpired:        "This sign-in took too long. Sign in again.",
		SecondFactorCodeNone:       "Type the code.",
		EnrolTitle:                 "Set up a second factor",
		EnrolIntro:                 "Your account must use a second factor. Scan this QR code with an authenticator app, then type the code it shows.",
		EnrolIntroAccount:          "Scan this QR code with an authenticator app, then type the code it shows.",
		EnrolQRLabel:               "QR code for your authenticator app",
		EnrolKeyLabel:              "Or type this key into the app:",
		EnrolSubmit:                "Turn on",
		RecoveryCodesTitle:         "Your recovery codes",
		RecoveryCodesIntro:         "Keep these codes somewhere safe. If you lose your second factor, each code signs you in once. They are not shown again.",
		RecoveryCodesContinue:      "I have saved them — continue",
		LoginPasskey:               "Sign in with a passkey",
		AccountNavSecurity:         "Sign-in methods",
		AccountSecurityTitle:       "Sign-in methods",
		AccountPasskeysHeading:     "Passkeys",
		AccountPasskeysNone:        "No passkey yet.",
		AccountPasskeyAdd:          "Add a passkey",
		AccountPasskeyName:         "Name of the new passkey",
		AccountPasskeyNameHint:     "For instance the device it is on.",
		AccountPasskeyAdded:        "Added %s",
		AccountPasskeyLastUsed:     "last used %s",
		AccountPasskeyNeverUsed:    "never used",
		AccountPasskeySynced:       "synced",
		AccountPasskeyRemove:       "Remove",
		AccountPasskeyRename:       "Rename",
		AccountPasskeyNewName:      "New name for %s",
		AccountDonePasskeyRenamed:  "The passkey has been renamed.",
		AccountPasskeyFailed:       "The passkey could not be added. Try again.",
		AccountTOTPHeading:         "Authenticator app",
		AccountTOTPOn:              "On since %s.",
		AccountTOTPOff:             "Not set up.",
		AccountTOTPSetUp:           "Set up an authenticator app",
		AccountTOTPRemove:          "Remove the authenticator app",
		AccountRecoveryHeading:     "Recovery codes",
		AccountRecoveryLeft:        "%d of 10 codes left.",
		AccountRecoveryNew:         "Make new recovery codes",
		AccountRequireLabel:        "Always ask for a second factor when I sign in",
		AccountRequireSave:         "Save",
		AccountRequiredByAdmin:     "An administrator requires a second factor for your account.",
		AccountRequiredByPolicy:    "This server requires a second factor for your account.",
		AccountDonePasskeyAdded:    "The passkey has been added.",
		AccountDonePasskeyRemoved:  "The passkey has been removed.",
		AccountDoneTOTPRemoved:     "The authenticator app has been removed.",
		AccountDoneRequire:         "Your choice has been saved.",
		StepUpTitle:                "Confirm it’s you",
		StepUpIntro:                "Before this change, confirm it’s you.",
		StepUpPasswordSubmit:       "Confirm",
		StepUpOr:                   "Or use your second factor:",
		UpstreamLinkSecondFactor:   "This account signs in with a second factor, so it cannot be linked with its password alone. Sign in to it directly instead.",
	}
}
