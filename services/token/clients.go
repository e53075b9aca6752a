package token

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/clientauth"
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
	// Scope is the scope the client registered (RFC 7591 §2): the most the
	// client_credentials grant gives it, besides admin scopes (entitle.go).
	Scope string `json:"scope"`
}

func (m clientMeta) allows(grantType string) bool { return slices.Contains(m.GrantTypes, grantType) }

// client is a registered client, as the authorize service describes it.
type client struct {
	ID         string
	Meta       clientMeta
	secretHash string
	// jwtSecret keys the assertions of a client_secret_jwt client.
	jwtSecret string
}

// Credentials are how the client authenticates (platform/clientauth).
func (c *client) Credentials() clientauth.Credentials {
	return clientauth.Credentials{
		ID: c.ID, Method: c.Meta.AuthMethod, SecretHash: c.secretHash, Secret: []byte(c.jwtSecret),
		JWKS: c.Meta.JWKS, SigningAlg: c.Meta.SigningAlg,
	}
}

// newClientAuth prepares the authentication of the clients of the token,
// introspection and revocation endpoints: clients from the authorize
// service, their used assertions recorded there too, where the device
// authorization endpoint records its own.
func (s *Service) newClientAuth() (*clientauth.Authenticator[*client], error) {
	return clientauth.New(clientauth.Config[*client]{
		Lookup: s.clients.get, Replay: assertionClaims{s.authorize}, Audiences: clientauth.Audiences(s.cfg.Issuer),
	})
}

// assertionClaims claims each client assertion's jti at the authorize
// service, so that it is used once across every endpoint of both services.
type assertionClaims struct {
	authorize authorizev1.AuthorizeServiceClient
}

// Seen claims (clientID, jti) and reports whether it was already claimed.
func (a assertionClaims) Seen(ctx context.Context, clientID, jti string, until time.Time) (bool, error) {
	resp, err := a.authorize.ClaimClientAssertion(ctx, &authorizev1.ClaimClientAssertionRequest{
		ClientId: clientID, Jti: jti, ExpiresAt: timestamppb.New(until),
	})
	if err != nil {
		return false, err
	}
	return resp.GetAlreadyUsed(), nil
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

// get returns the client with the id, from the cache or the authorize service.
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
