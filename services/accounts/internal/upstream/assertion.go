package upstream

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"gatehouse.dev/platform/config"
)

// assertionSigner signs the client assertions of private_key_jwt (RFC 7523):
// iss and sub the client id, aud the token endpoint, a fresh jti, valid one minute.
type assertionSigner struct {
	signer jose.Signer
}

func newAssertionSigner(file string, c config.UpstreamProvider) (*assertionSigner, error) {
	key, err := c.ReadPrivateKey()
	if err != nil {
		return nil, err
	}
	var alg jose.SignatureAlgorithm
	switch k := key.(type) {
	case *rsa.PrivateKey:
		alg = jose.RS256
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		default:
			return nil, fmt.Errorf("upstream provider %s: %s: EC keys must be P-256 or P-384", c.ID, file)
		}
	default:
		return nil, fmt.Errorf("upstream provider %s: %s: want an RSA or EC key, not %T", c.ID, file, key)
	}
	pub := jose.JSONWebKey{Key: key.(crypto.Signer).Public()}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("upstream provider %s: %s: %w", c.ID, file, err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: base64.RawURLEncoding.EncodeToString(thumb)}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("upstream provider %s: %s: %w", c.ID, file, err)
	}
	return &assertionSigner{signer: s}, nil
}

// sign returns a fresh client assertion for the token endpoint.
func (a *assertionSigner) sign(clientID, tokenEndpoint string) (string, error) {
	now := time.Now()
	return jwt.Signed(a.signer).Claims(jwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: jwt.Audience{tokenEndpoint}, ID: random(),
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
	}).Serialize()
}
