package password

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"gatehouse.dev/platform/errs"
)

// fast are cheap parameters for tests where the cost does not matter.
var fast = Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

// phc matches the PHC strings Hash produces with the fast parameters.
var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

// mustHash hashes password with h or fails the test.
func mustHash(t testing.TB, h *Hasher, password string) string {
	t.Helper()
	hash, err := h.Hash(password)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return hash
}

// mustBcrypt returns a bcrypt hash of password with the given version prefix
// ("$2a$", "$2b$" or "$2y$"); Go writes $2a$, which hashes the same.
func mustBcrypt(t testing.TB, password, prefix string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("bcrypt: %v", err)
	}
	return prefix + string(hash[len("$2a$"):])
}

// idKey derives an argon2id key of keyLen bytes, for hashes Hash would not make.
func idKey(password string, salt []byte, p Params, keyLen uint32) []byte {
	return argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
}

func TestHashFormatAndSalt(t *testing.T) {
	h := New(fast)
	a, b := mustHash(t, h, "correct horse"), mustHash(t, h, "correct horse")
	for _, hash := range []string{a, b} {
		if !phc.MatchString(hash) {
			t.Errorf("hash %q is not an argon2id PHC string with the fast parameters", hash)
		}
	}
	if a == b {
		t.Errorf("two hashes of one password are equal: %q", a)
	}
}

func TestVerify(t *testing.T) {
	h := New(fast)
	stronger := New(Params{MemoryKiB: 128, Iterations: 2, Parallelism: 1})
	const pw = "correct horse battery staple"
	tests := []struct {
		name       string
		hash       string
		password   string
		wantOK     bool
		wantRehash bool
	}{
		{"argon2id current params", mustHash(t, h, pw), pw, true, false},
		{"argon2id wrong password", mustHash(t, h, pw), pw + "!", false, false},
		{"argon2id empty password", mustHash(t, h, pw), "", false, false},
		{"argon2id of the empty password", mustHash(t, h, ""), "", true, false},
		{"argon2id weaker params", mustHash(t, New(Params{MemoryKiB: 32, Iterations: 1, Parallelism: 1}), pw), pw, true, true},
		{"argon2id stronger params", mustHash(t, stronger, pw), pw, true, true},
		{"argon2id weaker params wrong password", mustHash(t, stronger, pw), "nope", false, false},
		{"argon2id other salt and key lengths", encodeArgon2id(fast, []byte("saltsalt"),
			idKey(pw, []byte("saltsalt"), fast, 16)), pw, true, true},
		{"bcrypt $2a$", mustBcrypt(t, pw, "$2a$"), pw, true, true},
		{"bcrypt $2b$", mustBcrypt(t, pw, "$2b$"), pw, true, true},
		{"bcrypt $2y$", mustBcrypt(t, pw, "$2y$"), pw, true, true},
		{"bcrypt wrong password", mustBcrypt(t, pw, "$2b$"), "nope", false, false},
		{"bcrypt counts 72 bytes like Synapse", mustBcrypt(t, strings.Repeat("x", 72), "$2b$"),
			strings.Repeat("x", 72) + "ignored", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(tt.hash, tt.password)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ok != tt.wantOK || rehash != tt.wantRehash {
				t.Errorf("Verify = ok %v, rehash %v; want %v, %v", ok, rehash, tt.wantOK, tt.wantRehash)
			}
		})
	}
}

func TestVerifyRehashedHash(t *testing.T) {
	h := New(fast)
	const pw = "correct horse"
	old := mustBcrypt(t, pw, "$2b$")
	ok, rehash, err := h.Verify(old, pw)
	if err != nil || !ok || !rehash {
		t.Fatalf("Verify(bcrypt) = %v, %v, %v; want a match asking for rehash", ok, rehash, err)
	}
	upgraded := mustHash(t, h, pw)
	ok, rehash, err = h.Verify(upgraded, pw)
	if err != nil || !ok || rehash {
		t.Errorf("Verify(upgraded) = %v, %v, %v; want a match without rehash", ok, rehash, err)
	}
}

