package authorize

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/device"
)

// signAssertion signs an RFC 7523 client assertion for clientID with the jti
// given, valid a minute.
func signAssertion(t *testing.T, key any, alg jose.SignatureAlgorithm, clientID, audience, jti string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: jwt.Audience{audience}, ID: jti,
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The device authorization endpoint takes client assertions as the token
// endpoint does (it could not before): private_key_jwt and
// client_secret_jwt, each assertion once — also across services, since the
// token service claims its assertions here (ClaimClientAssertion).
func TestDeviceAuthorizationWithClientAssertions(t *testing.T) {
	e := newDeviceEnv(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	var jwks map[string]any
	json.Unmarshal(raw, &jwks)
	keyClient, _ := e.registerDeviceClient(t, map[string]any{"client_name": "Kiosk", "client_uri": "https://kiosk.example.com/",
		"grant_types": []string{device.GrantType}, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks})
	secretClient, secret := e.registerDeviceClient(t, map[string]any{"client_name": "Kiosk", "client_uri": "https://kiosk.example.com/",
		"grant_types": []string{device.GrantType}, "token_endpoint_auth_method": "client_secret_jwt"})
	const issuer = "https://auth.example.org/"
	form := func(a string) url.Values {
		return url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a},
			"scope": {"urn:matrix:client:api:*"}}
	}
	for _, tt := range []struct {
		name     string
		clientID string
		key      any
		alg      jose.SignatureAlgorithm
	}{
		{"private_key_jwt", keyClient, key, jose.ES256},
		{"client_secret_jwt", secretClient, []byte(secret), jose.HS256},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, aud := range []string{issuer, issuer + "oauth2/device", issuer + "oauth2/token"} {
				a := signAssertion(t, tt.key, tt.alg, tt.clientID, aud, ids.Token(24))
				if status, out := e.authorizeDevice(t, form(a)); status != 200 || out["device_code"] == nil {
					t.Fatalf("aud %s: %d %v", aud, status, out)
				}
				if status, out := e.authorizeDevice(t, form(a)); status != 401 || out["error"] != "invalid_client" {
					t.Fatalf("replayed assertion: %d %v", status, out)
				}
			}
			a := signAssertion(t, tt.key, tt.alg, tt.clientID, "https://elsewhere.example/", ids.Token(24))
			if status, out := e.authorizeDevice(t, form(a)); status != 401 || out["error"] != "invalid_client" {
				t.Fatalf("another server's assertion: %d %v", status, out)
			}
			// Claimed by the token service first: refused here.
			jti := ids.Token(24)
			claimed, err := e.srv.ClaimClientAssertion(context.Background(), &authorizev1.ClaimClientAssertionRequest{
				ClientId: tt.clientID, Jti: jti, ExpiresAt: timestamppb.New(time.Now().Add(time.Minute))})
			if err != nil || claimed.GetAlreadyUsed() {
				t.Fatalf("claim: %v, %v", claimed, err)
			}
			if status, out := e.authorizeDevice(t, form(signAssertion(t, tt.key, tt.alg, tt.clientID, issuer, jti))); status != 401 || out["error"] != "invalid_client" {
				t.Fatalf("an assertion the token service used: %d %v", status, out)
			}
			// Used here first: the token service's claim finds it taken.
			jti = ids.Token(24)
			if status, out := e.authorizeDevice(t, form(signAssertion(t, tt.key, tt.alg, tt.clientID, issuer, jti))); status != 200 {
				t.Fatalf("fresh assertion: %d %v", status, out)
			}
			claimed, err = e.srv.ClaimClientAssertion(context.Background(), &authorizev1.ClaimClientAssertionRequest{
				ClientId: tt.clientID, Jti: jti, ExpiresAt: timestamppb.New(time.Now().Add(time.Minute))})
			if err != nil || !claimed.GetAlreadyUsed() {
				t.Fatalf("claim of an assertion used here: %v, %v", claimed, err)
			}
		})
	}
	// The other method's credentials are refused: a secret for a key client.
	if status, out := e.authorizeDevice(t, url.Values{"scope": {"urn:matrix:client:api:*"}}, keyClient, secret); status != 401 || out["error"] != "invalid_client" {
		t.Fatalf("a secret for a private_key_jwt client: %d %v", status, out)
	}
}

// ClaimClientAssertion refuses what cannot name an assertion.
func TestClaimClientAssertionInput(t *testing.T) {
	e := newDeviceEnv(t)
	exp := timestamppb.New(time.Now().Add(time.Minute))
	for name, req := range map[string]*authorizev1.ClaimClientAssertionRequest{
		"no client":  {Jti: "j", ExpiresAt: exp},
		"bad client": {ClientId: "a.b", Jti: "j", ExpiresAt: exp},
		"no jti":     {ClientId: "c", ExpiresAt: exp},
		"long jti":   {ClientId: "c", Jti: string(make([]byte, 257)), ExpiresAt: exp},
		"no expiry":  {ClientId: "c", Jti: "j"},
	} {
		if _, err := e.srv.ClaimClientAssertion(context.Background(), req); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A claim expires once its assertion could no longer be accepted: it does
// not stay in AUTHORIZE for ever, one for every assertion a client ever
// sent.
func TestAssertionClaimsExpire(t *testing.T) {
	e := newDeviceEnv(t)
	ctx := context.Background()
	jti := ids.Token(24)
	if _, err := e.srv.ClaimClientAssertion(ctx, &authorizev1.ClaimClientAssertionRequest{
		ClientId: "c", Jti: jti, ExpiresAt: timestamppb.New(time.Now().Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("c\x00" + jti))
	st, err := e.svc.log.JetStream().Stream(ctx, eventsv1.Authorize.Name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, e.svc.log.Subject(eventlog.Ref{Type: eventsv1.AuthorizeAssertion.Type, ID: hex.EncodeToString(sum[:])}))
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := strconv.Atoi(m.Header.Get(jetstream.MsgTTLHeader)); err != nil || ttl < 55 || ttl > 62 {
		t.Fatalf("the claim of an assertion valid a minute more expires after %q s", m.Header.Get(jetstream.MsgTTLHeader))
	}
}
