package keys

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// LoadPEM returns a Keyset of the private keys in the given PEM inputs, in
// order. Each input may hold several blocks; "RSA PRIVATE KEY" (PKCS#1),
// "PRIVATE KEY" (PKCS#8) and "EC PRIVATE KEY" (SEC1) blocks are read, "EC
// PARAMETERS" blocks (written by openssl ecparam -genkey) are skipped, and any
// other block, an encrypted key or an input without a key is an error.
func LoadPEM(pems [][]byte) (*Keyset, error) {
	b := newBuilder()
	for i, data := range pems {
		found := false
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			priv, err := parsePEMBlock(block)
			if err != nil {
				return nil, fmt.Errorf("keys: PEM input %d: %w", i, err)
			}
			if priv == nil {
				continue
			}
			if _, err := b.add(priv); err != nil {
				return nil, fmt.Errorf("keys: PEM input %d: %w", i, err)
			}
			found = true
		}
		if !found {
			return nil, fmt.Errorf("keys: PEM input %d holds no private key", i)
		}
	}
	return b.keyset()
}

// parsePEMBlock returns the private key in a block, or nil for a block to skip.
func parsePEMBlock(block *pem.Block) (any, error) {
	if _, encrypted := block.Headers["DEK-Info"]; encrypted {
		return nil, fmt.Errorf("encrypted PEM block %q is not supported", block.Type)
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		return x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "EC PARAMETERS":
		return nil, nil
	default:
		return nil, fmt.Errorf("PEM block %q is not a supported private key", block.Type)
	}
}

// storedKeyset is the persisted form of a Keyset: a JWK Set of the private
// signing keys, plus the retired public keys under a member that other JWK Set
// readers ignore (RFC 7517 §5).
type storedKeyset struct {
	Keys    []json.RawMessage `json:"keys"`
	Retired []storedRetired   `json:"gatehouse_retired,omitempty"`
}

// storedRetired is a retired public key and the time it stops being published.
type storedRetired struct {
	Until time.Time       `json:"until"`
	Key   json.RawMessage `json:"key"`
}

// MarshalPrivate returns the Keyset as JSON for storage: a JWK Set whose
// "keys" are the private signing keys, with the retired public keys and their
// times under "gatehouse_retired". The result is secret.
func (k *Keyset) MarshalPrivate() ([]byte, error) {
	var st storedKeyset
	for _, s := range k.signing {
		raw, err := json.Marshal(jose.JSONWebKey{Key: s.priv, KeyID: s.kid, Algorithm: s.alg, Use: "sig"})
		if err != nil {
			return nil, fmt.Errorf("keys: marshal %s: %w", s.kid, err)
		}
		st.Keys = append(st.Keys, raw)
	}
	for _, r := range k.retired {
		raw, err := json.Marshal(publicJWK(r.kid, r.alg, r.pub))
		if err != nil {
			return nil, fmt.Errorf("keys: marshal %s: %w", r.kid, err)
		}
		st.Retired = append(st.Retired, storedRetired{Until: r.until.UTC(), Key: raw})
	}
	return json.Marshal(st)
}

// UnmarshalPrivate parses what MarshalPrivate returned. Every key in "keys"
// must be an RSA or EC private key whose kid, if present, is its RFC 7638
// thumbprint and whose alg, if present, is the one its type implies.
func UnmarshalPrivate(data []byte) (*Keyset, error) {
	var st storedKeyset
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("keys: parse stored keyset: %w", err)
	}
	b := newBuilder()
	for i, raw := range st.Keys {
		jwk, err := parseJWK(raw)
		if err != nil {
			return nil, fmt.Errorf("keys: stored key %d: %w", i, err)
		}
		if jwk.IsPublic() {
			return nil, fmt.Errorf("keys: stored key %d is not a private key", i)
		}
		s, err := b.add(jwk.Key)
		if err != nil {
			return nil, fmt.Errorf("keys: stored key %d: %w", i, err)
		}
		if err := checkStored(jwk, s.kid, s.alg); err != nil {
			return nil, fmt.Errorf("keys: stored key %d: %w", i, err)
		}
	}
	ks, err := b.keyset()
	if err != nil {
		return nil, err
	}
	for i, r := range st.Retired {
		jwk, err := parseJWK(r.Key)
		if err != nil {
			return nil, fmt.Errorf("keys: retired key %d: %w", i, err)
		}
		if !jwk.IsPublic() {
			return nil, fmt.Errorf("keys: retired key %d is not a public key", i)
		}
		alg, err := publicAlgorithmOf(jwk.Key)
		if err != nil {
			return nil, fmt.Errorf("keys: retired key %d: %w", i, err)
		}
		kid, err := thumbprint(jwk.Key)
		if err != nil {
			return nil, err
		}
		if err := checkStored(jwk, kid, alg); err != nil {
			return nil, fmt.Errorf("keys: retired key %d: %w", i, err)
		}
		if b.kids[kid] {
			return nil, fmt.Errorf("keys: retired key %d (%s) appears twice", i, kid)
		}
		b.kids[kid] = true
		ks.retired = append(ks.retired, retiredKey{kid: kid, alg: alg, pub: jwk.Key, until: r.Until})
	}
	return ks, nil
}

// parseJWK parses one JSON Web Key.
func parseJWK(raw json.RawMessage) (jose.JSONWebKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return jose.JSONWebKey{}, err
	}
	return jwk, nil
}

// checkStored checks a stored key's kid, alg and use against what its key
// material implies.
func checkStored(jwk jose.JSONWebKey, kid, alg string) error {
	if jwk.KeyID != "" && jwk.KeyID != kid {
		return fmt.Errorf("kid %q is not the key's thumbprint %q", jwk.KeyID, kid)
	}
	if jwk.Algorithm != "" && jwk.Algorithm != alg {
		return fmt.Errorf("alg %q does not fit a key for %s", jwk.Algorithm, alg)
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return fmt.Errorf("use %q is not \"sig\"", jwk.Use)
	}
	return nil
}
