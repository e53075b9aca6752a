package pkce_test

import (
	"strings"
	"testing"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/services/authorize/internal/pkce"
)

// The example of RFC 7636 Appendix B.
const (
	rfcVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfcChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

func TestVerify(t *testing.T) {
	tests := []struct {
		name                string
		challenge, verifier string
		want                bool
	}{
		{"RFC 7636 Appendix B", rfcChallenge, rfcVerifier, true},
		{"verifier changed", rfcChallenge, rfcVerifier[:42] + "Y", false},
		{"challenge changed", "F" + rfcChallenge[1:], rfcVerifier, false},
		{"plain: verifier as its own challenge", rfcVerifier, rfcVerifier, false},
		{"empty verifier", rfcChallenge, "", false},
		{"empty challenge", "", rfcVerifier, false},
		{"challenge with padding", rfcChallenge + "=", rfcVerifier, false},
		{"verifier too short", "", "a", false},
		// A verifier with a character outside the unreserved set fails even
		// when the challenge is its true S256 transform (computed with openssl).
		{"verifier with space", "yRMT0C56DfjhDGsdwIPX1T1Wi1Ee-Gr8X8_kFJSKYLw", strings.Repeat("a", 42) + " ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pkce.Verify(tt.challenge, tt.verifier); got != tt.want {
				t.Fatalf("Verify(%q, %q) = %v, want %v", tt.challenge, tt.verifier, got, tt.want)
			}
		})
	}
}

func TestValidChallenge(t *testing.T) {
	tests := []struct {
		name              string
		method, challenge string
		wantField         string // "" for valid
		wantMsg           string
	}{
		{"RFC example", "S256", rfcChallenge, "", ""},
		{"plain", "plain", rfcVerifier, "code_challenge_method", `"plain" is not supported`},
		{"missing method", "", rfcChallenge, "code_challenge_method", "is required"},
		{"lower-case s256", "s256", rfcChallenge, "code_challenge_method", `must be "S256"`},
		{"unknown method", "S512", rfcChallenge, "code_challenge_method", `must be "S256"`},
		{"empty challenge", "S256", "", "code_challenge", "43 characters"},
		{"short challenge", "S256", rfcChallenge[1:], "code_challenge", "43 characters"},
		{"long challenge", "S256", rfcChallenge + "A", "code_challenge", "43 characters"},
		{"padded challenge", "S256", rfcChallenge[:42] + "=", "code_challenge", "SHA-256"},
		{"standard base64 alphabet", "S256", rfcChallenge[:42] + "+", "code_challenge", "SHA-256"},
		{"non-canonical last character", "S256", rfcChallenge[:42] + "N", "code_challenge", "SHA-256"},
		{"non-ASCII", "S256", rfcChallenge[:41] + "é", "code_challenge", "SHA-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pkce.ValidChallenge(tt.method, tt.challenge)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("ValidChallenge: %v", err)
				}
				return
			}
			if errs.KindOf(err) != errs.KindInvalid || errs.FieldOf(err) != tt.wantField ||
				!strings.Contains(errs.PublicMessage(err), tt.wantMsg) {
				t.Fatalf("ValidChallenge err = %v (kind %v, field %q), want invalid %s containing %q",
					err, errs.KindOf(err), errs.FieldOf(err), tt.wantField, tt.wantMsg)
			}
		})
	}
}

func TestValidVerifier(t *testing.T) {
	tests := []struct {
		name     string
		verifier string
		valid    bool
	}{
		{"RFC example", rfcVerifier, true},
		{"43 characters", strings.Repeat("a", 43), true},
		{"128 characters", strings.Repeat("~", 128), true},
		{"all unreserved characters", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", true},
		{"42 characters", strings.Repeat("a", 42), false},
		{"129 characters", strings.Repeat("a", 129), false},
		{"empty", "", false},
		{"plus", strings.Repeat("a", 42) + "+", false},
		{"slash", strings.Repeat("a", 42) + "/", false},
		{"equals", strings.Repeat("a", 42) + "=", false},
		{"percent", strings.Repeat("a", 42) + "%", false},
		{"NUL", strings.Repeat("a", 42) + "\x00", false},
		{"non-ASCII", strings.Repeat("a", 42) + "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pkce.ValidVerifier(tt.verifier)
			if (err == nil) != tt.valid {
				t.Fatalf("ValidVerifier(%q) = %v, want valid %v", tt.verifier, err, tt.valid)
			}
			if err != nil && (errs.KindOf(err) != errs.KindInvalid || errs.FieldOf(err) != "code_verifier") {
				t.Fatalf("err kind %v field %q", errs.KindOf(err), errs.FieldOf(err))
			}
		})
	}
}
