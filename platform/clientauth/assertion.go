package clientauth

// The JWT client assertions of RFC 7523 §2.2 that clients of the
// client_secret_jwt (HMAC with the client secret) and private_key_jwt
// (signature with a key from the client's JWK Set) methods of OpenID Connect
// Core §9 authenticate with.
//
// Verify enforces what RFC 7523 §3 requires and what fosite once missed
// (GHSA-v3q9-2p3m-7g43): the algorithm must belong to the client's method, so
// a public key can never be used as an HMAC secret; iss and sub are the
// client; aud names this server (its issuer or an endpoint that
// authenticates clients); exp is present, near and not past; and each jti is
// accepted once until the assertion expires. Every rejection is a
// KindUnauthenticated error, which maps to invalid_client.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"gatehouse.dev/platform/errs"
)

// Limits and defaults.
const (
	// MaxAssertionLen is the longest assertion looked at, in bytes.
	MaxAssertionLen = 8 << 10
	// MaxJTILen is the longest jti accepted, in bytes.
	MaxJTILen = 256
	// DefaultMaxLifetime is how far ahead exp may be when VerifierConfig leaves it zero.
	DefaultMaxLifetime = 5 * time.Minute
	// DefaultClockSkew is the skew allowed when VerifierConfig leaves it zero.
	DefaultClockSkew = 30 * time.Second
	// minRSABits is the smallest RSA key accepted (RFC 7518 §3.3).
	minRSABits = 2048
)

// Replay remembers the jti of each accepted assertion so that none is
// accepted twice.
type Replay interface {
	// Seen records (clientID, jti) until the given time and reports whether it
	// was already recorded and not yet expired. It must be atomic: of two
	// concurrent calls with the same pair, exactly one reports false.
	Seen(ctx context.Context, clientID, jti string, until time.Time) (alreadySeen bool, err error)
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Audiences are the accepted aud values: the issuer URL and the URLs of the endpoints that authenticate clients.
	Audiences []string
	// Replay records each accepted jti; it is required.
	Replay Replay
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxLifetime bounds how far in the future exp may be; zero means DefaultMaxLifetime.
	MaxLifetime time.Duration
	// ClockSkew is the leeway for exp, nbf and iat; zero means DefaultClockSkew, negative none.
	ClockSkew time.Duration
}

// Verifier verifies client assertions. It is immutable and safe for
// concurrent use if its Replay is.
type Verifier struct {
	audiences   []string
	replay      Replay
	now         func() time.Time
	maxLifetime time.Duration
	skew        time.Duration
}

// NewVerifier returns a Verifier for cfg, which must name at least one
// audience and a Replay.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.Audiences) == 0 || slices.Contains(cfg.Audiences, "") {
		return nil, errs.Internalf("clientauth: VerifierConfig.Audiences must list the token endpoint and issuer URLs")
	}
	if cfg.Replay == nil {
		return nil, errs.Internalf("clientauth: VerifierConfig.Replay is required")
	}
	v := &Verifier{
		audiences:   slices.Clone(cfg.Audiences),
		replay:      cfg.Replay,
		now:         cfg.Now,
		maxLifetime: cfg.MaxLifetime,
		skew:        cfg.ClockSkew,
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.maxLifetime <= 0 {
		v.maxLifetime = DefaultMaxLifetime
	}
	switch {
	case v.skew == 0:
		v.skew = DefaultClockSkew
	case v.skew < 0:
		v.skew = 0
	}
	return v, nil
}

// hmacAlgs returns the algorithms client_secret_jwt allows.
func hmacAlgs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512}
}

// asymmetricAlgs returns the algorithms private_key_jwt allows.
func asymmetricAlgs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{
		jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384,
	}
}

// Keys are the credentials of one client: either its secret (client_secret_jwt)
// or its public JWK Set (private_key_jwt). The zero Keys verifies nothing.
type Keys struct {
	secret []byte
	jwks   *jose.JSONWebKeySet
	algs   []jose.SignatureAlgorithm
}

