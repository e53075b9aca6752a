package token

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"time"

	"gatehouse.dev/platform/errs"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
)

// clientMeta is the part of a client's registration the token service uses.
type clientMeta struct {
	AuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes []string        `json:"grant_types"`
	JWKS       json.RawMessage `json:"jwks"`
	SigningAlg string          `json:"token_endpoint_auth_signing_alg"`
	ClientName string          `json:"client_name"`
}

func (m clientMeta) allows(grantType string) bool {
	for _, g := range m.GrantTypes {
		if g == grantType {
			return true
		}
	}
	return false
}

// client is an authenticated client.
type client struct {
	ID         string
	Meta       clientMeta
	secretHash string
	// jwtSecret keys the assertions of a client_secret_jwt client.
	jwtSecret string
}

// clientCache remembers clients for a short while: registrations do not
// change, and client authentication is on every token request.
type clientCache struct {
	authorize authorizev1.AuthorizeServiceClient
	mu        sync.Mutex
	entries   map[string]cachedClient
}

type cachedClient struct {
	c  *client
	at time.Time
}

const clientCacheTTL = 30 * time.Second

func newClientCache(a authorizev1.AuthorizeServiceClient) *clientCache {
	return &clientCache{authorize: a, entries: map[string]cachedClient{}}
}

func (cc *clientCache) get(ctx context.Context, id string) (*client, error) {
	cc.mu.Lock()
	e, ok := cc.entries[id]
	cc.mu.Unlock()
	if ok && time.Since(e.at) < clientCacheTTL {
		return e.c, nil
	}
	resp, err := cc.authorize.GetClient(ctx, &authorizev1.GetClientRequest{ClientId: id})
	if err != nil {
		return nil, err
	}
	c := &client{ID: resp.GetClientId(), secretHash: resp.GetSecretHash(), jwtSecret: resp.GetJwtSecret()}
	if err := json.Unmarshal(resp.GetMetadataJson(), &c.Meta); err != nil {
		return nil, errs.Wrap(errs.KindInternal, "", err)
	}
	cc.mu.Lock()
	if len(cc.entries) > 10000 {
		cc.entries = map[string]cachedClient{}
	}
	cc.entries[id] = cachedClient{c: c, at: time.Now()}
	cc.mu.Unlock()
	return c, nil
}

// oauthError is an OAuth error response to send.
type oauthError struct {
	status      int
	code        string
	description string
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func invalidClient(desc string) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: "invalid_client", description: desc}
}

func invalidRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: desc}
}

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// authenticateClient authenticates the client of a token, revocation or
// introspection request by the method it registered (RFC 6749 §2.3, RFC 7523).
// Exactly one method may be used per request.
func (s *Service) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (*client, *oauthError) {
	basicID, basicSecret, hasBasic := r.BasicAuth()
	if hasBasic {
		var err1, err2 error
		basicID, err1 = url.QueryUnescape(basicID)
		basicSecret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return nil, invalidClient("malformed Basic credentials")
		}
	}
	postSecret, hasPost := form.Get("client_secret"), form.Has("client_secret")
	assertion, hasAssertion := form.Get("client_assertion"), form.Has("client_assertion")
	methods := 0
	for _, has := range []bool{hasBasic, hasPost, hasAssertion} {
		if has {
			methods++
		}
	}
	if methods > 1 {
		return nil, invalidRequest("use exactly one client authentication method")
	}
	id := form.Get("client_id")
	if hasBasic {
		if id != "" && id != basicID {
			return nil, invalidRequest("client_id differs from the authenticated client")
		}
		id = basicID
	}
	if hasAssertion {
		if form.Get("client_assertion_type") != assertionType {
			return nil, invalidRequest("client_assertion_type must be " + assertionType)
		}
		sub, err := assertionSubject(assertion)
		if err != nil {
			return nil, invalidClient("the client assertion cannot be read")
		}
		if id != "" && id != sub {
			return nil, invalidRequest("client_id differs from the client assertion's subject")
		}
		id = sub
	}
	if id == "" {
		return nil, invalidClient("client authentication is required")
	}
	c, err := s.clients.get(ctx, id)
	if err != nil {
		if errs.KindOf(err) == errs.KindNotFound || errs.KindOf(err) == errs.KindInvalid {
			return nil, invalidClient("unknown client")
		}
		return nil, &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "clients cannot be checked right now"}
	}
	method := c.Meta.AuthMethod
	switch {
	case method == "client_secret_basic" && hasBasic, method == "client_secret_post" && hasPost:
		secret := basicSecret
		if hasPost {
			secret = postSecret
		}
		sum := sha256.Sum256([]byte(secret))
		if c.secretHash == "" || subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(c.secretHash)) != 1 {
			return nil, invalidClient("client authentication failed")
		}
	case (method == "private_key_jwt" || method == "client_secret_jwt") && hasAssertion:
		if err := s.verifyAssertion(ctx, c, assertion); err != nil {
			return nil, invalidClient("client authentication failed: " + errs.PublicMessage(err))
		}
	case method == "none" && methods == 0:
	default:
		return nil, invalidClient("the client must authenticate with " + method)
	}
	return c, nil
}
