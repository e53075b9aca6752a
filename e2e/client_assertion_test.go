package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"gatehouse.dev/platform/ids"
)

// assertionFor signs an RFC 7523 client assertion.
func assertionFor(t *testing.T, key any, alg jose.SignatureAlgorithm, clientID, audience string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: jwt.Audience{audience}, ID: ids.Token(24),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func tokenWithAssertion(t *testing.T, tokenURL, assertion string) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(tokenURL, url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// Client authentication by signed assertions (client_secret_jwt and
// private_key_jwt): each assertion works once, a replay is refused.
func TestClientAssertions(t *testing.T) {
	e := newOAuthEnv(t)
	tokenURL := e.issuer + "oauth2/token"

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	public, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ec.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	var jwks map[string]any
	json.Unmarshal(public, &jwks)

	secretClient := e.register(t, map[string]any{
		"client_uri": "https://jwt.example.com/", "application_type": "web", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "HS256",
	}, http.StatusCreated)
	keyClient := e.register(t, map[string]any{
		"client_uri": "https://jwt.example.com/", "application_type": "web", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks,
	}, http.StatusCreated)
	secret, _ := secretClient["client_secret"].(string)
	if len(secret) < 64 {
		t.Fatalf("client_secret_jwt client got a secret of %d characters", len(secret))
	}

	tests := []struct {
		name     string
		key      any
		alg      jose.SignatureAlgorithm
		clientID string
	}{
		{"client_secret_jwt", []byte(secret), jose.HS256, secretClient["client_id"].(string)},
		{"private_key_jwt", ec, jose.ES256, keyClient["client_id"].(string)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := assertionFor(t, tt.key, tt.alg, tt.clientID, tokenURL)
			if status, body := tokenWithAssertion(t, tokenURL, a); status != http.StatusOK || body["access_token"] == nil {
				t.Fatalf("first use: %d %v", status, body)
			}
			if status, body := tokenWithAssertion(t, tokenURL, a); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
				t.Fatalf("TestAssertionReplayRejected: replay answered %d %v", status, body)
			}
			wrongAud := assertionFor(t, tt.key, tt.alg, tt.clientID, "https://elsewhere.example/token")
			if status, body := tokenWithAssertion(t, tokenURL, wrongAud); status != http.StatusUnauthorized {
				t.Fatalf("wrong audience: %d %v", status, body)
			}
		})
	}
	// An assertion signed by someone else's key for the private_key_jwt client is refused.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := assertionFor(t, other, jose.ES256, keyClient["client_id"].(string), tokenURL)
	if status, body := tokenWithAssertion(t, tokenURL, forged); status != http.StatusUnauthorized || !strings.Contains(body["error"].(string), "invalid_client") {
		t.Fatalf("forged assertion: %d %v", status, body)
	}
}