// SharedSecret returns the Keys of a client_secret_jwt client: HS256, HS384 or
// HS512 with its secret, or only the algs given (the client's registered
// token_endpoint_auth_signing_alg). RFC 7518 §3.2 requires the secret to be
// at least as long as the hash: 32, 48 or 64 bytes.
func SharedSecret(secret []byte, algs ...string) Keys {
	return Keys{secret: slices.Clone(secret), algs: restrict(hmacAlgs(), algs)}
}

// PublicKeys returns the Keys of a private_key_jwt client: RS*, PS*, ES256 or
// ES384 with a key from its JWK Set, or only the algs given. Only RSA keys of
// at least 2048 bits and P-256/P-384 public keys whose use and alg (when set)
// fit the assertion are tried.
func PublicKeys(set jose.JSONWebKeySet, algs ...string) Keys {
	set.Keys = slices.Clone(set.Keys)
	return Keys{jwks: &set, algs: restrict(asymmetricAlgs(), algs)}
}

// restrict returns the members of allowed named in only, or allowed if only is empty.
func restrict(allowed []jose.SignatureAlgorithm, only []string) []jose.SignatureAlgorithm {
	if len(only) == 0 {
		return allowed
	}
	var out []jose.SignatureAlgorithm
	for _, a := range allowed {
		if slices.Contains(only, string(a)) {
			out = append(out, a)
		}
	}
	return out
}

// reason is why an assertion was rejected; it is the public message of the
// error, which is safe to return as error_description.
type reason string

// The reasons an assertion is rejected.
const (
	errTooLong      reason = "client assertion is too long"
	errNoKeys       reason = "client has no keys for this authentication method"
	errMalformed    reason = "client assertion is not a compact JWS"
	errAlgorithm    reason = "client assertion algorithm is not allowed for this client"
	errSecretLength reason = "client secret is too short for the assertion's HMAC algorithm"
	errNoKey        reason = "no key of the client matches the assertion's kid and alg"
	errSignature    reason = "client assertion signature is invalid"
	errClaims       reason = "client assertion claims are malformed"
	errSubject      reason = "client assertion iss and sub must both be the client_id"
	errAudience     reason = "client assertion aud does not name this server"
	errNoExpiry     reason = "client assertion has no exp"
	errExpired      reason = "client assertion has expired"
	errTooFar       reason = "client assertion exp is too far in the future"
	errNotYetValid  reason = "client assertion is not valid yet"
	errIssuedAt     reason = "client assertion iat is in the future or after exp"
	errNoJTI        reason = "client assertion has no jti"
	errJTITooLong   reason = "client assertion jti is too long"
	errReplayed     reason = "client assertion has already been used"
)

// reject returns the error for a rejected assertion, with an optional cause for logs.
func reject(r reason, cause error) error {
	return &errs.Error{Kind: errs.KindUnauthenticated, Public: string(r), Field: "client_assertion", Err: cause}
}

// Verify checks a client assertion for clientID against the client's keys
// and, if it is valid, records its jti until it expires. Failures are
// KindUnauthenticated errors (invalid_client) except a failing Replay, which
// is KindUnavailable.
func (v *Verifier) Verify(ctx context.Context, assertion, clientID string, keys Keys) error {
	if len(assertion) > MaxAssertionLen {
		return reject(errTooLong, nil)
	}
	if clientID == "" || keys.secret == nil && keys.jwks == nil || len(keys.algs) == 0 {
		return reject(errNoKeys, nil)
	}
	jws, err := jose.ParseSignedCompact(assertion, keys.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return reject(errAlgorithm, err)
		}
		return reject(errMalformed, err)
	}
	payload, err := verifySignature(jws, keys)
	if err != nil {
		return err
	}
	var c jwt.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return reject(errClaims, err)
	}
	exp, err := v.checkClaims(c, clientID)
	if err != nil {
		return err
	}
	seen, err := v.replay.Seen(ctx, clientID, c.ID, exp.Add(v.skew))
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, "could not check the client assertion for replay", err)
	}
	if seen {
		return reject(errReplayed, nil)
	}
	return nil
}

