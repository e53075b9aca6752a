package i18n

// The texts of the account pages (account*.go, templates/account.html): the
// ids the Go code names (the templates name theirs by id), and the English
// texts (accountFrench has the French ones).

// The texts the Go code names; the templates name theirs by id.
const (
	AccountDisplayNameLong    ID = "account.display_name.too_long"
	AccountDisplayNameControl ID = "account.display_name.control"
	AccountNavProfile         ID = "account.nav.profile"
	AccountNavSessions        ID = "account.nav.sessions"
	AccountNavPassword        ID = "account.nav.password"

	AccountDoneDisplayName     ID = "account.done.display_name"
	AccountDoneEmailAdded      ID = "account.done.email_added"
	AccountDoneEmailRemoved    ID = "account.done.email_removed"
	AccountDoneEmailPrimary    ID = "account.done.email_primary"
	AccountDonePassword        ID = "account.done.password"
	AccountDonePasswordSignOut ID = "account.done.password_sign_out"
	AccountDoneSessionEnded    ID = "account.done.session_ended"

	AccountProfileTitle     ID = "account.profile.title"
	AccountDisplayName      ID = "account.profile.display_name"
	AccountDisplayNameHint  ID = "account.profile.display_name.hint"
	AccountEmailNew         ID = "account.emails.new"
	AccountEmailNewHint     ID = "account.emails.new.hint"
	AccountEmailYours       ID = "account.emails.yours"
	AccountEmailTaken       ID = "account.emails.taken"
	AccountEmailExpired     ID = "account.emails.expired"
	AccountEmailVerifyTitle ID = "account.emails.verify_title"
	AccountEmailSent        ID = "account.emails.sent"

	AccountPasswordTitle         ID = "account.password.title"
	AccountPasswordCurrent       ID = "account.password.current"
	AccountPasswordNew           ID = "account.password.new"
	AccountPasswordConfirm       ID = "account.password.confirm"
	AccountPasswordWrong         ID = "account.password.wrong"
	AccountPasswordSignOutFailed ID = "account.password.sign_out_failed"

	AccountDeactivateTitle       ID = "account.deactivate.title"
	AccountDeactivatePassword    ID = "account.deactivate.password"
	AccountDeactivateConfirmNone ID = "account.deactivate.confirm_required"
	AccountDeactivatedTitle      ID = "account.deactivated.title"

	AccountSessionsTitle       ID = "account.sessions.title"
	AccountSessionIsCurrent    ID = "account.sessions.is_current"
	AccountSessionGone         ID = "account.sessions.gone"
	AccountBrowserOn           ID = "account.sessions.browser_on"
	AccountBrowserUnknown      ID = "account.sessions.browser_unknown"
	AccountDeviceTitle         ID = "account.device.title"
	AccountDeviceEndTitle      ID = "account.device.end_title"
	AccountDeviceNotFoundTitle ID = "account.device.not_found_title"
	AccountCrossSigningTitle   ID = "account.cross_signing.title"

	AccountNavTokens         ID = "account.nav.tokens"
	AccountTokensTitle       ID = "account.tokens.title"
	AccountTokensName        ID = "account.tokens.name"
	AccountTokensNameHint    ID = "account.tokens.name.hint"
	AccountTokensNameNone    ID = "account.tokens.name.none"
	AccountTokensNameLong    ID = "account.tokens.name.long"
	AccountTokensExpires     ID = "account.tokens.expires_in"
	AccountTokensExpiresHint ID = "account.tokens.expires_in.hint"
	AccountTokensExpiresBad  ID = "account.tokens.expires_in.bad"
	AccountTokensMinutes     ID = "account.tokens.minutes"
	AccountTokensHours       ID = "account.tokens.hours"
	AccountTokensDays        ID = "account.tokens.days"
	AccountTokensGone        ID = "account.tokens.gone"
	AccountDoneTokenCreated  ID = "account.done.token_created"
	AccountDoneTokenRevoked  ID = "account.done.token_revoked"
)

