package keys

import (
	"bytes"
	"strings"
	"testing"
)

func TestFromSecret(t *testing.T) {
	secret := []byte("replica secret A, 32 bytes long!")
	a, random, err := FromSecret(secret)
	if err != nil || random {
		t.Fatalf("FromSecret: %v random=%v", err, random)
	}
	b, _, _ := FromSecret(bytes.Clone(secret))
	if !bytes.Equal(a.CSRF, b.CSRF) || !bytes.Equal(a.SSO, b.SSO) {
		t.Error("the same secret gave different keys")
	}
	if bytes.Equal(a.CSRF, a.SSO) || len(a.CSRF) != 32 || bytes.Contains(a.CSRF, secret) {
		t.Error("the keys of two uses are equal, short, or hold the secret")
	}
	other, _, _ := FromSecret([]byte("replica secret B, 32 bytes long!"))
	if bytes.Equal(a.CSRF, other.CSRF) || bytes.Equal(a.SSO, other.SSO) {
		t.Error("two secrets gave the same keys")
	}
	r1, random1, err1 := FromSecret(nil)
	r2, random2, err2 := FromSecret(nil)
	if err1 != nil || err2 != nil || !random1 || !random2 || bytes.Equal(r1.CSRF, r2.CSRF) {
		t.Error("without a secret, keys are not random")
	}
	if _, _, err := FromSecret(secret[1:]); err == nil || !strings.Contains(err.Error(), "31 bytes, want at least 32") {
		t.Errorf("a 31-byte secret: %v", err)
	}
}
