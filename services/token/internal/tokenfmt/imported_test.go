package tokenfmt

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

func TestImported(t *testing.T) {
	macaroon := base64.RawURLEncoding.EncodeToString([]byte("0019location example.org\n0013identifier key\n0010cid gen = 1\n"))
	tests := []struct {
		token string
		want  Kind
	}{
		{"syt_YWxpY2U_QWERTYUIOPasdfghjklz_1a2B3c", CompatAccessToken},
		{"syt_Ym9i+/8_QWERTYUIOPasdfghjklz_1a2B3c", CompatAccessToken},
		{"syr_YWxpY2U_QWERTYUIOPasdfghjklz_1a2B3c", CompatRefreshToken},
		{macaroon, CompatAccessToken},
		{"syl_QWERTYUIOPasdfghjklz_1a2B3c", 0}, // login tokens are not imported
		{"syt_with spaces_x_y", 0},
		{"mct_abc", 0},
		{"", 0},
		{base64.RawURLEncoding.EncodeToString([]byte("0019elsewhere example.org")), 0},
		{base64.URLEncoding.EncodeToString([]byte("0019location example.org\n0013identifier key\n")), CompatAccessToken}, // padded
		{base64.RawURLEncoding.EncodeToString([]byte("0019location ex")), CompatAccessToken},                             // 20 characters
		{base64.RawURLEncoding.EncodeToString([]byte("0019location e")), CompatAccessToken},                              // 19
		{base64.RawURLEncoding.EncodeToString([]byte("0019location")), 0},                                                // too short
		{macaroon[:24] + "!" + macaroon[25:], 0},                                                                         // a macaroon's head, the rest not base64
		{macaroon[:len(macaroon)-1] + "=" + macaroon[len(macaroon)-1:], 0},                                               // padding inside
		{"mat_0123456789abcdefghijklmnopqrst_ABCDEF", 0},
	}
	for _, tt := range tests {
		if got := Imported(tt.token); got != tt.want {
			t.Errorf("Imported(%q) = %v, want %v", tt.token, got, tt.want)
		}
	}
}

// Hash is SHA-256 of the token, whatever its length (short ones go by the stack).
func TestHashAnyLength(t *testing.T) {
	for _, n := range []int{0, 1, 32, 33, 41, MaxLen - 1, MaxLen, MaxLen + 1, maxImportedLen, 5000} {
		token := strings.Repeat("x", n)
		if Hash(token) != sha256.Sum256([]byte(token)) {
			t.Errorf("Hash of %d bytes is not its SHA-256", n)
		}
	}
}
