package synapse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Vectors computed outside Go, with Python's zlib.crc32 and Synapse's base62
// (0-9A-Za-z, left-padded with '0' to 6).
var vectors = []struct {
	token Token
	want  TokenFormat
}{
	{"syt_YWxpY2U_AbCdEfGhIjKlMnOpQrSt_1UdevA", FormatAccess},
	{"syt_Qm9iX8OcbsOvY29kZQ_AbCdEfGhIjKlMnOpQrSt_1mn117", FormatAccess},
	{"syr_YWxpY2U_ZZZZZZZZZZZZZZZZZZZZ_0QVqf9", FormatRefresh},
}

func TestClassifyToken(t *testing.T) {
	// A pymacaroons v1 macaroon: packets "location …", "identifier key", …,
	// URL-safe base64 without padding.
	macaroon := "MDAxY2xvY2F0aW9uIGV4YW1wbGUub3JnCjAwMTNpZGVudGlmaWVyIGtleQowMDEwY2lkIGdlbiA9IDEK"
	tests := append(vectors[:len(vectors):len(vectors)], []struct {
		token Token
		want  TokenFormat
	}{
		{"syt_YWxpY2U_AbCdEfGhIjKlMnOpQrSt_1UdevB", FormatBadChecksum},
		{"syt_YWxpY2U_AbCdEfGhIjKlMnOpQrSt", FormatBadChecksum},
		{"syr_YWxpY2U_ZZZZZZZZZZZZZZZZZZZZ_1UdevA", FormatBadChecksum},
		{Token(macaroon), FormatMacaroon},
		{Token(macaroon + "=="), FormatMacaroon},
		{"MDAxY2xvY2F0aW9uIGV4YW1wbGUub3JnCg", FormatMacaroon},
		{"bm90IGEgbWFjYXJvb24gYXQgYWxsLCBubyBsb2NhdGlvbg", FormatUnknown},
		{"mct_abcdef", FormatUnknown},
		{"", FormatUnknown},
		{"!!!not base64!!!!!!!!!!!!!!", FormatUnknown},
	}...)
	for _, tt := range tests {
		if got := ClassifyToken(tt.token); got != tt.want {
			t.Errorf("ClassifyToken(%q) = %v, want %v", tt.token.Reveal(), got, tt.want)
		}
	}
}

func TestTokenChecksum(t *testing.T) {
	for _, v := range vectors {
		s := v.token.Reveal()
		i := strings.LastIndexByte(s, '_')
		if got := TokenChecksum(s[:i]); got != s[i+1:] {
			t.Errorf("TokenChecksum(%q) = %q, want %q", s[:i], got, s[i+1:])
		}
	}
	if got := base62(0, 6); got != "000000" {
		t.Errorf("base62(0) = %q", got)
	}
	if got := base62(4294967295, 6); got != "4gfFC3" {
		t.Errorf("base62(2^32-1) = %q", got)
	}
}

// A token shows as "[redacted]" in every fmt verb, in logs and in JSON.
func TestTokenNeverPrints(t *testing.T) {
	const secret = "syt_c2VjcmV0_SECRETSECRETSECRETSE_000000"
	tok := Token(secret)
	rec := AccessToken{ID: 7, MXID: "@a:b", Token: tok}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("token", "token", tok, "record", rec)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("token", "token", tok)
	js, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("%s %v %+v %#v %q %x %X %d %10s %T", tok, tok, rec, rec, tok, tok, tok, tok, tok, tok) +
		fmt.Sprint(tok, rec) + logs.String() + string(js)
	if strings.Contains(out, "SECRET") || strings.Contains(out, "c2VjcmV0") {
		t.Fatalf("the token shows: %s", out)
	}
	if !strings.Contains(out, "[redacted]") {
		t.Fatalf("no redaction marker: %s", out)
	}
	if tok.Reveal() != secret {
		t.Fatal("Reveal lost the token")
	}
}