func TestDefaultParams(t *testing.T) {
	h := New(DefaultParams())
	const pw = "correct horse battery staple"
	hash := mustHash(t, h, pw)
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q does not use m=19456,t=2,p=1", hash)
	}
	if ok, rehash, err := h.Verify(hash, pw); err != nil || !ok || rehash {
		t.Errorf("Verify = %v, %v, %v; want a match without rehash", ok, rehash, err)
	}
	if ok, _, err := h.Verify(hash, "Correct horse battery staple"); err != nil || ok {
		t.Errorf("Verify(wrong) = %v, %v; want no match", ok, err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	h := New(fast)
	valid := mustHash(t, h, "pw")
	salt, key := strings.Split(valid, "$")[4], strings.Split(valid, "$")[5]
	argon := func(version, params string) string {
		return "$argon2id$" + version + "$" + params + "$" + salt + "$" + key
	}
	bc := mustBcrypt(t, "pw", "$2b$")
	tests := []struct {
		name string
		hash string
	}{
		{"empty", ""},
		{"plain text", "hunter22"},
		{"unknown scheme scrypt", "$scrypt$ln=16,r=8,p=1$c2FsdA$aGFzaA"},
		{"unknown scheme argon2i", strings.Replace(valid, "argon2id", "argon2i", 1)},
		{"unknown scheme pbkdf2", "$pbkdf2-sha256$29000$c2FsdA$aGFzaA"},
		{"unknown bcrypt version $2x$", "$2x$" + bc[4:]},
		{"argon2id prefix only", "$argon2id$"},
		{"argon2id truncated before key", valid[:strings.LastIndex(valid, "$")]},
		{"argon2id truncated key", valid[:len(valid)-30]},
		{"argon2id extra field", valid + "$x"},
		{"argon2id missing version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"argon2id version 16", argon("v=16", "m=64,t=1,p=1")},
		{"argon2id bad base64 salt", "$argon2id$v=19$m=64,t=1,p=1$!!!!$" + key},
		{"argon2id bad base64 key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:40] + "%%%"},
		{"argon2id padded base64", valid + "="},
		{"argon2id short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key},
		{"argon2id memory above 1 GiB", argon("v=19", "m=1048577,t=1,p=1")},
		{"argon2id memory overflows", argon("v=19", "m=99999999999,t=1,p=1")},
		{"argon2id memory below 8 per lane", argon("v=19", "m=15,t=1,p=2")},
		{"argon2id zero iterations", argon("v=19", "m=64,t=0,p=1")},
		{"argon2id too many iterations", argon("v=19", "m=64,t=1000000,p=1")},
		{"argon2id zero lanes", argon("v=19", "m=64,t=1,p=0")},
		{"argon2id too many lanes", argon("v=19", "m=65536,t=1,p=255")},
		{"argon2id negative", argon("v=19", "m=-64,t=1,p=1")},
		{"argon2id leading zero", argon("v=19", "m=064,t=1,p=1")},
		{"argon2id params out of order", argon("v=19", "t=1,m=64,p=1")},
		{"argon2id extra param", argon("v=19", "m=64,t=1,p=1,keyid=k")},
		{"argon2id missing param", argon("v=19", "m=64,t=1")},
		{"bcrypt truncated", bc[:59]},
		{"bcrypt too long", bc + "x"},
		{"bcrypt cost 31", "$2b$31$" + bc[7:]},
		{"bcrypt cost 17", "$2b$17$" + bc[7:]},
		{"bcrypt cost 03", "$2b$03$" + bc[7:]},
		{"bcrypt cost not digits", "$2b$1x$" + bc[7:]},
		{"bcrypt missing separator", "$2b$04x" + bc[7:]},
		{"bcrypt bad alphabet", bc[:20] + "!" + bc[21:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(tt.hash, "pw")
			if err == nil {
				t.Fatalf("Verify = %v, %v, nil; want an error", ok, rehash)
			}
			if ok || rehash {
				t.Errorf("Verify = ok %v, rehash %v alongside error", ok, rehash)
			}
			if !errors.Is(err, ErrMalformedHash) {
				t.Errorf("error %v does not wrap ErrMalformedHash", err)
			}
			if kind := errs.KindOf(err); kind != errs.KindInternal {
				t.Errorf("kind = %v, want internal", kind)
			}
			if len(tt.hash) > 8 && strings.Contains(err.Error(), tt.hash) {
				t.Errorf("error %q quotes the hash", err)
			}
		})
	}
}

func TestVerifyDummy(t *testing.T) {
	for _, p := range []Params{fast, DefaultParams()} {
		h := New(p)
		// The dummy must cost what a real hash of this Hasher costs.
		got, salt, key, err := parseArgon2id(h.dummy)
		if err != nil {
			t.Fatalf("dummy hash %q: %v", h.dummy, err)
		}
		if got != p || len(salt) != saltLength || len(key) != keyLength {
			t.Errorf("dummy hash has %+v, %d-byte salt, %d-byte key; want %+v, %d, %d",
				got, len(salt), len(key), p, saltLength, keyLength)
		}
		if ok, _, err := h.Verify(h.dummy, dummyGuess); ok || err != nil {
			t.Errorf("Verify(dummy) = %v, %v; want no match and no error", ok, err)
		}
		h.VerifyDummy(dummyGuess)
	}
}

// dummyGuess is a password tried against the dummy hash.
const dummyGuess = "correct horse"

func TestNewZeroParamsAreDefault(t *testing.T) {
	if err := (Params{}).Validate(); err == nil {
		t.Errorf("Validate(Params{}) = nil")
	}
	h := New(Params{})
	if h.params != DefaultParams() {
		t.Errorf("New(Params{}) hashes with %+v, want %+v", h.params, DefaultParams())
	}
}

func TestNewRejectsInvalidParams(t *testing.T) {
	tests := []struct {
		name string
		p    Params
	}{
		{"zero iterations", Params{MemoryKiB: 64, Parallelism: 1}},
		{"zero lanes", Params{MemoryKiB: 64, Iterations: 1}},
		{"memory above 1 GiB", Params{MemoryKiB: MaxMemoryKiB + 1, Iterations: 1, Parallelism: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); err == nil {
				t.Errorf("Validate(%+v) = nil", tt.p)
			}
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", tt.p)
				}
			}()
			New(tt.p)
		})
	}
}

// FuzzVerify feeds arbitrary strings as stored hashes: Verify must never
// panic, never match with an error, and never ask to rehash a mismatch.
func FuzzVerify(f *testing.F) {
	h := New(fast)
	f.Add(mustHash(f, h, "pw"), "pw")
	f.Add(mustBcrypt(f, "pw", "$2y$"), "pw")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "")
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$$", "pw")
	f.Add("$2b$99$", "pw")
	f.Add("$$$$$", "")
	f.Fuzz(func(t *testing.T, hash, password string) {
		if expensive(hash) {
			return // Valid but slow parameters; bounds are tested above.
		}
		ok, rehash, err := h.Verify(hash, password)
		if err != nil && (ok || rehash) {
			t.Errorf("Verify(%q) = %v, %v, %v", hash, ok, rehash, err)
		}
		if !ok && rehash {
			t.Errorf("Verify(%q) asks to rehash a mismatch", hash)
		}
	})
}

