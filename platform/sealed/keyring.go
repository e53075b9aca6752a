package sealed

import (
	"fmt"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Keyring is the deployment's key-encryption keys: the current one seals,
// every one opens what it sealed. It is immutable and safe for concurrent use.
//
// Rotating the key-encryption key: configure a new current key with the old
// one among the previous keys and restart; every service seals its secrets
// again under the new key (values whose Current reports false), after which
// the old key can be dropped from the configuration.
type Keyring struct {
	current *Key
	keys    map[string]*Key
}

// NewKeyring returns a keyring that seals with current and opens with current
// and every previous key. Two keys with the same id are one key given twice.
func NewKeyring(current *Key, previous ...*Key) (*Keyring, error) {
	if current == nil {
		return nil, fmt.Errorf("sealed: a keyring needs a current key")
	}
	r := &Keyring{current: current, keys: map[string]*Key{current.ID(): current}}
	for _, k := range previous {
		if k == nil {
			return nil, fmt.Errorf("sealed: nil previous key")
		}
		if _, dup := r.keys[k.ID()]; dup {
			return nil, fmt.Errorf("sealed: key %s is configured twice", k.ID())
		}
		r.keys[k.ID()] = k
	}
	return r, nil
}

// NewRandomKeyring returns a keyring of one new random key (tests).
func NewRandomKeyring() *Keyring {
	k, _, err := GenerateKey()
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	r, _ := NewKeyring(k)
	return r
}

// CurrentID is the id of the key that seals.
func (r *Keyring) CurrentID() string { return r.current.ID() }

// IDs returns the ids of every key, the current one first.
func (r *Keyring) IDs() []string {
	ids := []string{r.current.ID()}
	for id := range r.keys {
		if id != r.current.ID() {
			ids = append(ids, id)
		}
	}
	return ids
}

// Seal seals plaintext for the place named by where with the current key.
func (r *Keyring) Seal(plaintext []byte, where string) (*eventsv1.SealedSecret, error) {
	return r.current.Seal(plaintext, where)
}

// Open opens a value sealed for where by any key of the keyring. A value
// sealed by a key the keyring does not hold is an *UnknownKeyError.
func (r *Keyring) Open(s *eventsv1.SealedSecret, where string) ([]byte, error) {
	k, ok := r.keys[s.GetKeyId()]
	if !ok {
		return nil, &UnknownKeyError{ID: s.GetKeyId()}
	}
	return k.Open(s, where)
}

// Current reports whether a value is sealed under the current key, so needs
// no sealing again after a rotation.
func (r *Keyring) Current(s *eventsv1.SealedSecret) bool {
	return s != nil && s.GetKeyId() == r.current.ID()
}

// Reseal opens a value sealed for where and seals it again under the current
// key; a value already sealed under the current key is returned as it is.
func (r *Keyring) Reseal(s *eventsv1.SealedSecret, where string) (*eventsv1.SealedSecret, error) {
	if r.Current(s) {
		return s, nil
	}
	plaintext, err := r.Open(s, where)
	if err != nil {
		return nil, err
	}
	return r.Seal(plaintext, where)
}
