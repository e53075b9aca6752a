package clientauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
)

const (
	clientID      = "01HZCLIENT0000000000000000"
	tokenEndpoint = "https://auth.example.org/oauth2/token"
	issuer        = "https://auth.example.org/"
)

// epoch is the fixed "now" of the tests.
var epoch = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// newVerifier returns a Verifier on the fixed clock with a fresh MemoryReplay.
func newVerifier(t testing.TB) (*Verifier, *MemoryReplay) {
	t.Helper()
	now := func() time.Time { return epoch }
	replay := NewMemoryReplayWithClock(now)
	v, err := NewVerifier(VerifierConfig{Audiences: []string{tokenEndpoint, issuer}, Replay: replay, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return v, replay
}

// claims returns valid assertion claims with the given changes; a nil value
// deletes a claim.
func claims(changes map[string]any) map[string]any {
	c := map[string]any{
		"iss": clientID,
		"sub": clientID,
		"aud": tokenEndpoint,
		"exp": epoch.Add(2 * time.Minute).Unix(),
		"iat": epoch.Unix(),
		"jti": ids.Token(24),
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign returns the claims as a compact JWS signed with key under alg, with
// kid in the header unless it is empty.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, c map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatalf("NewSigner(%s): %v", alg, err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return compact
}

// unsigned returns an assertion with header {"alg":"none"} and no signature.
func unsigned(t testing.TB, c map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	return b64([]byte(`{"alg":"none"}`)) + "." + b64(payload) + "."
}

// clientKeys are one test client's secrets and key pairs.
type clientKeys struct {
	secret32, secret48, secret64 []byte
	ec256, ec384                 *ecdsa.PrivateKey
	rsa2048, rsa1024             *rsa.PrivateKey
	// jwks publishes ec256 ("ec256"), ec384 ("ec384") and rsa2048 ("rsa").
	jwks jose.JSONWebKeySet
}

// newClientKeys generates a clientKeys.
func newClientKeys(t testing.TB) *clientKeys {
	t.Helper()
	var k clientKeys
	var err error
	k.secret32, k.secret48, k.secret64 = []byte(ids.Token(32)), []byte(ids.Token(48)), []byte(ids.Token(64))
	if k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.rsa2048, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		t.Fatal(err)
	}
	k.jwks = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &k.ec256.PublicKey, KeyID: "ec256", Use: "sig"},
		{Key: &k.ec384.PublicKey, KeyID: "ec384", Algorithm: "ES384"},
		{Key: &k.rsa2048.PublicKey, KeyID: "rsa"},
	}}
	return &k
}

// only returns a JWK Set holding the given keys.
func only(keys ...jose.JSONWebKey) jose.JSONWebKeySet { return jose.JSONWebKeySet{Keys: keys} }

// wantReason fails unless err is the rejection for r.
func wantReason(t *testing.T, err error, r reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("assertion accepted, want rejection %q", r)
	}
	if errs.KindOf(err) != errs.KindUnauthenticated || errs.PublicMessage(err) != string(r) {
		t.Fatalf("err = %v (kind %v), want unauthenticated %q", err, errs.KindOf(err), r)
	}
	if errs.FieldOf(err) != "client_assertion" {
		t.Fatalf("err field %q, want client_assertion", errs.FieldOf(err))
	}
}

