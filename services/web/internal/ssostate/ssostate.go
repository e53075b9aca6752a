// Package ssostate signs a pending compat SSO sign-in into the id of its
// confirmation page (/complete-compat-sso/<id>), and reads it back.
//
// Nothing is stored: the id is the request itself, base64url(payload) + "." +
// base64url(HMAC-SHA256(key, payload)), where the payload holds the redirect
// URL, the register flag and the expiry (TTL after the redirect). The key is
// derived from web.secret (package keys), so any replica sharing the secret
// can check an id, also after a restart. An id whose MAC does not match, that
// is malformed or that has expired is refused. The payload is signed, not
// encrypted: the id shows the redirect URL, as the client's own redirect did.
package ssostate

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/url"
	"strings"
	"time"
)

const (
	// TTL is how long a pending sign-in may be confirmed.
	TTL = 10 * time.Minute
	// MaxRedirectURL bounds redirectUrl so that the id carrying it (about
	// 4/3 of its length plus 58 bytes) fits, with the path before it, in the
	// next parameter of sign-in (at most 2048 bytes).
	MaxRedirectURL = 1280
	// version is the first byte of a payload.
	version = 1
	// headerLen is the payload's version, flags and expiry before the URL.
	headerLen = 1 + 1 + 8
	// flagRegister is the flag of action=register.
	flagRegister = 1
)

// encoding encodes the parts of an id; Strict refuses other spellings of the
// same bytes.
var encoding = base64.RawURLEncoding.Strict()

// MaxID bounds the id parsed: the encoded payload of the longest redirect
// URL, the dot and the encoded MAC.
var MaxID = encoding.EncodedLen(headerLen+MaxRedirectURL) + 1 + encoding.EncodedLen(sha256.Size)

// Request is a pending compat SSO sign-in.
type Request struct {
	// Redirect is where the login token goes.
	Redirect *url.URL
	// Register asks to create an account rather than sign in.
	Register bool
	// Expires is when the request can no longer be confirmed.
	Expires time.Time
}

// Sign signs a request into the id of its confirmation page: redirect is the
// redirectUrl as the client sent it (checked by RedirectURL), register its
// action, expires the end of the request. The payload is a version byte, a
// flags byte, the expiry in unix seconds (8 bytes, big-endian) and the
// redirect URL.
func Sign(key []byte, redirect string, register bool, expires time.Time) string {
	var flags byte
	if register {
		flags |= flagRegister
	}
	payload := make([]byte, 0, headerLen+len(redirect))
	payload = append(payload, version, flags)
	payload = binary.BigEndian.AppendUint64(payload, uint64(expires.Unix()))
	payload = append(payload, redirect...)
	return encoding.EncodeToString(payload) + "." + encoding.EncodeToString(mac(key, payload))
}

// mac is the HMAC-SHA256 of a payload.
func mac(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	return m.Sum(nil)
}

// Parse returns the request an id signed with key holds, or false if the id
// is malformed, its MAC does not match or it has expired at now.
func Parse(key []byte, id string, now time.Time) (*Request, bool) {
	if len(id) > MaxID {
		return nil, false
	}
	enc, encMAC, ok := strings.Cut(id, ".")
	if !ok {
		return nil, false
	}
	payload, err := encoding.DecodeString(enc)
	if err != nil {
		return nil, false
	}
	got, err := encoding.DecodeString(encMAC)
	if err != nil || !hmac.Equal(got, mac(key, payload)) {
		return nil, false
	}
	if len(payload) < headerLen || payload[0] != version || payload[1]&^flagRegister != 0 {
		return nil, false
	}
	expires := time.Unix(int64(binary.BigEndian.Uint64(payload[2:headerLen])), 0)
	if !now.Before(expires) {
		return nil, false
	}
	// Checked before it was signed; parsed again the same way.
	target, ok := RedirectURL(string(payload[headerLen:]))
	if !ok {
		return nil, false
	}
	return &Request{Redirect: target, Register: payload[1]&flagRegister != 0, Expires: expires}, true
}

// RedirectURL checks a client's redirectUrl: an absolute http or https URL
// of at most MaxRedirectURL bytes, with a host of printable ASCII (so that the
// host shown on the confirmation page is the one the token goes to: no
// look-alike Unicode) and no user info (https://trusted.example@evil.example/).
func RedirectURL(raw string) (*url.URL, bool) {
	if raw == "" || len(raw) > MaxRedirectURL {
		return nil, false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f || raw[i] == '\\' {
			return nil, false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Hostname() == "" {
		return nil, false
	}
	if scheme := strings.ToLower(u.Scheme); scheme != "http" && scheme != "https" {
		return nil, false
	}
	return u, true
}
