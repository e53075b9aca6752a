// Package keys holds the asymmetric keys that sign Gatehouse's JWTs (ID
// tokens, and later signed userinfo and JWT access tokens) and publishes
// their public halves as a JWK Set.
//
// A Keyset is immutable: Generate, LoadPEM and UnmarshalPrivate build one,
// Rotate derives a new one, and every method only reads, so a Keyset is safe
// for concurrent use and can be swapped atomically by its owner. Each signing
// key has one algorithm, fixed by its type (RS256 for RSA, ES256 for P-256,
// ES384 for P-384), and a kid that is its RFC 7638 thumbprint. Retired keys
// are public keys kept in the JWK Set until a given time, so relying parties
// can still verify what the old keys signed.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse.dev/platform/errs"
)

// The signature algorithms a Keyset can hold keys for.
const (
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256, OpenID Connect's default.
	RS256 = "RS256"
	// ES256 is ECDSA on P-256 with SHA-256.
	ES256 = "ES256"
	// ES384 is ECDSA on P-384 with SHA-384.
	ES384 = "ES384"
)

// RSA modulus sizes accepted, in bits. The upper bound is go-jose's default
// MaxRSAModulusBits, past which relying parties using it reject the key.
const (
	minRSABits = 2048
	maxRSABits = 4096
	// genRSABits is the size of the RSA keys Generate makes.
	genRSABits = 2048
)

// signingKey is a private key with its kid and algorithm.
type signingKey struct {
	kid  string
	alg  string
	priv crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
}

// retiredKey is a public key published until a time.
type retiredKey struct {
	kid   string
	alg   string
	pub   crypto.PublicKey // *rsa.PublicKey or *ecdsa.PublicKey
	until time.Time
}

// Keyset is a set of signing keys and retired public keys. It is immutable
// and safe for concurrent use.
type Keyset struct {
	signing []signingKey
	retired []retiredKey
}

// Generate returns a Keyset with one new key for each algorithm given (RS256,
// ES256, ES384); with none it makes an RS256 and an ES256 key.
func Generate(algs ...string) (*Keyset, error) {
	if len(algs) == 0 {
		algs = []string{RS256, ES256}
	}
	b := newBuilder()
	for _, alg := range algs {
		priv, err := generateKey(alg)
		if err != nil {
			return nil, err
		}
		if _, err := b.add(priv); err != nil {
			return nil, err
		}
	}
	return b.keyset()
}

// generateKey makes a private key for alg.
func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case RS256:
		return rsa.GenerateKey(rand.Reader, genRSABits)
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ES384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return nil, fmt.Errorf("keys: cannot generate a key for algorithm %q", alg)
	}
}

// builder collects signing keys, refusing weak, unsupported and duplicate ones.
type builder struct {
	ks   Keyset
	kids map[string]bool
}

// newBuilder returns an empty builder.
func newBuilder() *builder { return &builder{kids: make(map[string]bool)} }

// add adds a private key as a signing key and returns it.
func (b *builder) add(priv any) (signingKey, error) {
	alg, signer, err := algorithmOf(priv)
	if err != nil {
		return signingKey{}, err
	}
	kid, err := thumbprint(signer.Public())
	if err != nil {
		return signingKey{}, err
	}
	if b.kids[kid] {
		return signingKey{}, fmt.Errorf("keys: key %s appears twice", kid)
	}
	b.kids[kid] = true
	s := signingKey{kid: kid, alg: alg, priv: signer}
	b.ks.signing = append(b.ks.signing, s)
	return s, nil
}

// keyset returns the collected Keyset, which must hold a signing key.
func (b *builder) keyset() (*Keyset, error) {
	if len(b.ks.signing) == 0 {
		return nil, fmt.Errorf("keys: no signing key")
	}
	ks := b.ks
	return &ks, nil
}

// algorithmOf returns the algorithm a private key signs with, checking its
// type, curve and size.
func algorithmOf(priv any) (string, crypto.Signer, error) {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return "", nil, fmt.Errorf("keys: RSA key of %d bits, want %d to %d", bits, minRSABits, maxRSABits)
		}
		if err := k.Validate(); err != nil {
			return "", nil, fmt.Errorf("keys: invalid RSA key: %w", err)
		}
		return RS256, k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return ES256, k, nil
		case elliptic.P384():
			return ES384, k, nil
		default:
			return "", nil, fmt.Errorf("keys: unsupported elliptic curve %s", k.Curve.Params().Name)
		}
	default:
		return "", nil, fmt.Errorf("keys: unsupported private key type %T", priv)
	}
}

