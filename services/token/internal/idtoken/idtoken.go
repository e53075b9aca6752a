// Package idtoken signs OpenID Connect ID tokens (OpenID Connect Core 1.0
// §2) and computes the at_hash and c_hash claims they carry.
package idtoken

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"strings"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/services/token/internal/keys"
)

// Claims are the claims of an ID token.
type Claims struct {
	// Issuer is the iss claim: the issuer URL.
	Issuer string
	// Subject is the sub claim: the user's stable identifier.
	Subject string
	// Audience is the aud claim: the client_id the token is for.
	Audience string
	// AuthorizedParty is the azp claim, omitted when empty.
	AuthorizedParty string
	// Expiry is the exp claim.
	Expiry time.Time
	// IssuedAt is the iat claim.
	IssuedAt time.Time
	// AuthTime is the auth_time claim, omitted when zero.
	AuthTime time.Time
	// Nonce is the nonce claim from the authorization request, omitted when empty.
	Nonce string
	// AccessTokenHash is the at_hash claim (see HalfHash), omitted when empty.
	AccessTokenHash string
	// CodeHash is the c_hash claim (see HalfHash), omitted when empty.
	CodeHash string
	// Extra holds further claims, e.g. "username"; it may not repeat a claim above.
	Extra map[string]any
}

// registered reports whether Claims sets the named claim itself, so that
// Extra may not hold it.
func registered(name string) bool {
	switch name {
	case "iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "c_hash":
		return true
	default:
		return false
	}
}

// Sign returns c as a compact JWS signed by ks's key for alg ("" for the
// keyset's default), with kid and typ "JWT" in its header. Issuer, Subject,
// Audience, Expiry and IssuedAt are required, and Expiry must follow
// IssuedAt. Claims that carry hashes must have been computed by HalfHash with
// the same alg.
func Sign(ks *keys.Keyset, alg string, c Claims) (string, error) {
	payload, err := c.payload()
	if err != nil {
		return "", err
	}
	signer, _, err := ks.Signer(alg)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", errs.Internalf("idtoken: sign: %w", err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		return "", errs.Internalf("idtoken: serialize: %w", err)
	}
	return compact, nil
}

// payload checks the claims and returns their JSON.
func (c Claims) payload() ([]byte, error) {
	switch {
	case c.Issuer == "" || c.Subject == "" || c.Audience == "":
		return nil, errs.Internalf("idtoken: iss, sub and aud are required")
	case c.Expiry.IsZero() || c.IssuedAt.IsZero():
		return nil, errs.Internalf("idtoken: exp and iat are required")
	case !c.Expiry.After(c.IssuedAt):
		return nil, errs.Internalf("idtoken: exp %v is not after iat %v", c.Expiry, c.IssuedAt)
	}
	m := make(map[string]any, 10+len(c.Extra))
	for name, v := range c.Extra {
		if registered(name) {
			return nil, errs.Internalf("idtoken: extra claim %q would replace a registered claim", name)
		}
		m[name] = v
	}
	m["iss"] = c.Issuer
	m["sub"] = c.Subject
	m["aud"] = c.Audience
	m["exp"] = c.Expiry.Unix()
	m["iat"] = c.IssuedAt.Unix()
	setIf(m, "azp", c.AuthorizedParty, c.AuthorizedParty != "")
	setIf(m, "auth_time", c.AuthTime.Unix(), !c.AuthTime.IsZero())
	setIf(m, "nonce", c.Nonce, c.Nonce != "")
	setIf(m, "at_hash", c.AccessTokenHash, c.AccessTokenHash != "")
	setIf(m, "c_hash", c.CodeHash, c.CodeHash != "")
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, errs.Internalf("idtoken: marshal claims: %w", err)
	}
	return payload, nil
}

// setIf sets m[name] to v when ok.
func setIf(m map[string]any, name string, v any, ok bool) {
	if ok {
		m[name] = v
	}
}

// HalfHash returns the at_hash or c_hash of value for an ID token signed with
// alg (OpenID Connect Core §3.1.3.6, §3.3.2.11): the left-most half of the
// hash of its ASCII octets, base64url-encoded without padding. The hash is
// SHA-256, SHA-384 or SHA-512 as alg ends in 256, 384 or 512.
func HalfHash(alg, value string) (string, error) {
	h, err := hashFor(alg)
	if err != nil {
		return "", err
	}
	h.Write([]byte(value))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]), nil
}

// hashFor returns the hash a JWS algorithm uses.
func hashFor(alg string) (hash.Hash, error) {
	if alg == "" || strings.EqualFold(alg, "none") {
		return nil, errs.Invalid(fmt.Sprintf("no hash for signing algorithm %q", alg))
	}
	switch {
	case strings.HasSuffix(alg, "256"):
		return sha256.New(), nil
	case strings.HasSuffix(alg, "384"):
		return sha512.New384(), nil
	case strings.HasSuffix(alg, "512"):
		return sha512.New(), nil
	default:
		return nil, errs.Invalid(fmt.Sprintf("no hash for signing algorithm %q", alg))
	}
}
