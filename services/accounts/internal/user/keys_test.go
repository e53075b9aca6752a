package user

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	claimKey := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name string
		key  func(string) string
		in   string
		want string
	}{
		{"username", UsernameKey, "alice", "616c696365"},
		{"username with subject metacharacters", UsernameKey, "a.b/c", "612e622f63"},
		{"legacy email", LegacyEmailKey, "a.b@example.org", "612e62406578616d706c652e6f7267"},
		{"legacy email folds case", LegacyEmailKey, "A.B@Example.ORG", "612e62406578616d706c652e6f7267"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.key(tt.in); got != tt.want {
				t.Fatalf("key(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}

	t.Run("email keys are keyed hashes", func(t *testing.T) {
		k := EmailKey(claimKey, "a.b@example.org")
		if k != EmailKey(claimKey, "A.B@Example.ORG") {
			t.Error("the email key does not fold case")
		}
		if len(k) != 65 || !strings.HasPrefix(k, "h") || strings.Trim(k[1:], "0123456789abcdef") != "" {
			t.Errorf("email key %q is not h + 64 hex digits", k)
		}
		if IsLegacyEmailKey(k) || !IsLegacyEmailKey(LegacyEmailKey("a.b@example.org")) {
			t.Error("keyed and legacy keys are not told apart")
		}
		if k == EmailKey([]byte("another key of thirty-two bytes!"), "a.b@example.org") {
			t.Error("the email key does not depend on the claim key")
		}
		raw, _ := hex.DecodeString(k[1:])
		if strings.Contains(string(raw), "example") || strings.Contains(k, hex.EncodeToString([]byte("a.b@example.org"))) {
			t.Error("the email key reveals the address")
		}
	})
}

func TestUsernameKeysAreDistinct(t *testing.T) {
	names := []string{"a.b", "a_b", "a=b", "a/b", "a+b", "a-b", "ab", "a.b.", "a..b"}
	seen := map[string]string{}
	for _, n := range names {
		k := UsernameKey(n)
		if prev, ok := seen[k]; ok {
			t.Errorf("UsernameKey(%q) = UsernameKey(%q) = %q", n, prev, k)
		}
		seen[k] = n
	}
}
