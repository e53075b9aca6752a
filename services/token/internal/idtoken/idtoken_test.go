package idtoken_test

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/services/token/internal/idtoken"
	"gatehouse.dev/services/token/internal/keys"
)

// verify parses and verifies an ID token against the keyset's JWKS and
// returns its protected header and claims as decoded JSON.
func verify(t *testing.T, ks *keys.Keyset, token string) (jose.Header, map[string]any) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384})
	if err != nil {
		t.Fatalf("parse ID token: %v", err)
	}
	payload, err := jws.Verify(ks.JWKS())
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Protected, claims
}

func TestSign(t *testing.T) {
	ks, err := keys.Generate(keys.RS256, keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	iat := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	full := idtoken.Claims{
		Issuer:          "https://auth.example.org/",
		Subject:         "01HV2Z8X3M4N5P6Q7R8S9T0V1W",
		Audience:        "client-1",
		AuthorizedParty: "client-1",
		Expiry:          iat.Add(time.Hour),
		IssuedAt:        iat,
		AuthTime:        iat.Add(-5 * time.Minute),
		Nonce:           "n-0S6_WzA2Mj",
		AccessTokenHash: "at-hash",
		CodeHash:        "c-hash",
		Extra:           map[string]any{"username": "alice"},
	}
	fullWant := map[string]any{
		"iss": "https://auth.example.org/", "sub": "01HV2Z8X3M4N5P6Q7R8S9T0V1W", "aud": "client-1",
		"azp": "client-1", "exp": float64(iat.Add(time.Hour).Unix()), "iat": float64(iat.Unix()),
		"auth_time": float64(iat.Add(-5 * time.Minute).Unix()), "nonce": "n-0S6_WzA2Mj",
		"at_hash": "at-hash", "c_hash": "c-hash", "username": "alice",
	}
	minimal := idtoken.Claims{
		Issuer: "https://auth.example.org/", Subject: "alice-id", Audience: "client-2",
		Expiry: iat.Add(time.Hour), IssuedAt: iat,
	}
	minimalWant := map[string]any{
		"iss": "https://auth.example.org/", "sub": "alice-id", "aud": "client-2",
		"exp": float64(iat.Add(time.Hour).Unix()), "iat": float64(iat.Unix()),
	}
	tests := []struct {
		name    string
		alg     string
		wantAlg string
		claims  idtoken.Claims
		want    map[string]any
	}{
		{"RS256 all claims", "RS256", "RS256", full, fullWant},
		{"ES256 all claims", "ES256", "ES256", full, fullWant},
		{"default alg, optional claims omitted", "", "RS256", minimal, minimalWant},
		{"ES256 optional claims omitted", "ES256", "ES256", minimal, minimalWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := idtoken.Sign(ks, tt.alg, tt.claims)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if n := strings.Count(token, "."); n != 2 {
				t.Fatalf("token has %d dots, want a compact JWS", n)
			}
			h, got := verify(t, ks, token)
			if h.Algorithm != tt.wantAlg || h.ExtraHeaders["typ"] != "JWT" || h.KeyID == "" {
				t.Fatalf("header alg %q typ %v kid %q, want %s JWT with kid", h.Algorithm, h.ExtraHeaders["typ"], h.KeyID, tt.wantAlg)
			}
			if jwks := ks.JWKS(); len(jwks.Key(h.KeyID)) != 1 {
				t.Fatalf("kid %q not in JWKS", h.KeyID)
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("claims = %v\nwant     %v", got, tt.want)
			}
		})
	}
}

