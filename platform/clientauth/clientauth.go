// Package clientauth authenticates OAuth 2.0 clients where they present
// credentials — the token, revocation, introspection and device
// authorization endpoints — by the method each registered (RFC 6749 §2.3,
// RFC 7591 §2, OpenID Connect Core §9): client_secret_basic,
// client_secret_post, client_secret_jwt and private_key_jwt (RFC 7523
// assertions, each jti used once), or none for a public client, which only
// names itself.
//
// It knows no service: the service that asks says how to look a client up
// (Lookup) and where a used assertion is remembered (Replay). Failures are
// *errs.Error values carrying OAuth codes (platform/oautherr):
// invalid_client (401) when the credentials are wrong or missing,
// invalid_request (400) when the request is ambiguous, and an unavailable
// error when the client cannot be looked up.
package clientauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/go-jose/go-jose/v4"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/oautherr"
)

// The token endpoint authentication methods (RFC 7591 §2, OpenID Connect Core §9).
const (
	// None is a public client: it names itself with client_id and proves nothing.
	None = "none"
	// SecretBasic sends the client secret with HTTP Basic authentication.
	SecretBasic = "client_secret_basic"
	// SecretPost sends the client secret in the form.
	SecretPost = "client_secret_post"
	// SecretJWT sends an assertion HMAC-signed with the client secret.
	SecretJWT = "client_secret_jwt"
	// PrivateKeyJWT sends an assertion signed with one of the client's keys.
	PrivateKeyJWT = "private_key_jwt"
)

// AssertionType is the client_assertion_type of RFC 7523 §2.2.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Credentials are what authentication needs to know of a registered client.
type Credentials struct {
	// ID is the client id.
	ID string
	// Method is the client's token_endpoint_auth_method; empty means
	// client_secret_basic (RFC 7591 §2).
	Method string
	// SecretHash is the hex SHA-256 of the client secret (client_secret_basic
	// and client_secret_post).
	SecretHash string
	// Secret keys the assertions of a client_secret_jwt client.
	Secret []byte
	// JWKS is the public JSON Web Key Set of a private_key_jwt client.
	JWKS json.RawMessage
	// SigningAlg is the token_endpoint_auth_signing_alg the client registered, if any.
	SigningAlg string
}

// Client is a registered client as the service asking knows it.
type Client interface {
	// Credentials returns how the client authenticates.
	Credentials() Credentials
}

// Lookup finds the registered client with the id: an errs.KindNotFound (or
// KindInvalid) error when there is none, any other error when the clients
// cannot be read.
type Lookup[C Client] func(ctx context.Context, id string) (C, error)

// Config configures an Authenticator.
type Config[C Client] struct {
	// Lookup finds clients; required.
	Lookup Lookup[C]
	// Replay remembers used assertions; required. Every service that
	// authenticates clients must share one, or an assertion could be used
	// once at each.
	Replay Replay
	// Audiences are the aud values assertions may name: the issuer and the
	// URLs of the endpoints that authenticate clients.
	Audiences []string
}

// Authenticator authenticates the clients of one service's endpoints.
type Authenticator[C Client] struct {
	lookup     Lookup[C]
	assertions *Verifier
}

// New returns an Authenticator for cfg.
func New[C Client](cfg Config[C]) (*Authenticator[C], error) {
	if cfg.Lookup == nil {
		return nil, errs.Internalf("clientauth: Config.Lookup is required")
	}
	v, err := NewVerifier(VerifierConfig{Audiences: cfg.Audiences, Replay: cfg.Replay})
	if err != nil {
		return nil, err
	}
	return &Authenticator[C]{lookup: cfg.Lookup, assertions: v}, nil
}

// presented is what a request carries to authenticate its client.
type presented struct {
	id                    string
	basic, post, asserted bool
	secret, assertion     string
}

// Authenticate authenticates the client of a request whose form (from
// httpx.ReadForm) carries its credentials, by the method the client
// registered: exactly one method per request, and a client_id in the form
// must name the same client as the credentials.
func (a *Authenticator[C]) Authenticate(ctx context.Context, r *http.Request, form url.Values) (C, error) {
	var zero C
	p, err := read(r, form)
	if err != nil {
		return zero, err
	}
	c, err := a.lookup(ctx, p.id)
	if err != nil {
		if k := errs.KindOf(err); k == errs.KindNotFound || k == errs.KindInvalid {
			return zero, oautherr.New(oautherr.InvalidClient, "unknown client")
		}
		return zero, errs.Wrap(errs.KindUnavailable, "clients cannot be checked right now", err)
	}
	if err := a.check(ctx, c.Credentials(), p); err != nil {
		return zero, err
	}
	return c, nil
}