// accountEnglish are the English texts of the account pages.
func accountEnglish() Texts {
	return Texts{
		"account.signed_in_as": "Signed in as",
		"account.nav":          "Account",
		"account.cancel":       "Cancel",
		AccountNavProfile:      "Profile",
		AccountNavSessions:     "Sessions",
		AccountNavPassword:     "Password",

		AccountDoneDisplayName:     "Your display name has been saved.",
		AccountDoneEmailAdded:      "The email address has been added to your account.",
		AccountDoneEmailRemoved:    "The email address has been removed from your account.",
		AccountDoneEmailPrimary:    "Your primary email address has been changed.",
		AccountDonePassword:        "Your password has been changed.",
		AccountDonePasswordSignOut: "Your password has been changed, and your other browsers have been signed out.",
		AccountDoneSessionEnded:    "The session has been signed out.",

		AccountProfileTitle:            "Your account",
		"account.profile.heading":      "Profile",
		"account.profile.username":     "Username",
		"account.profile.matrix_id":    "Matrix ID",
		AccountDisplayName:             "Display name",
		AccountDisplayNameHint:         "The name other people see in chats. Leave it empty to show your username.",
		"account.profile.save":         "Save display name",
		"account.emails.heading":       "Email addresses",
		"account.emails.primary":       "Primary",
		"account.emails.verified":      "Verified",
		"account.emails.primary_hint":  "The primary address is where account emails go. It cannot be removed; make another one primary first.",
		"account.emails.none":          "There are no email addresses on your account.",
		"account.emails.make_primary":  "Make primary",
		"account.emails.remove":        "Remove",
		AccountEmailNew:                "Add an email address",
		AccountEmailNewHint:            "We will email a 6-digit code to check that it is yours.",
		"account.emails.add":           "Send code",
		AccountEmailYours:              "This address is already on your account.",
		AccountEmailTaken:              "This address belongs to another account.",
		AccountEmailExpired:            "The code has expired or was used too many times. Add the address again to get a new code.",
		AccountEmailVerifyTitle:        "Check your email",
		AccountEmailSent:               "We sent a 6-digit code to %s. Enter it to add the address to your account.",
		"account.emails.verify_submit": "Add address",
		"account.deactivate.heading":   "Deactivate account",
		"account.deactivate.teaser":    "Deactivating your account signs you out everywhere and stops anyone from signing in to it.",
		"account.deactivate.link":      "Deactivate your account…",

		AccountPasswordTitle:                    "Change your password",
		AccountPasswordCurrent:                  "Current password",
		AccountPasswordNew:                      "New password",
		AccountPasswordConfirm:                  "Confirm new password",
		AccountPasswordWrong:                    "This password is incorrect.",
		AccountPasswordSignOutFailed:            "Your password has been changed, but your other browsers could not all be signed out. Sign them out on the Sessions page.",
		"account.password.sign_out_others":      "Sign out my other sessions",
		"account.password.sign_out_others.hint": "Every other browser signed in to your account is signed out. Applications stay signed in; sign them out on the Sessions page.",
		"account.password.submit":               "Change password",
		"account.password.none":                 "Your account has no password, so there is none to change here.",

		AccountDeactivateTitle:                  "Deactivate your account",
		"account.deactivate.intro":              "This cannot be undone by you. Once your account is deactivated:",
		"account.deactivate.signed_out":         "every browser, application and device is signed out at once;",
		"account.deactivate.no_sign_in":         "nobody can sign in to it any more, with any password;",
		"account.deactivate.username":           "%s stays reserved: only the server's administrators can reactivate the account.",
		AccountDeactivatePassword:               "Your password",
		"account.deactivate.confirm":            "I understand that I will lose access to this account.",
		AccountDeactivateConfirmNone:            "Tick this box to confirm.",
		"account.deactivate.submit":             "Deactivate account",
		AccountDeactivatedTitle:                 "Your account has been deactivated",
		"account.deactivated.text":              "You have been signed out everywhere, and nobody can sign in to the account any more.",
		AccountSessionsTitle:                    "Sessions",
		"account.sessions.intro":                "Where your account is signed in. Sign out anything you do not recognise, then change your password.",
		"account.sessions.browsers":             "Browsers",
		"account.sessions.apps":                 "Applications",
		"account.sessions.compat":               "Other apps and devices",
		"account.sessions.compat_hint":          "Apps that signed in with your password through the older Matrix login.",
		"account.sessions.no_apps":              "No applications are signed in.",
		"account.sessions.no_compat":            "None are signed in.",
		"account.sessions.this_browser":         "This browser",
		"account.sessions.ip":                   "IP address",
		"account.sessions.signed_in":            "Signed in",
		"account.sessions.last_active":          "Last active",
		"account.sessions.software":             "Signed in with",
		"account.sessions.user_agent":           "User agent",
		"account.sessions.device_id":            "Device ID",
		"account.sessions.device":               "Device %s",
		"account.sessions.details":              "Details",
		AccountSessionIsCurrent:                 "To sign out this browser, use its own Sign out button.",
		AccountSessionGone:                      "This session is not signed in any more.",
		AccountBrowserOn:                        "%s on %s",
		AccountBrowserUnknown:                   "Unknown browser",
		AccountDeviceTitle:                      "Device",
		AccountDeviceEndTitle:                   "Sign out this device?",
		AccountDeviceNotFoundTitle:              "Device not found",
		"account.device.not_found":              "No device with the ID %s is signed in to your account. It may have been signed out already.",
		"account.device.none":                   "No device was named.",
		"account.device.back":                   "Back to your sessions",
		"account.device.back_account":           "Back to your account",
		"account.device.application":            "Application",
		"account.device.kind":                   "Signed in with",
		"account.device.kind_oauth":             "Your account's sign-in page",
		"account.device.kind_compat":            "Your password, through the older Matrix login",
		"account.device.end_explain":            "The device loses access to your account at once. To use it again, you will have to sign in on it again; if it held your only copy of encrypted messages, they may be lost.",
		"account.device.end_submit":             "Sign out this device",
		AccountCrossSigningTitle:                "Reset your digital identity",
		"account.cross_signing.intro":           "Your Matrix app asked to reset your digital identity: the cross-signing keys that let your other devices and the people you talk to trust this account.",
		"account.cross_signing.when":            "Do this only if you have lost every other signed-in device and your recovery key. After a reset, people will need to verify you again, and messages you cannot decrypt now stay unreadable.",
		"account.cross_signing.not_yet_heading": "This server cannot approve the reset yet",
		"account.cross_signing.not_yet":         "This server is not connected to a homeserver that could accept the reset, so if you go back to your app now, the reset will be refused.",
		"account.cross_signing.instead":         "If you still need to reset your identity, ask your server's administrators: they can allow the reset on the homeserver for you.",
		AccountNavTokens:                        "Access tokens",
		AccountTokensTitle:                      "Personal access tokens",
		"account.tokens.intro":                  "Tokens for your own scripts and bots: each acts as you on the Matrix API until it expires or you revoke it. Keep them as secret as your password.",
		"account.tokens.yours":                  "Your tokens",
		"account.tokens.none":                   "You have no personal access tokens.",
		"account.tokens.created":                "Your new token “%s”",
		"account.tokens.created_once":           "Copy it now: it is shown only this once, and cannot be shown again.",
		"account.tokens.token":                  "Token",
		"account.tokens.expired":                "Expired",
		"account.tokens.admin_badge":            "Admin API",
		"account.tokens.created_at":             "Created",
		"account.tokens.last_used":              "Last used",
		"account.tokens.never_used":             "Never",
		"account.tokens.expires":                "Expires",
		"account.tokens.never_expires":          "Never",
		"account.tokens.revoke":                 "Revoke",
		"account.tokens.new":                    "Create a token",
		AccountTokensName:                       "Name",
		AccountTokensNameHint:                   "What the token is for, such as “Backup script”.",
		AccountTokensNameNone:                   "Give the token a name.",
		AccountTokensNameLong:                   "A name may have at most %d characters.",
		AccountTokensExpires:                    "Expires after",
		AccountTokensExpiresHint:                "A number of the unit below; leave it empty for a token that never expires.",
		AccountTokensExpiresBad:                 "Enter a whole number, for at most a year.",
		"account.tokens.unit":                   "Unit",
		AccountTokensMinutes:                    "minutes",
		AccountTokensHours:                      "hours",
		AccountTokensDays:                       "days",
		"account.tokens.device":                 "Give it a device of its own",
		"account.tokens.device.hint":            "Needed for end-to-end encryption: the token gets a new Matrix device, which your sessions list.",
		"account.tokens.admin":                  "Allow the admin API",
		"account.tokens.admin.hint":             "The token may also administer this server (urn:gatehouse:admin) for as long as you are an administrator.",
		"account.tokens.submit":                 "Create token",
		AccountTokensGone:                       "This token is not valid any more.",
		AccountDoneTokenCreated:                 "The token has been created.",
		AccountDoneTokenRevoked:                 "The token has been revoked: it no longer works.",
		AccountDisplayNameLong:                  "A display name may have at most %d characters.",
		AccountDisplayNameControl:               "A display name cannot contain line breaks or other control characters.",
		// Dates: day, month name, year, hour:minute.
		dateFormat: "%d %s %d, %s UTC",
		"month.1":  "January",
		"month.2":  "February",
		"month.3":  "March",
		"month.4":  "April",
		"month.5":  "May",
		"month.6":  "June",
		"month.7":  "July",
		"month.8":  "August",
		"month.9":  "September",
		"month.10": "October",
		"month.11": "November",
		"month.12": "December",
	}
}