func TestSignRejects(t *testing.T) {
	ks, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	good := idtoken.Claims{Issuer: "https://i", Subject: "s", Audience: "a", IssuedAt: now, Expiry: now.Add(time.Hour)}
	with := func(f func(*idtoken.Claims)) idtoken.Claims {
		c := good
		f(&c)
		return c
	}
	tests := []struct {
		name     string
		alg      string
		claims   idtoken.Claims
		wantKind errs.Kind
	}{
		{"no issuer", "ES256", with(func(c *idtoken.Claims) { c.Issuer = "" }), errs.KindInternal},
		{"no subject", "ES256", with(func(c *idtoken.Claims) { c.Subject = "" }), errs.KindInternal},
		{"no audience", "ES256", with(func(c *idtoken.Claims) { c.Audience = "" }), errs.KindInternal},
		{"no expiry", "ES256", with(func(c *idtoken.Claims) { c.Expiry = time.Time{} }), errs.KindInternal},
		{"no issued-at", "ES256", with(func(c *idtoken.Claims) { c.IssuedAt = time.Time{} }), errs.KindInternal},
		{"expiry before issued-at", "ES256", with(func(c *idtoken.Claims) { c.Expiry = now.Add(-time.Second) }), errs.KindInternal},
		{"extra replaces sub", "ES256", with(func(c *idtoken.Claims) { c.Extra = map[string]any{"sub": "admin"} }), errs.KindInternal},
		{"extra replaces nonce", "ES256", with(func(c *idtoken.Claims) { c.Extra = map[string]any{"nonce": "x"} }), errs.KindInternal},
		{"extra not JSON", "ES256", with(func(c *idtoken.Claims) { c.Extra = map[string]any{"f": func() {}} }), errs.KindInternal},
		{"alg without a key", "RS256", good, errs.KindInvalid},
		{"alg none", "none", good, errs.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := idtoken.Sign(ks, tt.alg, tt.claims)
			if err == nil {
				t.Fatalf("Sign succeeded: %s", token)
			}
			if errs.KindOf(err) != tt.wantKind {
				t.Fatalf("Sign err = %v (kind %v), want kind %v", err, errs.KindOf(err), tt.wantKind)
			}
		})
	}
}

func TestHalfHash(t *testing.T) {
	// The code and c_hash of OpenID Connect Core 1.0 Appendix A.4, and a
	// third-party access token whose halves were computed with
	// `openssl dgst -sha256|-sha384|-sha512 -binary | head -c N | base64`.
	const code = "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
	const at = "ya29.OwHWAP05yaZvR92b67pAxfX5xHH5KNxA1mhh-zInoQ5vhK-Vuib1-Hqj"
	tests := []struct {
		alg, value, want string
		wantErr          bool
	}{
		{"RS256", code, "LDktKdoQak3Pk0cnXxCltA", false},
		{"ES256", code, "LDktKdoQak3Pk0cnXxCltA", false},
		{"PS256", at, "-EsTxDmUFRxSI0H_ZpbHiw", false},
		{"ES384", at, "lr15bX_3xEberC0_J8pV6Q-LIdjBQxVp", false},
		{"RS512", at, "WXpYSknb9WL3nKL9y7T6wl1M_qHYEpfpH5adSJMWnfw", false},
		{"none", at, "", true},
		{"", at, "", true},
		{"EdDSA", at, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			got, err := idtoken.HalfHash(tt.alg, tt.value)
			if (err != nil) != tt.wantErr {
				t.Fatalf("HalfHash err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("HalfHash(%s) = %q, want %q", tt.alg, got, tt.want)
			}
		})
	}
}

// TestSignWithHalfHashes checks the round trip a client makes: the at_hash in
// a verified token matches the access token under the token's own alg.
func TestSignWithHalfHashes(t *testing.T) {
	ks, err := keys.Generate(keys.ES384)
	if err != nil {
		t.Fatal(err)
	}
	const accessToken = "mat_abcdefghijklmnopqrstuvwxyz0123_ABC123"
	alg := ks.DefaultAlgorithm()
	atHash, err := idtoken.HalfHash(alg, accessToken)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token, err := idtoken.Sign(ks, "", idtoken.Claims{
		Issuer: "https://i", Subject: "s", Audience: "a", IssuedAt: now, Expiry: now.Add(time.Hour),
		AccessTokenHash: atHash,
	})
	if err != nil {
		t.Fatal(err)
	}
	h, claims := verify(t, ks, token)
	want, err := idtoken.HalfHash(h.Algorithm, accessToken)
	if err != nil {
		t.Fatal(err)
	}
	if claims["at_hash"] != want || len(want) != 32 {
		t.Fatalf("at_hash %v, want %s (32 chars for SHA-384)", claims["at_hash"], want)
	}
}
