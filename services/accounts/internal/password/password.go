// Package password hashes and verifies passwords.
//
// New hashes are argon2id in the PHC string format,
// $argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<key>, with a 16-byte
// random salt and a 32-byte key. Verify also accepts argon2id hashes with other
// parameters (within the bounds of Params.Validate) and bcrypt hashes
// ($2a$, $2b$, $2y$) imported from Synapse, and reports when a hash should be
// replaced by one in the current scheme after a successful login.
//
// Synapse's bcrypt hashes are of the password normalised to NFKC, with
// Synapse's optional pepper (password_config.pepper) appended, cut to 72
// bytes: WithBcryptPepper gives the pepper, and Verify repeats those steps.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"

	"gatehouse.dev/platform/errs"
)

// MaxBcryptCost is the highest bcrypt cost Verify accepts (2^16 rounds,
// seconds of CPU); Synapse uses 12.
const MaxBcryptCost = 16

// bcryptLength is the length of every bcrypt hash: "$2b$", two cost digits,
// "$", 22 characters of salt and 31 of hash.
const bcryptLength = 60

// bcryptAlphabet is the base64 alphabet of bcrypt's salt and hash.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Hasher hashes passwords with argon2id and verifies stored hashes. It is
// safe for concurrent use.
type Hasher struct {
	params Params
	// dummy is an argon2id hash with params, verified by VerifyDummy.
	dummy string
	// pepper is appended to passwords verified against bcrypt hashes.
	pepper string
	// pace pads every verification to the slowest scheme's cost (pace.go);
	// shared by the Hashers WithBcryptPepper derives.
	pace *pacer
}

// WithBcryptPepper returns a Hasher that verifies bcrypt hashes made with
// pepper appended to the password (Synapse's password_config.pepper).
func (h *Hasher) WithBcryptPepper(pepper string) *Hasher {
	c := *h
	c.pepper = pepper
	return &c
}

// New returns a Hasher producing argon2id hashes with p; the zero Params
// means DefaultParams. It panics if other Params fail Params.Validate:
// parameters are configuration, to be validated when loaded.
func New(p Params) *Hasher {
	if p == (Params{}) {
		p = DefaultParams()
	}
	if err := p.Validate(); err != nil {
		panic("password: " + err.Error())
	}
	// Verification costs the same whether or not the key matches, so the
	// dummy needs no real key; zero bytes of the right lengths will do.
	dummy := encodeArgon2id(p, make([]byte, saltLength), make([]byte, keyLength))
	return &Hasher{params: p, dummy: dummy, pace: newPacer()}
}

// Hash returns the argon2id PHC string of password with a fresh random salt.
func (h *Hasher) Hash(password string) (string, error) {
	salt := make([]byte, saltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", errs.Internalf("hash password: read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt,
		h.params.Iterations, h.params.MemoryKiB, h.params.Parallelism, keyLength)
	return encodeArgon2id(h.params, salt, key), nil
}

// Verify reports whether password matches the stored hash and, for a match,
// whether the hash should be replaced by Hash(password) because it is not
// argon2id with this Hasher's parameters and sizes. A mismatch is not an
// error; err (wrapping ErrMalformedHash, errs.KindInternal) is only for
// hashes that cannot be verified at all. Whatever the scheme, it takes as
// long as the slowest scheme verified recently (see pace.go).
func (h *Hasher) Verify(hash, password string) (ok, rehash bool, err error) {
	started := h.pace.now()
	scheme := ""
	switch {
	case strings.HasPrefix(hash, argon2idPrefix):
		var p Params
		ok, rehash, p, err = h.verifyArgon2id(hash, password)
		if err == nil {
			scheme = argon2idScheme(p)
		}
	case isBcrypt(hash):
		var cost int
		ok, cost, err = verifyBcrypt(hash, synapsePassword(password, h.pepper))
		rehash = true
		if err == nil {
			scheme = bcryptScheme(cost)
		}
	default:
		err = malformed("unknown hash scheme")
	}
	h.pace.finish(scheme, started)
	if err != nil {
		return false, false, errs.Internalf("verify password: %w", err)
	}
	return ok, ok && rehash, nil
}

// VerifyDummy spends as long as verifying a password against an argon2id hash
// with this Hasher's parameters, and ignores the outcome. Call it when there
// is no user to verify against, so that an unknown username takes as long to
// reject as a wrong password.
func (h *Hasher) VerifyDummy(password string) {
	// The dummy is well-formed and never matches a password; the outcome
	// does not matter either way.
	_, _, _ = h.Verify(h.dummy, password)
}

// verifyArgon2id verifies password against an argon2id PHC string.
func (h *Hasher) verifyArgon2id(hash, password string) (ok, rehash bool, p Params, err error) {
	p, salt, key, err := parseArgon2id(hash)
	if err != nil {
		return false, false, p, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(key)))
	ok = subtle.ConstantTimeCompare(got, key) == 1
	rehash = p != h.params || len(salt) != saltLength || len(key) != keyLength
	return ok, rehash, p, nil
}

// isBcrypt reports whether hash claims to be a bcrypt hash of a version
// Synapse produces.
func isBcrypt(hash string) bool {
	return strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") ||
		strings.HasPrefix(hash, "$2y$")
}

// bcryptMaxInput is how many bytes of its input bcrypt uses.
const bcryptMaxInput = 72

// synapsePassword is what Synapse gave bcrypt for password: the password
// normalised to NFKC, with the pepper appended, cut to 72 bytes.
func synapsePassword(password, pepper string) string {
	in := norm.NFKC.String(password) + pepper
	if len(in) > bcryptMaxInput {
		in = in[:bcryptMaxInput]
	}
	return in
}

// verifyBcrypt verifies password against a bcrypt hash of bounded cost,
// and returns the cost. Like the Python bcrypt Synapse used, only the first
// 72 bytes of password count.
func verifyBcrypt(hash, password string) (bool, int, error) {
	if len(hash) != bcryptLength || hash[6] != '$' || strings.Trim(hash[7:], bcryptAlphabet) != "" {
		return false, 0, malformed("bcrypt hash is not $2?$<cost>$ and 53 characters of its alphabet")
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return false, 0, malformed("bcrypt cost: %v", err)
	}
	if cost > MaxBcryptCost {
		return false, 0, malformed("bcrypt cost %d above %d", cost, MaxBcryptCost)
	}
	err = bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	switch {
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, cost, nil
	case err != nil:
		return false, cost, malformed("bcrypt: %v", err)
	}
	return true, cost, nil
}