func TestVerifyValid(t *testing.T) {
	k := newClientKeys(t)
	tests := []struct {
		name      string
		assertion string
		keys      Keys
	}{
		{"HS256", sign(t, jose.HS256, k.secret32, "", claims(nil)), SharedSecret(k.secret32)},
		{"HS384", sign(t, jose.HS384, k.secret48, "", claims(nil)), SharedSecret(k.secret48)},
		{"HS512", sign(t, jose.HS512, k.secret64, "", claims(nil)), SharedSecret(k.secret64)},
		{"HS256 with kid", sign(t, jose.HS256, k.secret32, "whatever", claims(nil)), SharedSecret(k.secret32)},
		{"HS256 allowed by registration", sign(t, jose.HS256, k.secret32, "", claims(nil)), SharedSecret(k.secret32, "HS256")},
		{"ES256 with kid", sign(t, jose.ES256, k.ec256, "ec256", claims(nil)), PublicKeys(k.jwks)},
		{"ES256 without kid", sign(t, jose.ES256, k.ec256, "", claims(nil)), PublicKeys(k.jwks)},
		{"ES384 with kid", sign(t, jose.ES384, k.ec384, "ec384", claims(nil)), PublicKeys(k.jwks, "ES384")},
		{"RS256", sign(t, jose.RS256, k.rsa2048, "rsa", claims(nil)), PublicKeys(k.jwks)},
		{"PS256 without kid", sign(t, jose.PS256, k.rsa2048, "", claims(nil)), PublicKeys(k.jwks)},
		{"kid in header, none in JWKS", sign(t, jose.ES256, k.ec256, "client-kid", claims(nil)), PublicKeys(only(jose.JSONWebKey{Key: &k.rsa2048.PublicKey}, jose.JSONWebKey{Key: &k.ec256.PublicKey}))},
		{"aud is the issuer", sign(t, jose.ES256, k.ec256, "ec256", claims(map[string]any{"aud": issuer})), PublicKeys(k.jwks)},
		{"aud array with the endpoint", sign(t, jose.ES256, k.ec256, "ec256", claims(map[string]any{"aud": []string{"https://other", tokenEndpoint}})), PublicKeys(k.jwks)},
		{"no iat, nbf now", sign(t, jose.ES256, k.ec256, "ec256", claims(map[string]any{"iat": nil, "nbf": epoch.Unix()})), PublicKeys(k.jwks)},
		{"expired within clock skew", sign(t, jose.HS256, k.secret32, "", claims(map[string]any{"exp": epoch.Add(-20 * time.Second).Unix(), "iat": epoch.Add(-time.Minute).Unix()})), SharedSecret(k.secret32)},
		{"exp at the lifetime limit", sign(t, jose.HS256, k.secret32, "", claims(map[string]any{"exp": epoch.Add(5 * time.Minute).Unix()})), SharedSecret(k.secret32)},
		{"iat slightly ahead", sign(t, jose.HS256, k.secret32, "", claims(map[string]any{"iat": epoch.Add(10 * time.Second).Unix()})), SharedSecret(k.secret32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, replay := newVerifier(t)
			if err := v.Verify(context.Background(), tt.assertion, clientID, tt.keys); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if replay.Len() != 1 {
				t.Fatalf("replay holds %d entries after one assertion, want 1", replay.Len())
			}
			got, err := ClientIDFromAssertion(tt.assertion)
			if err != nil || got != clientID {
				t.Fatalf("ClientIDFromAssertion = %q, %v; want %q", got, err, clientID)
			}
		})
	}
}

