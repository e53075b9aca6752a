package clientauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
)

// registered is a client as a service's lookup returns it.
type registered struct{ creds Credentials }

func (c registered) Credentials() Credentials { return c.creds }

// directory is a service's clients, looked up by id.
type directory map[string]registered

func (d directory) lookup(_ context.Context, id string) (registered, error) {
	if id == "down" {
		return registered{}, errors.New("connection refused")
	}
	c, ok := d[id]
	if !ok {
		return registered{}, errs.NotFound("Unknown client.")
	}
	return c, nil
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Every method, right and wrong: the registered method alone authenticates,
// one method per request, and the answers are invalid_client (401),
// invalid_request (400) or, when clients cannot be read, unavailable.
func TestAuthenticate(t *testing.T) {
	keys := newClientKeys(t)
	jwks, err := json.Marshal(keys.jwks)
	if err != nil {
		t.Fatal(err)
	}
	const basicSecret, postSecret = "basic secret: with : colons+%", "post-secret"
	dir := directory{
		"basic":   {Credentials{ID: "basic", Method: SecretBasic, SecretHash: hashOf(basicSecret)}},
		"default": {Credentials{ID: "default", SecretHash: hashOf(basicSecret)}},
		"post":    {Credentials{ID: "post", Method: SecretPost, SecretHash: hashOf(postSecret)}},
		"public":  {Credentials{ID: "public", Method: None}},
		"hmac":    {Credentials{ID: "hmac", Method: SecretJWT, Secret: keys.secret32, SigningAlg: "HS256"}},
		"signed":  {Credentials{ID: "signed", Method: PrivateKeyJWT, JWKS: jwks}},
		"nokeys":  {Credentials{ID: "nokeys", Method: PrivateKeyJWT}},
	}
	auth, err := New(Config[registered]{Lookup: dir.lookup, Replay: NewMemoryReplay(), Audiences: []string{tokenEndpoint, issuer}})
	if err != nil {
		t.Fatal(err)
	}
	assertion := func(id string, alg jose.SignatureAlgorithm, key any, aud string) string {
		now := time.Now()
		return sign(t, alg, key, "", map[string]any{"iss": id, "sub": id, "aud": aud, "jti": ids.Token(24),
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	}
	hmacAssertion := assertion("hmac", jose.HS256, keys.secret32, issuer)
	asserted := func(a string, more ...string) url.Values {
		f := url.Values{"client_assertion_type": {AssertionType}, "client_assertion": {a}}
		for i := 0; i+1 < len(more); i += 2 {
			f.Set(more[i], more[i+1])
		}
		return f
	}
	tests := []struct {
		name  string
		basic []string // id, secret for HTTP Basic
		form  url.Values
		want  string // the client authenticated, or "" for an error
		code  string // the error's OAuth code
		kind  errs.Kind
	}{
		{"basic", []string{"basic", basicSecret}, url.Values{}, "basic", "", 0},
		{"basic naming itself", []string{"basic", basicSecret}, url.Values{"client_id": {"basic"}}, "basic", "", 0},
		{"unregistered method is basic", []string{"default", basicSecret}, url.Values{}, "default", "", 0},
		{"basic, wrong secret", []string{"basic", basicSecret + "x"}, url.Values{}, "", "invalid_client", errs.KindUnauthenticated},
		{"basic, empty secret", []string{"basic", ""}, url.Values{}, "", "invalid_client", errs.KindUnauthenticated},
		{"basic client posting its secret", nil, url.Values{"client_id": {"basic"}, "client_secret": {basicSecret}}, "", "invalid_client", errs.KindUnauthenticated},
		{"basic naming another client", []string{"basic", basicSecret}, url.Values{"client_id": {"post"}}, "", "invalid_request", errs.KindInvalid},
		{"post", nil, url.Values{"client_id": {"post"}, "client_secret": {postSecret}}, "post", "", 0},
		{"post, wrong secret", nil, url.Values{"client_id": {"post"}, "client_secret": {basicSecret}}, "", "invalid_client", errs.KindUnauthenticated},
		{"post client using basic", []string{"post", postSecret}, url.Values{}, "", "invalid_client", errs.KindUnauthenticated},
		{"basic and post at once", []string{"basic", basicSecret}, url.Values{"client_secret": {basicSecret}}, "", "invalid_request", errs.KindInvalid},
		{"public", nil, url.Values{"client_id": {"public"}}, "public", "", 0},
		{"public with a secret", nil, url.Values{"client_id": {"public"}, "client_secret": {"x"}}, "", "invalid_client", errs.KindUnauthenticated},
		{"confidential client with no secret", nil, url.Values{"client_id": {"basic"}}, "", "invalid_client", errs.KindUnauthenticated},
		{"nobody", nil, url.Values{}, "", "invalid_client", errs.KindUnauthenticated},
		{"unknown client", nil, url.Values{"client_id": {"stranger"}}, "", "invalid_client", errs.KindUnauthenticated},
		{"clients unreadable", nil, url.Values{"client_id": {"down"}}, "", "", errs.KindUnavailable},
		{"client_secret_jwt", nil, asserted(hmacAssertion), "hmac", "", 0},
		{"client_secret_jwt replayed", nil, asserted(hmacAssertion), "", "invalid_client", errs.KindUnauthenticated},
		{"client_secret_jwt for the token endpoint", nil, asserted(assertion("hmac", jose.HS256, keys.secret32, tokenEndpoint), "client_id", "hmac"), "hmac", "", 0},
		{"client_secret_jwt for elsewhere", nil, asserted(assertion("hmac", jose.HS256, keys.secret32, "https://elsewhere.example/")), "", "invalid_client", errs.KindUnauthenticated},
		{"client_secret_jwt with another key", nil, asserted(assertion("hmac", jose.HS256, keys.secret48[:32], issuer)), "", "invalid_client", errs.KindUnauthenticated},
		{"private_key_jwt", nil, asserted(assertion("signed", jose.ES256, keys.ec256, issuer)), "signed", "", 0},
		{"private_key_jwt by HMAC with its public key", nil, asserted(assertion("signed", jose.HS256, keys.secret32, issuer)), "", "invalid_client", errs.KindUnauthenticated},
		{"private_key_jwt without keys", nil, asserted(assertion("nokeys", jose.ES256, keys.ec256, issuer)), "", "invalid_client", errs.KindUnauthenticated},
		{"an assertion for a secret client", nil, asserted(assertion("post", jose.HS256, keys.secret32, issuer)), "", "invalid_client", errs.KindUnauthenticated},
		{"an assertion naming another client_id", nil, asserted(assertion("signed", jose.ES256, keys.ec256, issuer), "client_id", "hmac"), "", "invalid_request", errs.KindInvalid},
		{"an assertion of another type", nil, asserted(assertion("signed", jose.ES256, keys.ec256, issuer), "client_assertion_type", "urn:example:saml"), "", "invalid_request", errs.KindInvalid},
		{"an unreadable assertion", nil, asserted("not.a.jwt"), "", "invalid_client", errs.KindUnauthenticated},
		{"an unsigned assertion", nil, asserted(unsigned(t, claims(map[string]any{"iss": "signed", "sub": "signed"}))), "", "invalid_client", errs.KindUnauthenticated},
		{"basic and an assertion at once", []string{"basic", basicSecret}, asserted(assertion("signed", jose.ES256, keys.ec256, issuer)), "", "invalid_request", errs.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(tt.form.Encode()))
			if tt.basic != nil {
				r.SetBasicAuth(url.QueryEscape(tt.basic[0]), url.QueryEscape(tt.basic[1]))
			}
			c, err := auth.Authenticate(context.Background(), r, tt.form)
			if tt.want != "" {
				if err != nil || c.creds.ID != tt.want {
					t.Fatalf("authenticated %q, %v; want %q", c.creds.ID, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("authenticated %q, want an error", c.creds.ID)
			}
			if errs.KindOf(err) != tt.kind || errs.CodeOf(err) != tt.code {
				t.Fatalf("error %v (kind %v, code %q), want %v %q", err, errs.KindOf(err), errs.CodeOf(err), tt.kind, tt.code)
			}
		})
	}
}

// A Basic header whose parts are not form-encoded is refused.
func TestAuthenticateMalformedBasic(t *testing.T) {
	auth, err := New(Config[registered]{Lookup: directory{}.lookup, Replay: NewMemoryReplay(), Audiences: []string{issuer}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/oauth2/token", nil)
	r.SetBasicAuth("client%zz", "secret")
	if _, err := auth.Authenticate(context.Background(), r, url.Values{}); errs.CodeOf(err) != "invalid_client" {
		t.Fatalf("malformed Basic: %v", err)
	}
}

// A failing replay store is the server's fault, not the client's.
func TestAuthenticateReplayStoreDown(t *testing.T) {
	keys := newClientKeys(t)
	dir := directory{"hmac": {Credentials{ID: "hmac", Method: SecretJWT, Secret: keys.secret32}}}
	auth, err := New(Config[registered]{Lookup: dir.lookup, Replay: failingReplay{}, Audiences: []string{issuer}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a := sign(t, jose.HS256, keys.secret32, "", map[string]any{"iss": "hmac", "sub": "hmac", "aud": issuer, "jti": "j1", "exp": now.Add(time.Minute).Unix()})
	form := url.Values{"client_assertion_type": {AssertionType}, "client_assertion": {a}}
	r := httptest.NewRequest(http.MethodPost, "/oauth2/token", nil)
	if _, err := auth.Authenticate(context.Background(), r, form); errs.KindOf(err) != errs.KindUnavailable {
		t.Fatalf("replay store down: %v (kind %v), want unavailable", err, errs.KindOf(err))
	}
}

func TestNewNeedsLookupReplayAndAudiences(t *testing.T) {
	for name, cfg := range map[string]Config[registered]{
		"no lookup":    {Replay: NewMemoryReplay(), Audiences: []string{issuer}},
		"no replay":    {Lookup: directory{}.lookup, Audiences: []string{issuer}},
		"no audiences": {Lookup: directory{}.lookup, Replay: NewMemoryReplay()},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// An assertion may name the issuer or any endpoint where clients
// authenticate, under the issuer's path.
func TestAudiences(t *testing.T) {
	got := strings.Join(Audiences("https://auth.example.org/id/"), " ")
	want := "https://auth.example.org/id/ https://auth.example.org/id/oauth2/token https://auth.example.org/id/oauth2/introspect " +
		"https://auth.example.org/id/oauth2/revoke https://auth.example.org/id/oauth2/device"
	if got != want {
		t.Fatalf("Audiences = %s", got)
	}
	if Audiences("not a url") != nil {
		t.Fatal("audiences of no issuer")
	}
}
