// Package upstreamstate seals the browser's side of a sign-in with an
// upstream identity provider: the provider, the state, nonce and PKCE
// verifier that the accounts service made for this attempt, and where the
// sign-in was going (an authorization request, a device, a page). The web
// service keeps it in a cookie (HttpOnly, SameSite=Lax) between the redirect
// to the provider and the callback, so the callback is accepted only in the
// browser that started the sign-in and only with the state it was given.
//
// The value is sealed with AES-256-GCM under a key derived from web.secret:
// the browser can neither read the nonce and verifier nor change anything,
// and any replica sharing the secret can open it.
package upstreamstate

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"time"
)

// TTL is how long a person has to sign in at the provider.
const TTL = 15 * time.Minute

// Attempt is one sign-in with a provider.
type Attempt struct {
	Provider string `json:"p"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v,omitempty"`
	// Where the sign-in goes once done (see the web service's flow).
	Grant  string `json:"g,omitempty"`
	Device string `json:"d,omitempty"`
	Next   string `json:"x,omitempty"`
	// Expires is when the attempt stops being accepted (Unix seconds).
	Expires int64 `json:"e"`
}

// Seal seals an attempt with a 32-byte key.
func Seal(key []byte, a Attempt) (string, error) {
	plain, err := json.Marshal(a)
	if err != nil {
		return "", err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte("upstream attempt"))), nil
}

// Open opens an attempt sealed with key, for provider, unexpired at now;
// ok is false for anything else.
func Open(key []byte, value, provider string, now time.Time) (Attempt, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return Attempt{}, false
	}
	aead, err := newAEAD(key)
	if err != nil || len(raw) < aead.NonceSize() {
		return Attempt{}, false
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte("upstream attempt"))
	if err != nil {
		return Attempt{}, false
	}
	var a Attempt
	if json.Unmarshal(plain, &a) != nil || a.Provider != provider || now.Unix() > a.Expires {
		return Attempt{}, false
	}
	return a, true
}

// StateMatches compares the state the provider sent back with the attempt's,
// in constant time.
func (a Attempt) StateMatches(state string) bool {
	return state != "" && subtle.ConstantTimeCompare([]byte(a.State), []byte(state)) == 1
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
