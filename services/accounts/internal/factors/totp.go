package factors

import (
	"crypto/subtle"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP (RFC 6238) as authenticator apps know it: SHA-1, six digits,
// 30-second steps. A code is accepted for the current step and one step on
// either side (clocks drift), and each step once (UseTOTP).

// TOTPPeriod is the length of a step.
const TOTPPeriod = 30 * time.Second

var totpOpts = totp.ValidateOpts{Period: uint(TOTPPeriod / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// NewTOTP draws a secret (160 bits, as RFC 4226 recommends) and returns it
// in base32 with the otpauth:// URI authenticator apps read from a QR code.
func NewTOTP(issuer, account string) (secret, uri string, err error) {
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Period: totpOpts.Period, SecretSize: 20,
		Digits: totpOpts.Digits, Algorithm: totpOpts.Algorithm,
	})
	if err != nil {
		return "", "", err
	}
	return k.Secret(), k.URL(), nil
}

// CheckTOTP reports the step of the window (now, ±1 step) whose code is
// code, comparing in constant time; ok is false for none.
func CheckTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if secret == "" || len(code) != 6 {
		return 0, false
	}
	current := now.Unix() / int64(totpOpts.Period)
	for _, s := range []int64{current - 1, current, current + 1} {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*int64(totpOpts.Period), 0).UTC(), totpOpts)
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step, ok = s, true
		}
	}
	return step, ok
}
