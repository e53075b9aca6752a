// Package sealed encrypts the secrets that events carry (services' keys,
// password hashes) so that whoever reads the event streams learns nothing
// from them.
//
// It is envelope encryption. Every sealed value gets a data key of its own (32
// random bytes); the value is encrypted with it, and the data key is encrypted
// ("wrapped") with a key-encryption key (KEK) that never leaves the
// configuration. Both steps are XChaCha20-Poly1305 with random 24-byte
// nonces, authenticated with associated data naming where the value lives
// ("token.keys.current/token_mac_key"), so a sealed value moved to another
// event, subject or field does not open. The result is an
// eventsv1.SealedSecret, which records the id of the KEK that wrapped it.
//
// A Key is one KEK; a Keyring holds the current KEK, which seals, and
// previous ones, which still open what they sealed until it is sealed again
// (see Keyring.Current). Which key seals a given value is the caller's
// choice: a Keyring for the deployment's secrets, or any other Key (a
// per-user key, itself sealed by the Keyring) for data that must become
// unreadable when that key is forgotten.
package sealed

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// KeySize is the size in bytes of a key-encryption key and of a data key.
const KeySize = 32

// Labels that separate the uses of a key (domain separation).
const (
	wrapLabel  = "gatehouse sealed v1 wrap"
	valueLabel = "gatehouse sealed v1 value"
	idLabel    = "gatehouse sealed v1 key id"
)

// ErrOpen is returned when a sealed value does not decrypt: it was altered,
// or it is being opened at another place than the one it was sealed for.
var ErrOpen = errors.New("sealed: the value does not open (altered, or sealed for another place)")

// UnknownKeyError is returned when a value was sealed under a key that is not
// in the keyring.
type UnknownKeyError struct {
	// ID is the id of the key that sealed the value.
	ID string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("sealed: the value was sealed under key %s, which is not configured (secrets.encryption_key or secrets.previous_keys)", e.ID)
}

// Key is a key-encryption key: it wraps the data key of every value it seals.
type Key struct {
	id   string
	wrap cipher.AEAD
}

// NewKey returns the key-encryption key of a 32-byte secret. Its id is
// derived from the secret, so every process configured with the same secret
// agrees on it without configuring ids.
func NewKey(secret []byte) (*Key, error) {
	if len(secret) != KeySize {
		return nil, fmt.Errorf("sealed: a key is %d bytes, not %d", KeySize, len(secret))
	}
	wrapKey, err := hkdf.Key(sha256.New, secret, nil, wrapLabel, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("sealed: derive the wrapping key: %w", err)
	}
	idBytes, err := hkdf.Key(sha256.New, secret, nil, idLabel, 8)
	if err != nil {
		return nil, fmt.Errorf("sealed: derive the key id: %w", err)
	}
	aead, err := chacha20poly1305.NewX(wrapKey)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	return &Key{id: hex.EncodeToString(idBytes), wrap: aead}, nil
}

// GenerateKey returns a new random key (tests, and per-purpose keys).
func GenerateKey() (*Key, []byte, error) {
	secret := make([]byte, KeySize)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, fmt.Errorf("sealed: %w", err)
	}
	k, err := NewKey(secret)
	return k, secret, err
}

// ID is the key's id, 16 hex digits. It names the key in sealed values and
// logs and reveals nothing about the key.
func (k *Key) ID() string { return k.id }

// Seal encrypts plaintext for the place named by where (for example
// "accounts.user.<id>/password_hash"); Open with the same where gets it back.
func (k *Key) Seal(plaintext []byte, where string) (*eventsv1.SealedSecret, error) {
	dataKey := make([]byte, KeySize)
	if _, err := rand.Read(dataKey); err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	value, err := chacha20poly1305.NewX(dataKey)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	nonce := make([]byte, value.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	wrapNonce := make([]byte, k.wrap.NonceSize())
	if _, err := rand.Read(wrapNonce); err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	return &eventsv1.SealedSecret{
		KeyId:      k.id,
		Algorithm:  eventsv1.SealAlgorithm_SEAL_ALGORITHM_XCHACHA20_POLY1305,
		WrappedKey: k.wrap.Seal(wrapNonce, wrapNonce, dataKey, k.wrapAD(where)),
		Nonce:      nonce,
		Ciphertext: value.Seal(nil, nonce, plaintext, valueAD(where)),
	}, nil
}

// Open decrypts a value this key sealed for the place named by where.
func (k *Key) Open(s *eventsv1.SealedSecret, where string) ([]byte, error) {
	switch {
	case s == nil:
		return nil, errors.New("sealed: no sealed value")
	case s.GetKeyId() != k.id:
		return nil, &UnknownKeyError{ID: s.GetKeyId()}
	case s.GetAlgorithm() != eventsv1.SealAlgorithm_SEAL_ALGORITHM_XCHACHA20_POLY1305:
		return nil, fmt.Errorf("sealed: unsupported algorithm %v", s.GetAlgorithm())
	}
	wrapped := s.GetWrappedKey()
	ns := k.wrap.NonceSize()
	if len(wrapped) < ns+k.wrap.Overhead() || len(s.GetNonce()) != chacha20poly1305.NonceSizeX {
		return nil, ErrOpen
	}
	dataKey, err := k.wrap.Open(nil, wrapped[:ns], wrapped[ns:], k.wrapAD(where))
	if err != nil || len(dataKey) != KeySize {
		return nil, ErrOpen
	}
	value, err := chacha20poly1305.NewX(dataKey)
	if err != nil {
		return nil, ErrOpen
	}
	plaintext, err := value.Open(nil, s.GetNonce(), s.GetCiphertext(), valueAD(where))
	if err != nil {
		return nil, ErrOpen
	}
	return plaintext, nil
}

// wrapAD binds a wrapped data key to this key's id and to the value's place.
func (k *Key) wrapAD(where string) []byte {
	return []byte(wrapLabel + "\x00" + k.id + "\x00" + where)
}

// valueAD binds a value to its place.
func valueAD(where string) []byte {
	return []byte(valueLabel + "\x00" + where)
}
