package user

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	tests := []struct {
		name string
		key  func(string) string
		in   string
		want string
	}{
		{"username", UsernameKey, "alice", "616c696365"},
		{"username with subject metacharacters", UsernameKey, "a.b/c", "612e622f63"},
		{"email", EmailKey, "a.b@example.org", "612e62406578616d706c652e6f7267"},
		{"email folds case", EmailKey, "A.B@Example.ORG", "612e62406578616d706c652e6f7267"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.key(tt.in)
			if got != tt.want {
				t.Fatalf("key(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Trim(got, "0123456789abcdef") != "" {
				t.Errorf("key %q is not lower-case hex", got)
			}
			decoded, err := hex.DecodeString(got)
			if err != nil || string(decoded) != strings.ToLower(tt.in) {
				t.Errorf("key %q decodes to %q, %v", got, decoded, err)
			}
		})
	}
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
