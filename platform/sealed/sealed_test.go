package sealed_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/sealed"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

func newKey(t *testing.T) (*sealed.Key, []byte) {
	t.Helper()
	k, secret, err := sealed.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, secret
}

func TestSealOpenRoundTrip(t *testing.T) {
	k, _ := newKey(t)
	secret := []byte("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")
	s, err := k.Seal(secret, "accounts.user.01J/password_hash")
	if err != nil {
		t.Fatal(err)
	}
	if s.GetKeyId() != k.ID() || s.GetAlgorithm() != eventsv1.SealAlgorithm_SEAL_ALGORITHM_XCHACHA20_POLY1305 {
		t.Fatalf("sealed value names key %q, algorithm %v", s.GetKeyId(), s.GetAlgorithm())
	}
	raw, _ := proto.Marshal(s)
	if bytes.Contains(raw, secret) || bytes.Contains(raw, []byte("argon2")) {
		t.Fatal("the sealed value holds the secret in clear")
	}
	got, err := k.Open(s, "accounts.user.01J/password_hash")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// A fresh data key and nonces every time: two seals of one value differ.
	again, _ := k.Seal(secret, "accounts.user.01J/password_hash")
	if bytes.Equal(again.GetCiphertext(), s.GetCiphertext()) || bytes.Equal(again.GetWrappedKey(), s.GetWrappedKey()) || bytes.Equal(again.GetNonce(), s.GetNonce()) {
		t.Fatal("two seals of the same value are alike")
	}
	// Empty values seal too (a key aggregate never has them, but nothing breaks).
	empty, err := k.Seal(nil, "x")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(empty, "x"); err != nil || len(got) != 0 {
		t.Fatalf("Open(empty) = %q, %v", got, err)
	}
}

// A sealed value opens only where it was sealed for, untouched, with its key.
func TestOpenRefusesMisuse(t *testing.T) {
	k, _ := newKey(t)
	other, _ := newKey(t)
	const where = "token.keys.current/token_mac_key"
	good, err := k.Seal([]byte("mac key bytes"), where)
	if err != nil {
		t.Fatal(err)
	}
	// A data key taken from one sealed value and put into another.
	donor, _ := k.Seal([]byte("another value"), where)
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i%len(b)] ^= 1
		return b
	}
	tests := []struct {
		name  string
		edit  func(s *eventsv1.SealedSecret)
		where string
		key   *sealed.Key
		want  error
	}{
		{name: "moved to another place", where: "token.keys.current/private_jwks", want: sealed.ErrOpen},
		{name: "moved to another aggregate", where: "token.keys.other/token_mac_key", want: sealed.ErrOpen},
		{name: "ciphertext altered", edit: func(s *eventsv1.SealedSecret) { s.Ciphertext = flip(s.Ciphertext, 3) }, want: sealed.ErrOpen},
		{name: "ciphertext truncated", edit: func(s *eventsv1.SealedSecret) { s.Ciphertext = s.Ciphertext[:len(s.Ciphertext)-1] }, want: sealed.ErrOpen},
		{name: "wrapped key altered", edit: func(s *eventsv1.SealedSecret) { s.WrappedKey = flip(s.WrappedKey, 30) }, want: sealed.ErrOpen},
		{name: "wrap nonce altered", edit: func(s *eventsv1.SealedSecret) { s.WrappedKey = flip(s.WrappedKey, 0) }, want: sealed.ErrOpen},
		{name: "wrapped key too short", edit: func(s *eventsv1.SealedSecret) { s.WrappedKey = s.WrappedKey[:20] }, want: sealed.ErrOpen},
		{name: "nonce altered", edit: func(s *eventsv1.SealedSecret) { s.Nonce = flip(s.Nonce, 5) }, want: sealed.ErrOpen},
		{name: "nonce of the wrong size", edit: func(s *eventsv1.SealedSecret) { s.Nonce = s.Nonce[:12] }, want: sealed.ErrOpen},
		{name: "data key of another value", edit: func(s *eventsv1.SealedSecret) { s.WrappedKey = donor.GetWrappedKey() }, want: sealed.ErrOpen},
		{name: "key id of another key", edit: func(s *eventsv1.SealedSecret) { s.KeyId = other.ID() }, key: other, want: sealed.ErrOpen},
		{name: "sealed by another key", key: other, want: &sealed.UnknownKeyError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := proto.Clone(good).(*eventsv1.SealedSecret)
			if tt.edit != nil {
				tt.edit(s)
			}
			key, w := k, where
			if tt.key != nil {
				key = tt.key
			}
			if tt.where != "" {
				w = tt.where
			}
			got, err := key.Open(s, w)
			if err == nil {
				t.Fatalf("opened: %q", got)
			}
			switch want := tt.want.(type) {
			case *sealed.UnknownKeyError:
				if _, ok := errors.AsType[*sealed.UnknownKeyError](err); !ok {
					t.Fatalf("err = %v, want an UnknownKeyError", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
			}
		})
	}
	if _, err := k.Open(nil, where); err == nil {
		t.Fatal("Open(nil) succeeded")
	}
	unknownAlg := proto.Clone(good).(*eventsv1.SealedSecret)
	unknownAlg.Algorithm = eventsv1.SealAlgorithm_SEAL_ALGORITHM_UNSPECIFIED
	if _, err := k.Open(unknownAlg, where); err == nil {
		t.Fatal("a value of no known algorithm opened")
	}
}

