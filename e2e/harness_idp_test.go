package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// testIdP is a real OpenID provider running in the test process: zitadel's
// certified OP library (github.com/zitadel/oidc/v3/pkg/op) with its example
// storage and its own login page, in front of which the tests can turn a few
// knobs that a misbehaving or hostile provider would: rotate its signing key,
// sign ID tokens with a key it does not publish (a forgery), put another
// nonce in them, and give each sign-in a session id (sid) to log out later.
type testIdP struct {
	issuer  string
	clients map[string]*storage.Client

	*storage.Storage
	mu        sync.Mutex
	signing   testKey   // signs ID tokens
	published []testKey // served at the JWKS endpoint
	forge     bool      // sign with a key that is not published
	badNonce  bool      // put another nonce in the ID token
	sids      map[string]string
}

// testKey is an RSA signing key with its id.
type testKey struct {
	id  string
	key *rsa.PrivateKey
}

func newTestKey(t testing.TB) testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{id: rand.Text()[:12], key: k}
}

// idpUser is a person at the provider.
type idpUser struct {
	ID, Username, Password, First, Last, Email string
	EmailVerified                              bool
}

// idpUsers is the provider's user store (storage.UserStore).
type idpUsers map[string]*storage.User

func (u idpUsers) GetUserByID(id string) *storage.User { return u[id] }
func (u idpUsers) GetUserByUsername(name string) *storage.User {
	for _, user := range u {
		if user.Username == name {
			return user
		}
	}
	return nil
}
func (u idpUsers) ExampleClientID() string { return "service" }

// newTestIdP starts the provider with its users on a loopback port.
func newTestIdP(t *testing.T, users ...idpUser) *testIdP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	store := idpUsers{}
	for _, u := range users {
		store[u.ID] = &storage.User{ID: u.ID, Username: u.Username, Password: u.Password, FirstName: u.First, LastName: u.Last,
			Email: u.Email, EmailVerified: u.EmailVerified, PreferredLanguage: language.English}
	}
	// localhost, not 127.0.0.1 as Gatehouse: the provider is another site,
	// as it is in real deployments (a form_post arrives cross-site).
	idp := &testIdP{issuer: "http://localhost:" + strings.TrimPrefix(l.Addr().String(), "127.0.0.1:"), clients: map[string]*storage.Client{}, sids: map[string]string{}}
	idp.Storage = storage.NewStorageWithClients(store, idp.clients)
	// The example server logs every request through the default logger: keep
	// the test output to warnings.
	slog.SetLogLoggerLevel(slog.LevelWarn)
	idp.signing = newTestKey(t)
	idp.published = []testKey{idp.signing}
	srv := &http.Server{Handler: exampleop.SetupServer(idp.issuer, idp, nil, false), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return idp
}

// addClient registers a confidential web client (client_secret_basic).
// Clients answer with query or form_post, as the request asks.
func (idp *testIdP) addClient(id, secret string, redirectURIs ...string) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.clients[id] = storage.WebClient(id, secret, redirectURIs...)
}

// rotate replaces the signing key: the new one alone is published.
func (idp *testIdP) rotate(t testing.TB) {
	k := newTestKey(t)
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.signing, idp.published = k, []testKey{k}
}

// setForge makes ID tokens signed by a key the provider does not publish
// (under the published key's id).
func (idp *testIdP) setForge(t testing.TB, on bool) {
	forger := newTestKey(t)
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.forge = on
	if on {
		idp.signing = testKey{id: idp.published[0].id, key: forger.key}
	} else {
		idp.signing = idp.published[0]
	}
}

// setBadNonce makes ID tokens carry another nonce than the request's.
func (idp *testIdP) setBadNonce(on bool) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.badNonce = on
}

// sidOf is the session id of the last sign-in of a subject.
func (idp *testIdP) sidOf(subject string) string {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	return idp.sids[subject]
}

// The op.Storage methods the knobs change.

func (idp *testIdP) SigningKey(context.Context) (op.SigningKey, error) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	return signingKey(idp.signing), nil
}

func (idp *testIdP) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (idp *testIdP) KeySet(context.Context) ([]op.Key, error) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	var out []op.Key
	for _, k := range idp.published {
		out = append(out, publicKey(k))
	}
	return out, nil
}

func (idp *testIdP) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	idp.mu.Lock()
	bad := idp.badNonce
	idp.mu.Unlock()
	if bad {
		copied := *req
		copied.Nonce = "not-the-nonce-" + rand.Text()
		req = &copied
	}
	return idp.Storage.CreateAuthRequest(ctx, req, userID)
}

// SetUserinfoFromRequest gives each sign-in's ID token a sid of its own.
func (idp *testIdP) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := idp.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	if ar, ok := req.(op.AuthRequest); ok {
		sid := "op-session-" + ar.GetID()
		info.AppendClaims("sid", sid)
		idp.mu.Lock()
		idp.sids[req.GetSubject()] = sid
		idp.mu.Unlock()
	}
	return nil
}

// logoutToken signs a back-channel logout token (OpenID Connect Back-Channel
// Logout 1.0 §2.4) with the provider's key; edit may change its claims.
func (idp *testIdP) logoutToken(t testing.TB, clientID, sub, sid string, edit func(map[string]any)) string {
	t.Helper()
	idp.mu.Lock()
	k := idp.published[0]
	idp.mu.Unlock()
	now := time.Now()
	claims := map[string]any{
		"iss": idp.issuer, "aud": clientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": rand.Text(),
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
	if sub != "" {
		claims["sub"] = sub
	}
	if sid != "" {
		claims["sid"] = sid
	}
	if edit != nil {
		edit(claims)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.id}},
		(&jose.SignerOptions{}).WithType("logout+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type signingKey testKey

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey testKey

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

// writeConfig writes a Gatehouse configuration file and returns the
// environment variable that points gatehouse at it.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return "GATEHOUSE_CONFIG=" + path
}