func TestAssertionReplayRejected(t *testing.T) {
	k := newClientKeys(t)
	keys := PublicKeys(k.jwks)
	v, _ := newVerifier(t)
	ctx := context.Background()
	first := sign(t, jose.ES256, k.ec256, "ec256", claims(map[string]any{"jti": "once"}))
	if err := v.Verify(ctx, first, clientID, keys); err != nil {
		t.Fatalf("first use: %v", err)
	}
	wantReason(t, v.Verify(ctx, first, clientID, keys), errReplayed)

	// The same jti in a freshly signed assertion is a replay too.
	again := sign(t, jose.ES256, k.ec256, "ec256", claims(map[string]any{"jti": "once", "iat": epoch.Unix() + 1}))
	wantReason(t, v.Verify(ctx, again, clientID, keys), errReplayed)

	// Another jti is fine.
	other := sign(t, jose.ES256, k.ec256, "ec256", claims(map[string]any{"jti": "twice"}))
	if err := v.Verify(ctx, other, clientID, keys); err != nil {
		t.Fatalf("another jti: %v", err)
	}

	// A rejected assertion does not burn its jti.
	bad := sign(t, jose.ES256, k.ec256, "ec256", claims(map[string]any{"jti": "later", "aud": "https://evil"}))
	wantReason(t, v.Verify(ctx, bad, clientID, keys), errAudience)
	good := sign(t, jose.ES256, k.ec256, "ec256", claims(map[string]any{"jti": "later"}))
	if err := v.Verify(ctx, good, clientID, keys); err != nil {
		t.Fatalf("jti of a rejected assertion: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	k := newClientKeys(t)
	pubPEM := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	rsaDER, err := x509.MarshalPKIXPublicKey(&k.rsa2048.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	jwkJSON, err := json.Marshal(jose.JSONWebKey{Key: &k.ec256.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	jwks := PublicKeys(k.jwks)
	secret := SharedSecret(k.secret32)
	es := func(changes map[string]any) string { return sign(t, jose.ES256, k.ec256, "ec256", claims(changes)) }
	hs := func(changes map[string]any) string { return sign(t, jose.HS256, k.secret32, "", claims(changes)) }
	tampered := func() string {
		parts := strings.Split(es(nil), ".")
		payload, _ := json.Marshal(claims(nil))
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}()
	rawPayload := func(payload string) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: k.secret32}, nil)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := signer.Sign([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		s, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	jsonSerialized := func() string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: k.secret32}, nil)
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(claims(nil))
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		return jws.FullSerialize()
	}()

	tests := []struct {
		name      string
		assertion string
		clientID  string
		keys      Keys
		want      reason
	}{
		// Audience, lifetime and identity.
		{"wrong aud", es(map[string]any{"aud": "https://evil.example/token"}), clientID, jwks, errAudience},
		{"aud array without us", es(map[string]any{"aud": []string{"https://a", "https://b"}}), clientID, jwks, errAudience},
		{"aud with trailing path", es(map[string]any{"aud": tokenEndpoint + "/"}), clientID, jwks, errAudience},
		{"no aud", es(map[string]any{"aud": nil}), clientID, jwks, errAudience},
		{"expired", es(map[string]any{"exp": epoch.Add(-time.Minute).Unix(), "iat": epoch.Add(-2 * time.Minute).Unix()}), clientID, jwks, errExpired},
		{"no exp", es(map[string]any{"exp": nil}), clientID, jwks, errNoExpiry},
		{"exp too far ahead", es(map[string]any{"exp": epoch.Add(10 * time.Minute).Unix()}), clientID, jwks, errTooFar},
		{"exp far in the future", es(map[string]any{"exp": int64(1) << 40}), clientID, jwks, errTooFar},
		{"nbf in the future", es(map[string]any{"nbf": epoch.Add(time.Minute).Unix()}), clientID, jwks, errNotYetValid},
		{"iat in the future", es(map[string]any{"iat": epoch.Add(time.Minute).Unix(), "exp": epoch.Add(3 * time.Minute).Unix()}), clientID, jwks, errIssuedAt},
		{"iat after exp", es(map[string]any{"iat": epoch.Add(20 * time.Second).Unix(), "exp": epoch.Add(10 * time.Second).Unix()}), clientID, jwks, errIssuedAt},
		{"no jti", es(map[string]any{"jti": nil}), clientID, jwks, errNoJTI},
		{"empty jti", es(map[string]any{"jti": ""}), clientID, jwks, errNoJTI},
		{"long jti", es(map[string]any{"jti": strings.Repeat("j", MaxJTILen+1)}), clientID, jwks, errJTITooLong},
		{"iss is another client", es(map[string]any{"iss": "other"}), clientID, jwks, errSubject},
		{"sub is another client", es(map[string]any{"sub": "other"}), clientID, jwks, errSubject},
		{"no iss", es(map[string]any{"iss": nil}), clientID, jwks, errSubject},
		{"verified as another client", es(nil), "other", jwks, errSubject},

		// Algorithms: none, confusion and method mismatch.
		{"alg none", unsigned(t, claims(nil)), clientID, jwks, errAlgorithm},
		{"alg none, secret client", unsigned(t, claims(nil)), clientID, secret, errAlgorithm},
		{"HS256 with the public key PEM as secret", sign(t, jose.HS256, pubPEM(&k.rsa2048.PublicKey), "rsa", claims(nil)), clientID, jwks, errAlgorithm},
		{"HS256 with the public key DER as secret", sign(t, jose.HS256, rsaDER, "rsa", claims(nil)), clientID, jwks, errAlgorithm},
		{"HS256 with the public JWK JSON as secret", sign(t, jose.HS256, jwkJSON, "ec256", claims(nil)), clientID, jwks, errAlgorithm},
		{"HS256 against a JWKS client", hs(nil), clientID, jwks, errAlgorithm},
		{"ES256 against a secret client", es(nil), clientID, secret, errAlgorithm},
		{"alg not the registered one", es(nil), clientID, PublicKeys(k.jwks, "ES384"), errAlgorithm},
		{"HS384 when HS256 is registered", sign(t, jose.HS384, k.secret48, "", claims(nil)), clientID, SharedSecret(k.secret48, "HS256"), errAlgorithm},

		// Keys and signatures.
		{"tampered payload", tampered, clientID, jwks, errSignature},
		{"wrong secret", hs(nil), clientID, SharedSecret([]byte(ids.Token(32))), errSignature},
		{"signed by a key not in the JWKS", sign(t, jose.ES256, mustEC(t), "", claims(nil)), clientID, jwks, errSignature},
		{"unknown kid", sign(t, jose.ES256, k.ec256, "nope", claims(nil)), clientID, jwks, errNoKey},
		{"kid of a key of another type", sign(t, jose.ES256, k.ec256, "rsa", claims(nil)), clientID, jwks, errNoKey},
		{"key for encryption", es(nil), clientID, PublicKeys(only(jose.JSONWebKey{Key: &k.ec256.PublicKey, KeyID: "ec256", Use: "enc"})), errNoKey},
		{"key for another alg", es(nil), clientID, PublicKeys(only(jose.JSONWebKey{Key: &k.ec256.PublicKey, KeyID: "ec256", Algorithm: "ES384"})), errNoKey},
		{"P-256 key claiming ES384", sign(t, jose.ES384, k.ec384, "", claims(nil)), clientID, PublicKeys(only(jose.JSONWebKey{Key: &k.ec256.PublicKey})), errNoKey},
		{"RSA key under 2048 bits", sign(t, jose.RS256, k.rsa1024, "", claims(nil)), clientID, PublicKeys(only(jose.JSONWebKey{Key: &k.rsa1024.PublicKey})), errNoKey},
		{"symmetric key in the JWKS", es(nil), clientID, PublicKeys(only(jose.JSONWebKey{Key: k.secret32, KeyID: "ec256"})), errNoKey},
		{"private key in the JWKS", es(nil), clientID, PublicKeys(only(jose.JSONWebKey{Key: k.ec256, KeyID: "ec256"})), errNoKey},
		{"empty JWKS", es(nil), clientID, PublicKeys(jose.JSONWebKeySet{}), errNoKey},
		{"secret shorter than 32 bytes", sign(t, jose.HS256, []byte(ids.Token(32)), "", claims(nil)), clientID, SharedSecret([]byte(ids.Token(20))), errSecretLength},
		{"HS256 with a 31-byte secret", hs(nil), clientID, SharedSecret(k.secret32[:31]), errSecretLength},
		{"HS512 with a 32-byte secret", sign(t, jose.HS512, k.secret64, "", claims(nil)), clientID, SharedSecret(k.secret64[:32]), errSecretLength},
		{"no keys", es(nil), clientID, Keys{}, errNoKeys},
		{"no client", es(nil), "", jwks, errNoKeys},
		{"algs that fit no method", hs(nil), clientID, SharedSecret(k.secret32, "ES256"), errNoKeys},

		// Encoding.
		{"too long", strings.Repeat("a", MaxAssertionLen+1), clientID, jwks, errTooLong},
		{"empty", "", clientID, jwks, errMalformed},
		{"not a JWS", "hello", clientID, jwks, errMalformed},
		{"JSON serialization", jsonSerialized, clientID, secret, errMalformed},
		{"four parts", hs(nil) + ".x", clientID, secret, errMalformed},
		{"payload not an object", rawPayload(`["iss"]`), clientID, secret, errClaims},
		{"iss not a string", rawPayload(`{"iss":1,"sub":"x"}`), clientID, secret, errClaims},
		{"exp not a number", rawPayload(`{"iss":"` + clientID + `","sub":"` + clientID + `","exp":"soon"}`), clientID, secret, errClaims},
		{"exp overflowing", rawPayload(`{"iss":"` + clientID + `","sub":"` + clientID + `","exp":1e300}`), clientID, secret, errClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, replay := newVerifier(t)
			wantReason(t, v.Verify(context.Background(), tt.assertion, tt.clientID, tt.keys), tt.want)
			if replay.Len() != 0 {
				t.Fatalf("a rejected assertion was recorded")
			}
		})
	}
}

// mustEC returns a new P-256 key.
func mustEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// failingReplay is a Replay whose store is down.
type failingReplay struct{}

// Seen fails.
func (failingReplay) Seen(context.Context, string, string, time.Time) (bool, error) {
	return false, errors.New("event log unavailable")
}

func TestVerifyReplayStoreFails(t *testing.T) {
	v, err := NewVerifier(VerifierConfig{Audiences: []string{tokenEndpoint}, Replay: failingReplay{}, Now: func() time.Time { return epoch }})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(ids.Token(32))
	err = v.Verify(context.Background(), sign(t, jose.HS256, secret, "", claims(nil)), clientID, SharedSecret(secret))
	if errs.KindOf(err) != errs.KindUnavailable {
		t.Fatalf("err = %v (kind %v), want unavailable", err, errs.KindOf(err))
	}
}

func TestVerifierConfig(t *testing.T) {
	replay := NewMemoryReplay()
	tests := []struct {
		name    string
		cfg     VerifierConfig
		wantErr bool
	}{
		{"valid", VerifierConfig{Audiences: []string{tokenEndpoint}, Replay: replay}, false},
		{"no audiences", VerifierConfig{Replay: replay}, true},
		{"empty audience", VerifierConfig{Audiences: []string{tokenEndpoint, ""}, Replay: replay}, true},
		{"no replay", VerifierConfig{Audiences: []string{tokenEndpoint}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewVerifier(tt.cfg); (err != nil) != tt.wantErr {
				t.Fatalf("NewVerifier err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifierLifetimeAndSkew(t *testing.T) {
	secret := []byte(ids.Token(32))
	tests := []struct {
		name     string
		life     time.Duration
		skew     time.Duration
		exp, iat time.Duration // relative to epoch
		want     reason        // "" for accepted
	}{
		{"default lifetime, exp at 5m", 0, 0, 5 * time.Minute, 0, ""},
		{"default lifetime, exp past 5m30s", 0, 0, 5*time.Minute + 31*time.Second, 0, errTooFar},
		{"lifetime 1h", time.Hour, 0, 50 * time.Minute, 0, ""},
		{"no skew, just expired", 0, -1, -time.Second, -time.Minute, errExpired},
		{"no skew, iat a second ahead", 0, -1, time.Minute, time.Second, errIssuedAt},
		{"default skew, expired 29s ago", 0, 0, -29 * time.Second, -time.Minute, ""},
		{"default skew, expired 30s ago", 0, 0, -30 * time.Second, -time.Minute, errExpired},
		{"skew 2m, expired 90s ago", 0, 2 * time.Minute, -90 * time.Second, -2 * time.Minute, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := func() time.Time { return epoch }
			v, err := NewVerifier(VerifierConfig{
				Audiences: []string{tokenEndpoint}, Replay: NewMemoryReplayWithClock(now), Now: now,
				MaxLifetime: tt.life, ClockSkew: tt.skew,
			})
			if err != nil {
				t.Fatal(err)
			}
			a := sign(t, jose.HS256, secret, "", claims(map[string]any{
				"exp": epoch.Add(tt.exp).Unix(), "iat": epoch.Add(tt.iat).Unix(),
			}))
			err = v.Verify(context.Background(), a, clientID, SharedSecret(secret))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantReason(t, err, tt.want)
		})
	}
}

func TestClientIDFromAssertion(t *testing.T) {
	secret := []byte(ids.Token(32))
	hs := func(changes map[string]any) string { return sign(t, jose.HS256, secret, "", claims(changes)) }
	tests := []struct {
		name      string
		assertion string
		want      string
		wantErr   reason
	}{
		{"iss and sub", hs(nil), clientID, ""},
		{"sub only", hs(map[string]any{"iss": nil}), clientID, ""},
		{"unverified signature still read", hs(nil)[:len(hs(nil))-2] + "AA", clientID, ""},
		{"iss differs from sub", hs(map[string]any{"iss": "other"}), "", errSubject},
		{"no sub", hs(map[string]any{"sub": nil}), "", errSubject},
		{"sub not a string", hs(map[string]any{"sub": 7}), "", errClaims},
		{"alg none", unsigned(t, claims(nil)), "", errMalformed},
		{"garbage", "a.b.c", "", errMalformed},
		{"too long", strings.Repeat("a", MaxAssertionLen+1), "", errTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ClientIDFromAssertion(tt.assertion)
			if tt.wantErr != "" {
				wantReason(t, err, tt.wantErr)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ClientIDFromAssertion = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestMemoryReplayExpiry(t *testing.T) {
	now := epoch
	m := NewMemoryReplayWithClock(func() time.Time { return now })
	ctx := context.Background()
	seen := func(client, jti string, until time.Time) bool {
		t.Helper()
		s, err := m.Seen(ctx, client, jti, until)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first, second := epoch.Add(time.Minute), epoch.Add(2*time.Minute)
	steps := []struct {
		name    string
		advance time.Duration
		client  string
		jti     string
		until   time.Time
		want    bool
	}{
		{"first use", 0, "a", "j1", first, false},
		{"replay", 0, "a", "j1", first, true},
		{"same jti, other client", 0, "b", "j1", first, false},
		{"replay just before expiry", 59 * time.Second, "a", "j1", first, true},
		{"after expiry", time.Second, "a", "j1", second, false},
		{"replay of the re-recorded entry", 30 * time.Second, "a", "j1", second, true},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if got := seen(s.client, s.jti, s.until); got != s.want {
			t.Fatalf("%s: Seen = %v, want %v", s.name, got, s.want)
		}
	}

	// Expired entries are swept once a sweep interval has passed.
	now = epoch.Add(time.Hour)
	seen("c", "fresh", now.Add(time.Minute))
	if m.Len() != 1 {
		t.Fatalf("after sweep Len = %d, want 1", m.Len())
	}
}

func TestMemoryReplayCanceledContext(t *testing.T) {
	m := NewMemoryReplay()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Seen(ctx, "a", "j", time.Now().Add(time.Minute)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Seen with a canceled context: %v", err)
	}
	if m.Len() != 0 {
		t.Fatal("a canceled call recorded its jti")
	}
}

// TestMemoryReplayConcurrent races many goroutines on one jti: exactly one
// may win.
func TestMemoryReplayConcurrent(t *testing.T) {
	m := NewMemoryReplay()
	until := time.Now().Add(time.Minute)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh int
	)
	for range 32 {
		wg.Go(func() {
			s, err := m.Seen(context.Background(), "client", "jti", until)
			if err != nil {
				t.Error(err)
				return
			}
			if !s {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("%d goroutines saw the jti first, want 1", fresh)
	}
}

// FuzzVerify checks that Verify and ClientIDFromAssertion never panic, that
// every rejection is an invalid_client error, and that nothing is accepted
// that does not name the client.
func FuzzVerify(f *testing.F) {
	k := newClientKeys(f)
	for _, s := range []string{
		sign(f, jose.HS256, k.secret32, "", claims(nil)),
		sign(f, jose.ES256, k.ec256, "ec256", claims(nil)),
		sign(f, jose.RS256, k.rsa2048, "", claims(nil)),
		sign(f, jose.HS256, k.secret32, "", claims(map[string]any{"aud": []string{issuer}, "nbf": epoch.Unix()})),
		unsigned(f, claims(nil)),
		"", ".", "..", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "eyJhbGciOiJIUzI1NiJ9.e30.",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	secret, jwks := SharedSecret(k.secret32), PublicKeys(k.jwks)
	f.Fuzz(func(t *testing.T, s string, public bool) {
		v, _ := newVerifier(t)
		keys := secret
		if public {
			keys = jwks
		}
		err := v.Verify(context.Background(), s, clientID, keys)
		id, idErr := ClientIDFromAssertion(s)
		if err != nil {
			if errs.KindOf(err) != errs.KindUnauthenticated {
				t.Fatalf("Verify(%q) err = %v, kind %v", s, err, errs.KindOf(err))
			}
			return
		}
		if idErr != nil || id != clientID {
			t.Fatalf("Verify accepted %q, but it names client %q (%v)", s, id, idErr)
		}
	})
}