// expensive reports whether hash is well-formed with parameters that would
// make a fuzzing iteration slow.
func expensive(hash string) bool {
	if p, _, _, err := parseArgon2id(hash); err == nil {
		return uint64(p.MemoryKiB)*uint64(p.Iterations) > 1<<12
	}
	if cost, err := bcrypt.Cost([]byte(hash)); err == nil {
		return cost > bcrypt.MinCost+2
	}
	return false
}

func BenchmarkHashDefault(b *testing.B) {
	h := New(DefaultParams())
	for b.Loop() {
		if _, err := h.Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDefault(b *testing.B) {
	h := New(DefaultParams())
	hash := mustHash(b, h, "correct horse battery staple")
	for b.Loop() {
		if ok, _, err := h.Verify(hash, "correct horse battery staple"); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

// BenchmarkVerifyBcryptImported is the sign-in cost of a user imported from
// Synapse before the first sign-in upgrades the hash: bcrypt at Synapse's
// default cost 12, with a pepper (compare BenchmarkVerifyDefault, argon2id).
func BenchmarkVerifyBcryptImported(b *testing.B) {
	const pw, pepper = "correct horse battery staple", "pepper"
	hash, err := bcrypt.GenerateFromPassword([]byte(pw+pepper), 12)
	if err != nil {
		b.Fatal(err)
	}
	h := New(DefaultParams()).WithBcryptPepper(pepper)
	for b.Loop() {
		if ok, _, err := h.Verify(string(hash), pw); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

// Synapse hashes NFKC(password) + pepper, cut to 72 bytes: hashes made so
// verify with the pepper given, and not without it.
func TestVerifyBcryptWithSynapsesPepper(t *testing.T) {
	const pepper = "s3cret-pepper"
	synapse := func(pw string) string {
		in := []byte(pw + pepper)
		if len(in) > 72 {
			in = in[:72]
		}
		h, err := bcrypt.GenerateFromPassword(in, bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	peppered := New(fast).WithBcryptPepper(pepper)
	plain := New(fast)
	long := strings.Repeat("y", 80) // the pepper falls beyond 72 bytes
	tests := []struct {
		name, hash, password string
		hasher               *Hasher
		want                 bool
	}{
		{"peppered hash, pepper given", synapse("correct horse"), "correct horse", peppered, true},
		{"peppered hash, no pepper configured", synapse("correct horse"), "correct horse", plain, false},
		{"peppered hash, wrong password", synapse("correct horse"), "correct hors", peppered, false},
		{"NFKC: the ligature fi is fi", synapse("fish"), "\ufb01sh", peppered, true},
		{"NFKC: the Ohm sign is omega", synapse("\u03a9mega"), "\u2126mega", peppered, true},
		{"past 72 bytes the pepper does not count", synapse(long), long, plain, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := tt.hasher.Verify(tt.hash, tt.password)
			if err != nil || ok != tt.want || rehash != tt.want {
				t.Errorf("Verify = %v, %v, %v; want %v, %v, nil", ok, rehash, err, tt.want, tt.want)
			}
		})
	}
}

// BenchmarkVerifyPadded is the sign-in cost of an argon2id user on a server
// that also holds users imported from Synapse (bcrypt cost 12): padded to
// bcrypt's cost, so the time tells no scheme (compare the two above).
func BenchmarkVerifyPadded(b *testing.B) {
	h := New(DefaultParams())
	if err := h.Calibrate(SynapseBcryptCost); err != nil {
		b.Fatal(err)
	}
	hash := mustHash(b, h, "correct horse battery staple")
	for b.Loop() {
		if ok, _, err := h.Verify(hash, "correct horse battery staple"); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
	b.ReportMetric(float64(h.PaddedTo().Microseconds())/1000, "ms-padded-to")
}
