package upstreamstate

import (
	"bytes"
	"testing"
	"time"
)

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	now := time.Now()
	a := Attempt{Provider: "google", State: "st", Nonce: "no", Verifier: "ve", Grant: "01J", Expires: now.Add(TTL).Unix()}
	sealed, err := Seal(key, a)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := Open(key, sealed, "google", now)
	if !ok || got != a {
		t.Fatalf("Open = %+v, %v; want %+v", got, ok, a)
	}
	if !got.StateMatches("st") || got.StateMatches("sx") || got.StateMatches("") {
		t.Error("StateMatches is wrong")
	}
	tampered := []byte(sealed)
	tampered[len(tampered)/2] ^= 1
	for name, tc := range map[string]struct {
		key      []byte
		value    string
		provider string
		at       time.Time
	}{
		"another key":      {bytes.Repeat([]byte{8}, 32), sealed, "google", now},
		"another provider": {key, sealed, "github", now},
		"expired":          {key, sealed, "google", now.Add(TTL + time.Minute)},
		"tampered":         {key, string(tampered), "google", now},
		"garbage":          {key, "!!", "google", now},
		"empty":            {key, "", "google", now},
	} {
		if _, ok := Open(tc.key, tc.value, tc.provider, tc.at); ok {
			t.Errorf("%s: opened", name)
		}
	}
}
