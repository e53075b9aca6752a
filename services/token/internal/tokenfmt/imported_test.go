package tokenfmt

import (
	"encoding/base64"
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
	}
	for _, tt := range tests {
		if got := Imported(tt.token); got != tt.want {
			t.Errorf("Imported(%q) = %v, want %v", tt.token, got, tt.want)
		}
	}
}