func TestKeyIDs(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, sealed.KeySize)
	a, err := sealed.NewKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sealed.NewKey(bytes.Clone(secret))
	if a.ID() != b.ID() || len(a.ID()) != 16 {
		t.Fatalf("ids of one secret: %q and %q", a.ID(), b.ID())
	}
	c, _ := newKey(t)
	if c.ID() == a.ID() {
		t.Fatal("two keys share an id")
	}
	if strings.Contains(base64.StdEncoding.EncodeToString(secret), a.ID()) {
		t.Fatal("the id shows the key")
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := sealed.NewKey(make([]byte, n)); err == nil {
			t.Errorf("NewKey accepted %d bytes", n)
		}
	}
}

// A keyring seals with its current key and opens with every key; after a
// rotation, values sealed under the old key are not current and are sealed
// again; once the old key is gone, they no longer open.
func TestKeyringRotation(t *testing.T) {
	old, _ := newKey(t)
	next, _ := newKey(t)
	const where = "notify.keys.current/key"
	before, _ := sealed.NewKeyring(old)
	s, _ := before.Seal([]byte("verification key"), where)

	during, err := sealed.NewKeyring(next, old)
	if err != nil {
		t.Fatal(err)
	}
	if during.Current(s) {
		t.Fatal("a value sealed under the old key is current after the rotation")
	}
	if got, err := during.Open(s, where); err != nil || string(got) != "verification key" {
		t.Fatalf("Open with the previous key = %q, %v", got, err)
	}
	resealed, err := during.Reseal(s, where)
	if err != nil || !during.Current(resealed) || resealed.GetKeyId() != next.ID() {
		t.Fatalf("Reseal = %v, %v", resealed, err)
	}
	if same, _ := during.Reseal(resealed, where); same != resealed {
		t.Fatal("Reseal of a current value sealed it again")
	}
	if ids := during.IDs(); len(ids) != 2 || ids[0] != next.ID() || ids[1] != old.ID() {
		t.Fatalf("IDs = %v", ids)
	}

	after, _ := sealed.NewKeyring(next)
	if got, err := after.Open(resealed, where); err != nil || string(got) != "verification key" {
		t.Fatalf("Open after dropping the old key = %q, %v", got, err)
	}
	_, err = after.Open(s, where)
	if uk, ok := errors.AsType[*sealed.UnknownKeyError](err); !ok || uk.ID != old.ID() {
		t.Fatalf("Open of a value of a dropped key: %v", err)
	}
	if !strings.Contains(err.Error(), "secrets.previous_keys") {
		t.Fatalf("the error does not say what to configure: %v", err)
	}

	if _, err := sealed.NewKeyring(old, old); err == nil {
		t.Fatal("a keyring took one key twice")
	}
	if _, err := sealed.NewKeyring(nil); err == nil {
		t.Fatal("a keyring without a current key")
	}
}