// verifySignature verifies the JWS with the client's secret or with each
// key of its JWK Set that suits the header (its kid, when both have one, and
// its alg), and returns the payload.
func verifySignature(jws *jose.JSONWebSignature, keys Keys) ([]byte, error) {
	h := jws.Signatures[0].Header
	alg := jose.SignatureAlgorithm(h.Algorithm)
	if keys.secret != nil {
		if len(keys.secret) < minSecretLen(alg) {
			return nil, reject(errSecretLength, nil)
		}
		payload, err := jws.Verify(keys.secret)
		if err != nil {
			return nil, reject(errSignature, err)
		}
		return payload, nil
	}
	tried := false
	var lastErr error
	for _, k := range keys.jwks.Keys {
		if h.KeyID != "" && k.KeyID != "" && k.KeyID != h.KeyID || !suits(k, alg) {
			continue
		}
		tried = true
		payload, err := jws.Verify(k.Key)
		if err == nil {
			return payload, nil
		}
		lastErr = err
	}
	if !tried {
		return nil, reject(errNoKey, nil)
	}
	return nil, reject(errSignature, lastErr)
}

// minSecretLen returns the shortest HMAC key alg allows (RFC 7518 §3.2).
func minSecretLen(alg jose.SignatureAlgorithm) int {
	switch alg {
	case jose.HS384:
		return 48
	case jose.HS512:
		return 64
	default:
		return 32
	}
}

// suits reports whether a JWK may verify a signature made with alg: it must
// be a public key of the algorithm's type (and curve), of a safe size, and its
// use and alg, when set, must agree.
func suits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Use != "" && k.Use != "sig" || k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return key.N != nil && key.N.BitLen() >= minRSABits
		}
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return key.Curve == elliptic.P256()
		case jose.ES384:
			return key.Curve == elliptic.P384()
		}
	}
	return false
}

// checkClaims checks iss, sub, aud, exp, nbf, iat and jti, and returns exp.
func (v *Verifier) checkClaims(c jwt.Claims, clientID string) (time.Time, error) {
	if c.Issuer != clientID || c.Subject != clientID {
		return time.Time{}, reject(errSubject, nil)
	}
	if !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return time.Time{}, reject(errAudience, nil)
	}
	if c.Expiry == nil {
		return time.Time{}, reject(errNoExpiry, nil)
	}
	now, exp := v.now(), c.Expiry.Time()
	switch {
	case !now.Before(exp.Add(v.skew)):
		return time.Time{}, reject(errExpired, nil)
	case exp.After(now.Add(v.maxLifetime + v.skew)):
		return time.Time{}, reject(errTooFar, nil)
	case c.NotBefore != nil && c.NotBefore.Time().After(now.Add(v.skew)):
		return time.Time{}, reject(errNotYetValid, nil)
	case c.IssuedAt != nil && (c.IssuedAt.Time().After(now.Add(v.skew)) || c.IssuedAt.Time().After(exp)):
		return time.Time{}, reject(errIssuedAt, nil)
	case c.ID == "":
		return time.Time{}, reject(errNoJTI, nil)
	case len(c.ID) > MaxJTILen:
		return time.Time{}, reject(errJTITooLong, nil)
	}
	return exp, nil
}

// ClientIDFromAssertion returns the client an assertion claims to come from,
// its sub (which must equal iss when iss is present), WITHOUT verifying it:
// the result only says whose keys to pass to Verify, and means nothing until
// Verify succeeds. If the request also carries client_id, the caller must
// check that they are equal.
func ClientIDFromAssertion(assertion string) (string, error) {
	if len(assertion) > MaxAssertionLen {
		return "", reject(errTooLong, nil)
	}
	jws, err := jose.ParseSignedCompact(assertion, append(hmacAlgs(), asymmetricAlgs()...))
	if err != nil {
		return "", reject(errMalformed, err)
	}
	var c struct {
		Issuer  string `json:"iss"`
		Subject string `json:"sub"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
		return "", reject(errClaims, err)
	}
	if c.Subject == "" || c.Issuer != "" && c.Issuer != c.Subject {
		return "", reject(errSubject, nil)
	}
	return c.Subject, nil
}
