package web

import "fmt"

// The texts of the account pages (account*.go, templates/account.html). They
// are merged into catalogs when the package starts (mergeCatalog), so that
// messages.go stays as it is; an id defined twice stops the program at once.

func init() { mergeCatalog(accountCatalogs) }

// mergeCatalog adds more texts to catalogs, language by language.
func mergeCatalog(more map[string]map[msgID]string) {
	for lang, msgs := range more {
		into, ok := catalogs[lang]
		if !ok {
			into = map[msgID]string{}
			catalogs[lang] = into
		}
		for id, text := range msgs {
			if _, dup := into[id]; dup {
				panic(fmt.Sprintf("web: message %q (%s) is defined twice", id, lang))
			}
			into[id] = text
		}
	}
}

// The texts the Go code names; the templates name theirs by id.
const (
	msgDate                      msgID = "date"
	msgAccountDisplayNameLong    msgID = "account.display_name.too_long"
	msgAccountDisplayNameControl msgID = "account.display_name.control"
	msgAccountNavProfile         msgID = "account.nav.profile"
	msgAccountNavSessions        msgID = "account.nav.sessions"
	msgAccountNavPassword        msgID = "account.nav.password"

	msgAccountDoneDisplayName     msgID = "account.done.display_name"
	msgAccountDoneEmailAdded      msgID = "account.done.email_added"
	msgAccountDoneEmailRemoved    msgID = "account.done.email_removed"
	msgAccountDoneEmailPrimary    msgID = "account.done.email_primary"
	msgAccountDonePassword        msgID = "account.done.password"
	msgAccountDonePasswordSignOut msgID = "account.done.password_sign_out"
	msgAccountDoneSessionEnded    msgID = "account.done.session_ended"

	msgAccountProfileTitle     msgID = "account.profile.title"
	msgAccountDisplayName      msgID = "account.profile.display_name"
	msgAccountDisplayNameHint  msgID = "account.profile.display_name.hint"
	msgAccountEmailNew         msgID = "account.emails.new"
	msgAccountEmailNewHint     msgID = "account.emails.new.hint"
	msgAccountEmailYours       msgID = "account.emails.yours"
	msgAccountEmailTaken       msgID = "account.emails.taken"
	msgAccountEmailExpired     msgID = "account.emails.expired"
	msgAccountEmailVerifyTitle msgID = "account.emails.verify_title"
	msgAccountEmailSent        msgID = "account.emails.sent"

	msgAccountPasswordTitle         msgID = "account.password.title"
	msgAccountPasswordCurrent       msgID = "account.password.current"
	msgAccountPasswordNew           msgID = "account.password.new"
	msgAccountPasswordConfirm       msgID = "account.password.confirm"
	msgAccountPasswordWrong         msgID = "account.password.wrong"
	msgAccountPasswordSignOutFailed msgID = "account.password.sign_out_failed"

	msgAccountDeactivateTitle       msgID = "account.deactivate.title"
	msgAccountDeactivatePassword    msgID = "account.deactivate.password"
	msgAccountDeactivateConfirmNone msgID = "account.deactivate.confirm_required"
	msgAccountDeactivatedTitle      msgID = "account.deactivated.title"

	msgAccountSessionsTitle       msgID = "account.sessions.title"
	msgAccountSessionIsCurrent    msgID = "account.sessions.is_current"
	msgAccountSessionGone         msgID = "account.sessions.gone"
	msgAccountBrowserOn           msgID = "account.sessions.browser_on"
	msgAccountBrowserUnknown      msgID = "account.sessions.browser_unknown"
	msgAccountDeviceTitle         msgID = "account.device.title"
	msgAccountDeviceEndTitle      msgID = "account.device.end_title"
	msgAccountDeviceNotFoundTitle msgID = "account.device.not_found_title"
	msgAccountCrossSigningTitle   msgID = "account.cross_signing.title"
)

