// Package amr names how a person authenticated in ID tokens: the amr claim
// (RFC 8176 values) from the methods the accounts service recorded in the
// browser session, and the acr claim for clients that ask (acr_values).
package amr

import "slices"

// The authentication context classes Gatehouse reports (acr).
const (
	// ACRMultiFactor: a second factor (TOTP, a recovery code, a passkey)
	// with or after the first, or a passkey verifying the person.
	ACRMultiFactor = "urn:gatehouse:acr:mfa"
	// ACRSingleFactor: one factor (a password, an upstream provider).
	ACRSingleFactor = "urn:gatehouse:acr:sfa"
)

// Values maps the accounts service's methods to RFC 8176 amr values, each
// once, adding "mfa" for a multi-factor authentication; nil for none.
func Values(methods []string) []string {
	var out []string
	add := func(v string) {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	for _, m := range methods {
		switch m {
		case "password", "registration", "recovery":
			add("pwd")
		case "totp", "recovery_code":
			add("otp")
		case "passkey":
			add("hwk")
			add("user") // user verification by the authenticator
		case "upstream":
			add("fed")
		}
	}
	if MultiFactor(methods) {
		add("mfa")
	}
	return out
}

// MultiFactor reports whether methods make a multi-factor authentication.
func MultiFactor(methods []string) bool {
	second := slices.ContainsFunc(methods, func(m string) bool { return m == "totp" || m == "recovery_code" || m == "passkey" })
	return second && (len(methods) > 1 || slices.Contains(methods, "passkey"))
}

// ACR is the acr claim for methods.
func ACR(methods []string) string {
	if MultiFactor(methods) {
		return ACRMultiFactor
	}
	return ACRSingleFactor
}
