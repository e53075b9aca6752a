// Package keys derives the web service's keys from its secret (web.secret),
// one key per use, with HKDF-SHA256: keys of different uses are independent,
// and none reveals the secret or another key. Every replica given the same
// secret derives the same keys, so a form or a compat SSO confirmation made by
// one replica is accepted by any other, also after a restart.
package keys

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// MinSecretLen is the shortest secret accepted (web.secret's minimum).
const MinSecretLen = 32

// Labels of the keys, one per use.
const (
	CSRFLabel = "gatehouse web csrf"
	SSOLabel  = "gatehouse web compat-sso"
	// UpstreamLabel is the key of upstream sign-in attempts (internal/upstreamstate).
	UpstreamLabel = "gatehouse web upstream"
)

// Keys are the keys of the web service.
type Keys struct {
	// CSRF signs the forms' CSRF tokens and the add-email cookie.
	CSRF []byte
	// SSO signs compat SSO confirmations.
	SSO []byte
	// Upstream seals the cookie of an upstream sign-in under way.
	Upstream []byte
}

// FromSecret derives the keys of a secret of at least MinSecretLen bytes.
// Without a secret it draws a random one and reports random: forms and SSO
// confirmations then only work in this process.
func FromSecret(secret []byte) (k Keys, random bool, err error) {
	switch {
	case len(secret) == 0:
		secret, random = make([]byte, 32), true
		rand.Read(secret)
	case len(secret) < MinSecretLen:
		return Keys{}, false, fmt.Errorf("the secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	if k.CSRF, err = Derive(secret, CSRFLabel); err != nil {
		return Keys{}, false, err
	}
	if k.SSO, err = Derive(secret, SSOLabel); err != nil {
		return Keys{}, false, err
	}
	if k.Upstream, err = Derive(secret, UpstreamLabel); err != nil {
		return Keys{}, false, err
	}
	return k, random, nil
}

// Derive derives the 32-byte key of one use (label) from a secret.
func Derive(secret []byte, label string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, label, 32)
	if err != nil {
		return nil, fmt.Errorf("derive the %q key: %w", label, err)
	}
	return k, nil
}
