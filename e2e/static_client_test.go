package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"
)

// Clients and signing keys from the configuration file: the static client
// gets tokens and may introspect, and the configured key is published.
func TestStaticClientAndConfiguredKeys(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "signing.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	const secret = "static-client-secret-0123456789"
	cfgFile := filepath.Join(dir, "gatehouse.yaml")
	cfg := `oauth:
  access_token_ttl: 2m
  signing_key_files: [` + keyFile + `]
  clients:
    - client_id: synapse
      client_secret: "` + secret + `"
      token_endpoint_auth_method: client_secret_basic
      client_name: Homeserver
      grant_types: [client_credentials]
`
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dataDir(t), "GATEHOUSE_CONFIG="+cfgFile)
	base := "http://" + s.http + "/"

	cc := clientcredentials.Config{ClientID: "synapse", ClientSecret: secret, TokenURL: base + "oauth2/token"}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("client_credentials with the static client: %v\n%s", err, s.log)
	}

	// The static client introspects with its own credentials.
	req, _ := http.NewRequest(http.MethodPost, base+"oauth2/introspect", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("synapse", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got["active"] != true || got["client_id"] != "synapse" {
		t.Fatalf("introspection: %d %v", resp.StatusCode, got)
	}
	if exp, iat := got["exp"].(float64), got["iat"].(float64); exp-iat < 110 || exp-iat > 130 {
		t.Fatalf("access token lifetime %v s, want the configured 2m", exp-iat)
	}

	// A wrong secret for the static client is refused.
	bad := clientcredentials.Config{ClientID: "synapse", ClientSecret: secret + "x", TokenURL: base + "oauth2/token"}
	if _, err := bad.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("wrong secret: %v", err)
	}

	// The configured key signs and is published, next to the generated ones.
	resp, err = http.Get(base + "oauth2/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct {
		Keys []struct {
			Kty, Crv, X, Alg string
		} `json:"keys"`
	}
	json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	found := false
	for _, k := range jwks.Keys {
		if k.Kty == "EC" && k.X != "" && k.X == b64url(key.PublicKey.X.FillBytes(make([]byte, 32))) {
			found = true
		}
	}
	if !found || len(jwks.Keys) < 2 {
		t.Fatalf("configured key not published: %+v", jwks.Keys)
	}

	// Discovery announces the configured key's algorithm.
	resp, err = http.Get(base + ".well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if len(meta.Algs) != 1 || meta.Algs[0] != "ES256" {
		t.Fatalf("discovery announces %v, want [ES256]", meta.Algs)
	}
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