// read finds the credentials of a request and the client they name.
func read(r *http.Request, form url.Values) (presented, error) {
	var p presented
	basicID, basicSecret, hasBasic := r.BasicAuth()
	if hasBasic {
		// RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
		var err1, err2 error
		basicID, err1 = url.QueryUnescape(basicID)
		basicSecret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return p, oautherr.New(oautherr.InvalidClient, "malformed Basic credentials")
		}
		p.basic, p.secret = true, basicSecret
	}
	if form.Has("client_secret") {
		p.post, p.secret = true, form.Get("client_secret")
	}
	if form.Has("client_assertion") {
		p.asserted, p.assertion = true, form.Get("client_assertion")
	}
	if count(p.basic, p.post, p.asserted) > 1 {
		return p, oautherr.New(oautherr.InvalidRequest, "use exactly one client authentication method")
	}
	p.id = form.Get("client_id")
	if p.basic {
		if p.id != "" && p.id != basicID {
			return p, oautherr.New(oautherr.InvalidRequest, "client_id differs from the authenticated client")
		}
		p.id = basicID
	}
	if p.asserted {
		if form.Get("client_assertion_type") != AssertionType {
			return p, oautherr.New(oautherr.InvalidRequest, "client_assertion_type must be "+AssertionType)
		}
		sub, err := ClientIDFromAssertion(p.assertion)
		if err != nil {
			return p, oautherr.New(oautherr.InvalidClient, "the client assertion cannot be read")
		}
		if p.id != "" && p.id != sub {
			return p, oautherr.New(oautherr.InvalidRequest, "client_id differs from the client assertion's subject")
		}
		p.id = sub
	}
	if p.id == "" {
		return p, oautherr.New(oautherr.InvalidClient, "client authentication is required")
	}
	return p, nil
}

// check verifies the presented credentials by the client's registered method.
func (a *Authenticator[C]) check(ctx context.Context, c Credentials, p presented) error {
	method := c.Method
	if method == "" {
		method = SecretBasic
	}
	switch {
	case method == SecretBasic && p.basic, method == SecretPost && p.post:
		sum := sha256.Sum256([]byte(p.secret))
		if c.SecretHash == "" || subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(c.SecretHash)) != 1 {
			return oautherr.New(oautherr.InvalidClient, "client authentication failed")
		}
	case (method == SecretJWT || method == PrivateKeyJWT) && p.asserted:
		if err := a.verifyAssertion(ctx, c, method, p.assertion); err != nil {
			if errs.KindOf(err).ServerFault() {
				return err
			}
			return oautherr.New(oautherr.InvalidClient, "client authentication failed: "+errs.PublicMessage(err))
		}
	case method == None && !p.basic && !p.post && !p.asserted:
	default:
		return oautherr.New(oautherr.InvalidClient, "the client must authenticate with "+method)
	}
	return nil
}

// verifyAssertion checks a client assertion (RFC 7523): keyed with the
// client's secret (client_secret_jwt) or signed with one of its registered
// keys (private_key_jwt), and never seen before.
func (a *Authenticator[C]) verifyAssertion(ctx context.Context, c Credentials, method, assertion string) error {
	var algs []string
	if c.SigningAlg != "" {
		algs = []string{c.SigningAlg}
	}
	if method == SecretJWT {
		if len(c.Secret) == 0 {
			return errs.Unauthenticated("the client has no secret")
		}
		return a.assertions.Verify(ctx, assertion, c.ID, SharedSecret(c.Secret, algs...))
	}
	var set jose.JSONWebKeySet
	if len(c.JWKS) == 0 || json.Unmarshal(c.JWKS, &set) != nil {
		return errs.Unauthenticated("the client has no usable jwks")
	}
	return a.assertions.Verify(ctx, assertion, c.ID, PublicKeys(set, algs...))
}

// count returns how many of the flags are set.
func count(flags ...bool) int {
	n := 0
	for _, f := range flags {
		if f {
			n++
		}
	}
	return n
}

// endpoints are the paths, under the issuer, of the endpoints where clients
// authenticate (RFC 6749 §3.2, RFC 7009 §2, RFC 7662 §2, RFC 8628 §3.1).
var endpoints = []string{"oauth2/token", "oauth2/introspect", "oauth2/revoke", "oauth2/device"}

// Audiences are what a client assertion may name as its aud, at every
// endpoint alike: the issuer (RFC 7523bis) or the URL of any endpoint where
// clients authenticate (RFC 7523 §3, the token endpoint's in particular).
func Audiences(issuer string) []string {
	base, err := url.Parse(issuer)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil
	}
	out := []string{issuer}
	for _, p := range endpoints {
		out = append(out, base.ResolveReference(&url.URL{Path: p}).String())
	}
	return out
}