// publicAlgorithmOf returns the algorithm a public key verifies.
func publicAlgorithmOf(pub any) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return "", fmt.Errorf("keys: RSA key of %d bits, want %d to %d", bits, minRSABits, maxRSABits)
		}
		return RS256, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ES256, nil
		case elliptic.P384():
			return ES384, nil
		default:
			return "", fmt.Errorf("keys: unsupported elliptic curve %s", k.Curve.Params().Name)
		}
	default:
		return "", fmt.Errorf("keys: unsupported public key type %T", pub)
	}
}

// thumbprint returns the RFC 7638 SHA-256 thumbprint of a public key,
// base64url-encoded without padding.
func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keys: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// Algorithms returns the algorithms the Keyset can sign with, default first,
// without repeats.
func (k *Keyset) Algorithms() []string {
	var algs []string
	if k.has(RS256) {
		algs = append(algs, RS256)
	}
	for _, s := range k.signing {
		if !slices.Contains(algs, s.alg) {
			algs = append(algs, s.alg)
		}
	}
	return algs
}

// DefaultAlgorithm returns the algorithm Signer uses for "": RS256 when the
// Keyset has an RSA key, else the first key's algorithm ("" for no key).
func (k *Keyset) DefaultAlgorithm() string {
	switch {
	case k.has(RS256):
		return RS256
	case len(k.signing) > 0:
		return k.signing[0].alg
	default:
		return ""
	}
}

// has reports whether a signing key uses alg.
func (k *Keyset) has(alg string) bool {
	return slices.ContainsFunc(k.signing, func(s signingKey) bool { return s.alg == alg })
}

// Signer returns a signer for alg ("" for DefaultAlgorithm) that puts the
// key's kid and typ "JWT" in the protected header, and that kid. The first
// signing key of that algorithm is used. An algorithm the Keyset has no key
// for is a KindInvalid error.
func (k *Keyset) Signer(alg string) (jose.Signer, string, error) {
	return k.SignerWith(alg, (&jose.SignerOptions{}).WithType("JWT"))
}

// SignerWith is Signer with the caller's signer options, e.g. typ "at+jwt".
func (k *Keyset) SignerWith(alg string, opts *jose.SignerOptions) (jose.Signer, string, error) {
	if alg == "" {
		alg = k.DefaultAlgorithm()
	}
	i := slices.IndexFunc(k.signing, func(s signingKey) bool { return s.alg == alg })
	if i < 0 {
		return nil, "", errs.Invalid(fmt.Sprintf("no signing key for algorithm %q", alg))
	}
	s := k.signing[i]
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(s.alg),
		Key:       jose.JSONWebKey{Key: s.priv, KeyID: s.kid, Algorithm: s.alg, Use: "sig"},
	}, opts)
	if err != nil {
		return nil, "", errs.Internalf("keys: signer for %s: %w", s.kid, err)
	}
	return signer, s.kid, nil
}

// JWKS returns the public JWK Set as of now: every signing key and every
// retired key whose time has not passed. It never contains private material.
func (k *Keyset) JWKS() jose.JSONWebKeySet { return k.JWKSAt(time.Now()) }

// JWKSAt returns the public JWK Set as of the given time.
func (k *Keyset) JWKSAt(now time.Time) jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(k.signing)+len(k.retired))}
	for _, s := range k.signing {
		set.Keys = append(set.Keys, publicJWK(s.kid, s.alg, s.priv.Public()))
	}
	for _, r := range k.retired {
		if now.Before(r.until) {
			set.Keys = append(set.Keys, publicJWK(r.kid, r.alg, r.pub))
		}
	}
	return set
}

// publicJWK builds a JWK from a public key only, so no private field can leak.
func publicJWK(kid, alg string, pub crypto.PublicKey) jose.JSONWebKey {
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// Rotate returns a new Keyset (newKeys must not be nil) that signs with newKeys' signing keys and keeps
// this Keyset's signing keys as retired keys, published until retireUntil.
// Retired keys of both Keysets are carried over with their own times; a kid
// that is signing in newKeys is not also retired.
func (k *Keyset) Rotate(newKeys *Keyset, retireUntil time.Time) *Keyset {
	out := &Keyset{signing: slices.Clone(newKeys.signing)}
	seen := make(map[string]bool)
	for _, s := range newKeys.signing {
		seen[s.kid] = true
	}
	retire := func(r retiredKey) {
		if !seen[r.kid] {
			seen[r.kid] = true
			out.retired = append(out.retired, r)
		}
	}
	for _, s := range k.signing {
		retire(retiredKey{kid: s.kid, alg: s.alg, pub: s.priv.Public(), until: retireUntil})
	}
	for _, r := range k.retired {
		retire(r)
	}
	for _, r := range newKeys.retired {
		retire(r)
	}
	return out
}