var accountCatalogs = map[string]map[msgID]string{
	"en": {
		"account.signed_in_as": "Signed in as",
		"account.nav":          "Account",
		"account.cancel":       "Cancel",
		msgAccountNavProfile:   "Profile",
		msgAccountNavSessions:  "Sessions",
		msgAccountNavPassword:  "Password",

		msgAccountDoneDisplayName:     "Your display name has been saved.",
		msgAccountDoneEmailAdded:      "The email address has been added to your account.",
		msgAccountDoneEmailRemoved:    "The email address has been removed from your account.",
		msgAccountDoneEmailPrimary:    "Your primary email address has been changed.",
		msgAccountDonePassword:        "Your password has been changed.",
		msgAccountDonePasswordSignOut: "Your password has been changed, and your other browsers have been signed out.",
		msgAccountDoneSessionEnded:    "The session has been signed out.",

		msgAccountProfileTitle:         "Your account",
		"account.profile.heading":      "Profile",
		"account.profile.username":     "Username",
		"account.profile.matrix_id":    "Matrix ID",
		msgAccountDisplayName:          "Display name",
		msgAccountDisplayNameHint:      "The name other people see in chats. Leave it empty to show your username.",
		"account.profile.save":         "Save display name",
		"account.emails.heading":       "Email addresses",
		"account.emails.primary":       "Primary",
		"account.emails.verified":      "Verified",
		"account.emails.primary_hint":  "The primary address is where account emails go. It cannot be removed; make another one primary first.",
		"account.emails.none":          "There are no email addresses on your account.",
		"account.emails.make_primary":  "Make primary",
		"account.emails.remove":        "Remove",
		msgAccountEmailNew:             "Add an email address",
		msgAccountEmailNewHint:         "We will email a 6-digit code to check that it is yours.",
		"account.emails.add":           "Send code",
		msgAccountEmailYours:           "This address is already on your account.",
		msgAccountEmailTaken:           "This address belongs to another account.",
		msgAccountEmailExpired:         "The code has expired or was used too many times. Add the address again to get a new code.",
		msgAccountEmailVerifyTitle:     "Check your email",
		msgAccountEmailSent:            "We sent a 6-digit code to %s. Enter it to add the address to your account.",
		"account.emails.verify_submit": "Add address",
		"account.deactivate.heading":   "Deactivate account",
		"account.deactivate.teaser":    "Deactivating your account signs you out everywhere and stops anyone from signing in to it.",
		"account.deactivate.link":      "Deactivate your account…",

		msgAccountPasswordTitle:                 "Change your password",
		msgAccountPasswordCurrent:               "Current password",
		msgAccountPasswordNew:                   "New password",
		msgAccountPasswordConfirm:               "Confirm new password",
		msgAccountPasswordWrong:                 "This password is incorrect.",
		msgAccountPasswordSignOutFailed:         "Your password has been changed, but your other browsers could not all be signed out. Sign them out on the Sessions page.",
		"account.password.sign_out_others":      "Sign out my other sessions",
		"account.password.sign_out_others.hint": "Every other browser signed in to your account is signed out. Applications stay signed in; sign them out on the Sessions page.",
		"account.password.submit":               "Change password",
		"account.password.none":                 "Your account has no password, so there is none to change here.",

		msgAccountDeactivateTitle:               "Deactivate your account",
		"account.deactivate.intro":              "This cannot be undone by you. Once your account is deactivated:",
		"account.deactivate.signed_out":         "every browser, application and device is signed out at once;",
		"account.deactivate.no_sign_in":         "nobody can sign in to it any more, with any password;",
		"account.deactivate.username":           "%s stays reserved: only the server's administrators can reactivate the account.",
		msgAccountDeactivatePassword:            "Your password",
		"account.deactivate.confirm":            "I understand that I will lose access to this account.",
		msgAccountDeactivateConfirmNone:         "Tick this box to confirm.",
		"account.deactivate.submit":             "Deactivate account",
		msgAccountDeactivatedTitle:              "Your account has been deactivated",
		"account.deactivated.text":              "You have been signed out everywhere, and nobody can sign in to the account any more.",
		msgAccountSessionsTitle:                 "Sessions",
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
		msgAccountSessionIsCurrent:              "To sign out this browser, use its own Sign out button.",
		msgAccountSessionGone:                   "This session is not signed in any more.",
		msgAccountBrowserOn:                     "%s on %s",
		msgAccountBrowserUnknown:                "Unknown browser",
		msgAccountDeviceTitle:                   "Device",
		msgAccountDeviceEndTitle:                "Sign out this device?",
		msgAccountDeviceNotFoundTitle:           "Device not found",
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
		msgAccountCrossSigningTitle:             "Reset your digital identity",
		"account.cross_signing.intro":           "Your Matrix app asked to reset your digital identity: the cross-signing keys that let your other devices and the people you talk to trust this account.",
		"account.cross_signing.when":            "Do this only if you have lost every other signed-in device and your recovery key. After a reset, people will need to verify you again, and messages you cannot decrypt now stay unreadable.",
		"account.cross_signing.not_yet_heading": "This server cannot approve the reset yet",
		"account.cross_signing.not_yet":         "This server is not connected to a homeserver that could accept the reset, so if you go back to your app now, the reset will be refused.",
		"account.cross_signing.instead":         "If you still need to reset your identity, ask your server's administrators: they can allow the reset on the homeserver for you.",
		msgAccountDisplayNameLong:               "A display name may have at most %d characters.",
		msgAccountDisplayNameControl:            "A display name cannot contain line breaks or other control characters.",
		// Dates: day, month name, year, hour:minute.
		msgDate:    "%d %s %d, %s UTC",
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
	},
}
