package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse.dev/platform/errs"
)

// fixture reads a file from testdata. The files were made with openssl; their
// kids were computed independently with Python's cryptography package.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureKids are the RFC 7638 thumbprints of the testdata keys.
var fixtureKids = map[string]string{
	"rsa2048-pkcs1.pem":    "gjEVLloTgbPovOa05_NaMEM2Zw-nmvsdO1cjcaJZ5Gc",
	"rsa3072-pkcs8.pem":    "htAMXDoUo0-M7qQmJqYAeiDrUqYHofMkGW_gECKChzc",
	"p256-sec1-params.pem": "qX1rEsft-9qMszEMEDgDXxuZrteqSYD6lpHRy7uaBIE",
	"p384-pkcs8.pem":       "mtGeS6sRgQ6nheZoguunAdM57grdFNL95Ipp41QDxAA",
}

// kids returns the kids of a JWK Set, in order.
func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// signAndVerify signs a payload with ks for alg and verifies it against jwks,
// returning the header of the verified signature.
func signAndVerify(t *testing.T, ks *Keyset, alg string, jwks jose.JSONWebKeySet) jose.Header {
	t.Helper()
	signer, kid, err := ks.Signer(alg)
	if err != nil {
		t.Fatalf("Signer(%q): %v", alg, err)
	}
	jws, err := signer.Sign([]byte(`{"hello":"world"}`))
	if err != nil {
		t.Fatal(err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := parsed.Verify(jwks)
	if err != nil {
		t.Fatalf("verify %s signature with JWKS %v: %v", alg, kids(jwks), err)
	}
	if string(payload) != `{"hello":"world"}` {
		t.Fatalf("payload = %s", payload)
	}
	h := parsed.Signatures[0].Protected
	if h.KeyID != kid {
		t.Fatalf("header kid %q, Signer returned %q", h.KeyID, kid)
	}
	return h
}

func TestThumbprintRFC7638(t *testing.T) {
	// The example key and thumbprint of RFC 7638 §3.1.
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	if err != nil {
		t.Fatal(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	got, err := thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint = %s, want %s", got, want)
	}
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		name     string
		algs     []string
		wantAlgs []string
		wantErr  bool
	}{
		{"default", nil, []string{RS256, ES256}, false},
		{"EC only", []string{ES256}, []string{ES256}, false},
		{"P-384 then RSA", []string{ES384, RS256}, []string{RS256, ES384}, false},
		{"two P-256 keys", []string{ES256, ES256}, []string{ES256}, false},
		{"HMAC", []string{"HS256"}, nil, true},
		{"none", []string{"none"}, nil, true},
		{"PS256", []string{"PS256"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := Generate(tt.algs...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Generate err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := ks.Algorithms(); !slices.Equal(got, tt.wantAlgs) {
				t.Fatalf("Algorithms = %v, want %v", got, tt.wantAlgs)
			}
			if ks.DefaultAlgorithm() != tt.wantAlgs[0] {
				t.Fatalf("DefaultAlgorithm = %s, want %s", ks.DefaultAlgorithm(), tt.wantAlgs[0])
			}
			jwks := ks.JWKS()
			if len(jwks.Keys) != len(ks.signing) {
				t.Fatalf("JWKS has %d keys, keyset %d", len(jwks.Keys), len(ks.signing))
			}
			for _, s := range ks.signing {
				if want := independentThumbprint(t, s.priv.Public()); s.kid != want {
					t.Errorf("%s key kid = %s, want thumbprint %s", s.alg, s.kid, want)
				}
			}
			for _, alg := range tt.wantAlgs {
				signAndVerify(t, ks, alg, jwks)
			}
		})
	}
}

// independentThumbprint computes an RFC 7638 thumbprint by building the
// canonical JSON by hand rather than through go-jose.
func independentThumbprint(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var canonical string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		canonical = `{"e":"` + b64(big.NewInt(int64(k.E)).Bytes()) + `","kty":"RSA","n":"` + b64(k.N.Bytes()) + `"}`
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		x, y := make([]byte, size), make([]byte, size)
		k.X.FillBytes(x)
		k.Y.FillBytes(y)
		canonical = `{"crv":"` + k.Curve.Params().Name + `","kty":"EC","x":"` + b64(x) + `","y":"` + b64(y) + `"}`
	default:
		t.Fatalf("unexpected key type %T", pub)
	}
	sum := crypto.SHA256.New()
	sum.Write([]byte(canonical))
	return b64(sum.Sum(nil))
}

func TestSigner(t *testing.T) {
	both, err := Generate(ES256, RS256)
	if err != nil {
		t.Fatal(err)
	}
	ecOnly, err := Generate(ES384)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ks      *Keyset
		alg     string
		wantAlg string
		wantErr bool
	}{
		{"default prefers RS256", both, "", RS256, false},
		{"explicit ES256", both, ES256, ES256, false},
		{"default without RSA", ecOnly, "", ES384, false},
		{"missing algorithm", ecOnly, RS256, "", true},
		{"HMAC", both, "HS256", "", true},
		{"none", both, "none", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.ks.Signer(tt.alg)
			if tt.wantErr {
				if errs.KindOf(err) != errs.KindInvalid {
					t.Fatalf("Signer(%q) err = %v, want a KindInvalid error", tt.alg, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := signAndVerify(t, tt.ks, tt.alg, tt.ks.JWKS())
			if h.Algorithm != tt.wantAlg || h.ExtraHeaders["typ"] != "JWT" {
				t.Fatalf("header alg %q typ %v, want %q JWT", h.Algorithm, h.ExtraHeaders["typ"], tt.wantAlg)
			}
		})
	}
}

func TestSignerWithOptions(t *testing.T) {
	ks, err := Generate(ES256)
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := ks.SignerWith(ES256, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := parsed.Signatures[0].Protected.ExtraHeaders["typ"]; typ != "at+jwt" {
		t.Fatalf("typ = %v, want at+jwt", typ)
	}
}

func TestEmptyKeyset(t *testing.T) {
	var ks Keyset
	if alg := ks.DefaultAlgorithm(); alg != "" {
		t.Fatalf("DefaultAlgorithm = %q", alg)
	}
	if _, _, err := ks.Signer(""); err == nil {
		t.Fatal("Signer on an empty keyset succeeded")
	}
	if n := len(ks.JWKS().Keys); n != 0 {
		t.Fatalf("JWKS has %d keys", n)
	}
}

// privateMembers are the JWK members (RFC 7518 §6) that hold private or
// symmetric key material.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// assertPublicOnly fails unless every key of set is public, in memory and in
// its JSON form.
func assertPublicOnly(t *testing.T, set jose.JSONWebKeySet) {
	t.Helper()
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("JWKS key %s holds a %T", k.KeyID, k.Key)
		}
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if len(decoded.Keys) != len(set.Keys) {
		t.Fatalf("JSON has %d keys, set %d", len(decoded.Keys), len(set.Keys))
	}
	for _, k := range decoded.Keys {
		for _, m := range privateMembers {
			if _, ok := k[m]; ok {
				t.Errorf("JWKS key %v has private member %q", k["kid"], m)
			}
		}
		if k["use"] != "sig" || k["alg"] == nil || k["kid"] == nil {
			t.Errorf("JWKS key lacks use/alg/kid: %v", k)
		}
	}
}

func TestJWKSHasNoPrivateMaterial(t *testing.T) {
	old, err := Generate(RS256, ES256, ES384)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := Generate(RS256, ES256)
	if err != nil {
		t.Fatal(err)
	}
	rotated := old.Rotate(cur, time.Now().Add(time.Hour))
	set := rotated.JWKS()
	if len(set.Keys) != 5 {
		t.Fatalf("JWKS has %d keys, want 5 (2 signing, 3 retired)", len(set.Keys))
	}
	assertPublicOnly(t, set)
	// The private JSON, by contrast, does hold private members.
	priv, err := rotated.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(priv), `"d":`) {
		t.Fatal("MarshalPrivate holds no private key")
	}
}

func TestRotate(t *testing.T) {
	old, err := Generate(ES256)
	if err != nil {
		t.Fatal(err)
	}
	next, err := Generate(ES256)
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rotated := old.Rotate(next, until)
	oldKid, newKid := old.signing[0].kid, next.signing[0].kid

	if _, kid, _ := rotated.Signer(""); kid != newKid {
		t.Fatalf("rotated keyset signs with %s, want the new key %s", kid, newKid)
	}
	if _, kid, _ := old.Signer(""); kid != oldKid {
		t.Fatalf("Rotate changed the old keyset: it signs with %s", kid)
	}
	tests := []struct {
		name string
		at   time.Time
		want []string
	}{
		{"before retirement ends", until.Add(-time.Second), []string{newKid, oldKid}},
		{"when retirement ends", until, []string{newKid}},
		{"after retirement ends", until.Add(time.Hour), []string{newKid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kids(rotated.JWKSAt(tt.at)); !slices.Equal(got, tt.want) {
				t.Fatalf("JWKSAt kids = %v, want %v", got, tt.want)
			}
		})
	}
	// A token the old key signed still verifies against the rotated JWKS.
	signAndVerify(t, old, ES256, rotated.JWKSAt(until.Add(-time.Minute)))

	// Rotating again keeps the first retired key with its own time.
	third, err := Generate(ES256)
	if err != nil {
		t.Fatal(err)
	}
	later := until.Add(24 * time.Hour)
	twice := rotated.Rotate(third, later)
	if got := kids(twice.JWKSAt(until.Add(-time.Second))); !slices.Equal(got, []string{third.signing[0].kid, newKid, oldKid}) {
		t.Fatalf("twice-rotated kids before first retirement ends = %v", got)
	}
	if got := kids(twice.JWKSAt(until.Add(time.Second))); !slices.Equal(got, []string{third.signing[0].kid, newKid}) {
		t.Fatalf("twice-rotated kids after first retirement ends = %v", got)
	}
	// Rotating back to a retired key makes it signing, not also retired.
	back := twice.Rotate(old, later)
	if got := kids(back.JWKSAt(until.Add(-time.Second))); !slices.Equal(got, []string{oldKid, third.signing[0].kid, newKid}) {
		t.Fatalf("rotated-back kids = %v", got)
	}
}

func TestLoadPEMFixtures(t *testing.T) {
	tests := []struct {
		name     string
		files    []string
		wantAlgs []string
		wantErr  string
	}{
		{"PKCS#1 RSA", []string{"rsa2048-pkcs1.pem"}, []string{RS256}, ""},
		{"PKCS#8 RSA", []string{"rsa3072-pkcs8.pem"}, []string{RS256}, ""},
		{"SEC1 P-256 with EC PARAMETERS", []string{"p256-sec1-params.pem"}, []string{ES256}, ""},
		{"PKCS#8 P-384", []string{"p384-pkcs8.pem"}, []string{ES384}, ""},
		{"all four", []string{"p256-sec1-params.pem", "rsa2048-pkcs1.pem", "p384-pkcs8.pem", "rsa3072-pkcs8.pem"}, []string{RS256, ES256, ES384}, ""},
		{"same key twice", []string{"p384-pkcs8.pem", "p384-pkcs8.pem"}, nil, "appears twice"},
		{"RSA 1024", []string{"rsa1024-pkcs1.pem"}, nil, "RSA key of 1024 bits"},
		{"P-521", []string{"p521-sec1.pem"}, nil, "unsupported elliptic curve P-521"},
		{"Ed25519", []string{"ed25519-pkcs8.pem"}, nil, "unsupported private key type"},
		{"encrypted PKCS#8", []string{"p256-encrypted.pem"}, nil, `"ENCRYPTED PRIVATE KEY" is not a supported private key`},
		{"legacy encrypted PEM", []string{"rsa-legacy-encrypted.pem"}, nil, "encrypted PEM block"},
		{"public key", []string{"p256-public.pem"}, nil, `"PUBLIC KEY" is not a supported private key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pems [][]byte
			for _, f := range tt.files {
				pems = append(pems, fixture(t, f))
			}
			ks, err := LoadPEM(pems)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadPEM err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ks.Algorithms(); !slices.Equal(got, tt.wantAlgs) {
				t.Fatalf("Algorithms = %v, want %v", got, tt.wantAlgs)
			}
			var want []string
			for _, f := range tt.files {
				want = append(want, fixtureKids[f])
			}
			if got := kids(ks.JWKS()); !slices.Equal(got, want) {
				t.Fatalf("kids = %v, want %v", got, want)
			}
			for _, alg := range tt.wantAlgs {
				signAndVerify(t, ks, alg, ks.JWKS())
			}
		})
	}
}

func TestLoadPEMEncodings(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	block := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	tests := []struct {
		name    string
		pems    [][]byte
		wantN   int
		wantErr bool
	}{
		{"SEC1", [][]byte{block("EC PRIVATE KEY", sec1)}, 1, false},
		{"PKCS#8", [][]byte{block("PRIVATE KEY", pkcs8)}, 1, false},
		{"no inputs", nil, 0, true},
		{"empty input", [][]byte{{}}, 0, true},
		{"not PEM", [][]byte{[]byte("hello")}, 0, true},
		{"only EC PARAMETERS", [][]byte{block("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7})}, 0, true},
		{"SEC1 bytes labelled PKCS#1", [][]byte{block("RSA PRIVATE KEY", sec1)}, 0, true},
		{"garbage DER", [][]byte{block("PRIVATE KEY", []byte{1, 2, 3})}, 0, true},
		{"certificate", [][]byte{block("CERTIFICATE", []byte{1})}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := LoadPEM(tt.pems)
			if (err != nil) != tt.wantErr {
				t.Fatalf("LoadPEM err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && len(ks.signing) != tt.wantN {
				t.Fatalf("loaded %d keys, want %d", len(ks.signing), tt.wantN)
			}
		})
	}
}

func TestMarshalPrivateRoundTrip(t *testing.T) {
	old, err := Generate(RS256, ES384)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := Generate(RS256, ES256)
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC)
	ks := old.Rotate(cur, until)
	data, err := ks.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalPrivate(data)
	if err != nil {
		t.Fatalf("UnmarshalPrivate: %v", err)
	}
	for _, at := range []time.Time{until.Add(-time.Second), until} {
		if got, want := kids(back.JWKSAt(at)), kids(ks.JWKSAt(at)); !slices.Equal(got, want) {
			t.Fatalf("at %v: restored kids %v, want %v", at, got, want)
		}
	}
	if !slices.Equal(back.Algorithms(), ks.Algorithms()) {
		t.Fatalf("restored Algorithms %v, want %v", back.Algorithms(), ks.Algorithms())
	}
	// Keys survive the trip: what one signs the other's JWKS verifies.
	for _, alg := range ks.Algorithms() {
		signAndVerify(t, back, alg, ks.JWKSAt(until.Add(-time.Hour)))
		signAndVerify(t, ks, alg, back.JWKSAt(until.Add(-time.Hour)))
	}
	// The stored form is a JWK Set that a plain reader parses.
	var plain jose.JSONWebKeySet
	if err := json.Unmarshal(data, &plain); err != nil {
		t.Fatalf("stored keyset is not a JWK Set: %v", err)
	}
	if len(plain.Keys) != 2 || plain.Keys[0].IsPublic() {
		t.Fatalf("stored JWK Set has %d keys (public: %v), want 2 private", len(plain.Keys), plain.Keys[0].IsPublic())
	}
}

func TestUnmarshalPrivateRejects(t *testing.T) {
	ks, err := Generate(ES256)
	if err != nil {
		t.Fatal(err)
	}
	s := ks.signing[0]
	jwk := func(key any, kid, alg, use string) string {
		raw, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use})
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	set := func(keys ...string) string { return `{"keys":[` + strings.Join(keys, ",") + `]}` }
	retired := func(key string) string {
		return `{"keys":[` + jwk(s.priv, s.kid, ES256, "sig") + `],"gatehouse_retired":[{"until":"2030-01-01T00:00:00Z","key":` + key + `}]}`
	}
	tests := []struct {
		name    string
		data    string
		wantErr string
	}{
		{"valid", set(jwk(s.priv, s.kid, ES256, "sig")), ""},
		{"valid without kid, alg, use", set(jwk(s.priv, "", "", "")), ""},
		{"not JSON", "{", "parse stored keyset"},
		{"no keys", `{"keys":[]}`, "no signing key"},
		{"public key", set(jwk(s.priv.Public(), s.kid, ES256, "sig")), "not a private key"},
		{"symmetric key", set(jwk(make([]byte, 32), "k", "HS256", "sig")), "unsupported private key type"},
		{"wrong kid", set(jwk(s.priv, "other", ES256, "sig")), "not the key's thumbprint"},
		{"wrong alg", set(jwk(s.priv, s.kid, "ES384", "sig")), "does not fit"},
		{"encryption use", set(jwk(s.priv, s.kid, ES256, "enc")), `use "enc"`},
		{"duplicate", set(jwk(s.priv, s.kid, ES256, "sig"), jwk(s.priv, s.kid, ES256, "sig")), "appears twice"},
		{"retired private key", retired(jwk(s.priv, "", "", "")), "not a public key"},
		{"retired duplicate of signing key", retired(jwk(s.priv.Public(), "", "", "")), "appears twice"},
		{"retired wrong kid", retired(jwk(s.priv.Public(), "x", "", "")), "not the key's thumbprint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := UnmarshalPrivate([]byte(tt.data))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("UnmarshalPrivate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("UnmarshalPrivate err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestConcurrentReads exercises a Keyset from many goroutines; run with
// -race it checks that reads share no mutable state.
func TestConcurrentReads(t *testing.T) {
	ks, err := Generate(ES256)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				signer, _, err := ks.Signer("")
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := signer.Sign([]byte("{}")); err != nil {
					t.Error(err)
				}
				_ = ks.JWKS()
				_ = ks.Algorithms()
			}
		})
	}
	wg.Wait()
}
