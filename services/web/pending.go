package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// Pending registrations. Between the registration form and the emailed code
// the chosen username, address and password must be kept somewhere: the
// accounts service needs the password in the clear to hash it, and only once
// the address is proved. They are kept in this process's memory, never in a
// cookie and never written anywhere:
//
//   - the browser gets a short-lived cookie holding a random id and a random
//     key; the server keeps the registration under the id, with the password
//     sealed (AES-256-GCM) under that key, which it does not keep. Neither a
//     memory dump of the server nor the cookie alone reveals the password;
//   - an entry lives at most pendingTTL and is dropped once the account
//     exists, when the person starts over, or when it expires;
//   - the store is per replica: the code must be entered on the replica that
//     sent it (sticky sessions), and a restart loses sign-ups in progress
//     (the person starts again). At most maxPending wait at once.
const (
	pendingTTL = 30 * time.Minute
	maxPending = 10000
)

type pendingRegistration struct {
	username, email string
	// grant and device are where to continue once registered.
	grant, device  string
	verificationID string
	sealed         []byte
	expires        time.Time
}

type pendingStore struct {
	mu sync.Mutex
	m  map[string]*pendingRegistration
}

func newPendingStore() *pendingStore { return &pendingStore{m: map[string]*pendingRegistration{}} }

var errPendingFull = errors.New("too many pending registrations")

// add keeps p with its password sealed, and returns the cookie value that
// finds it again.
func (ps *pendingStore) add(p *pendingRegistration, password string, now time.Time) (string, error) {
	id, key := make([]byte, 16), make([]byte, 32)
	rand.Read(id)
	rand.Read(key)
	aead := newAEAD(key)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	p.sealed = aead.Seal(nonce, nonce, []byte(password), id)
	p.expires = now.Add(pendingTTL)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.m) >= maxPending {
		ps.sweepLocked(now)
		if len(ps.m) >= maxPending {
			return "", errPendingFull
		}
	}
	ps.m[string(id)] = p
	return base64.RawURLEncoding.EncodeToString(append(id, key...)), nil
}

// get returns the registration a cookie value names, and its password, if
// it is still pending.
func (ps *pendingStore) get(cookie string, now time.Time) (*pendingRegistration, string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(cookie)
	if err != nil || len(raw) != 48 {
		return nil, "", false
	}
	id, key := raw[:16], raw[16:]
	ps.mu.Lock()
	p, ok := ps.m[string(id)]
	ps.mu.Unlock()
	if !ok || now.After(p.expires) {
		return nil, "", false
	}
	aead := newAEAD(key)
	if len(p.sealed) < aead.NonceSize() {
		return nil, "", false
	}
	pw, err := aead.Open(nil, p.sealed[:aead.NonceSize()], p.sealed[aead.NonceSize():], id)
	if err != nil {
		return nil, "", false
	}
	return p, string(pw), true
}

// remove drops the registration a cookie value names.
func (ps *pendingStore) remove(cookie string) {
	raw, err := base64.RawURLEncoding.DecodeString(cookie)
	if err != nil || len(raw) != 48 {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.m, string(raw[:16]))
}

// sweep drops expired registrations.
func (ps *pendingStore) sweep(now time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.sweepLocked(now)
}

func (ps *pendingStore) sweepLocked(now time.Time) {
	for id, p := range ps.m {
		if now.After(p.expires) {
			delete(ps.m, id)
		}
	}
}

func newAEAD(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // a 32-byte key always works
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}
