package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ErrMalformedHash is the cause of Verify's errors: the stored hash cannot be
// parsed, uses an unknown scheme, or asks for parameters out of bounds.
var ErrMalformedHash = errors.New("malformed password hash")

// Sizes of the salts and keys Hash produces, and the ranges Verify accepts.
const (
	saltLength    = 16
	keyLength     = 32
	minSaltLength = 8
	maxSaltLength = 64
	minKeyLength  = 16
	maxKeyLength  = 64
)

// argon2idPrefix starts every argon2id PHC string.
const argon2idPrefix = "$argon2id$"

// b64 is the PHC strings' base64: standard alphabet, no padding, canonical.
var b64 = base64.RawStdEncoding.Strict()

// encodeArgon2id formats an argon2id hash as a PHC string:
// $argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<key>.
func encodeArgon2id(p Params, salt, key []byte) string {
	return fmt.Sprintf("%sv=%d$m=%d,t=%d,p=%d$%s$%s", argon2idPrefix, argon2.Version,
		p.MemoryKiB, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// parseArgon2id parses an argon2id PHC string of version 19 whose parameters,
// salt and key lengths are within bounds.
func parseArgon2id(s string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, malformed("argon2id hash does not have 5 $-separated fields")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, malformed("argon2id hash is not version %d", argon2.Version)
	}
	if p, err = parseParams(parts[3]); err != nil {
		return Params{}, nil, nil, err
	}
	if err := p.Validate(); err != nil {
		return Params{}, nil, nil, malformed("%v", err)
	}
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return Params{}, nil, nil, malformed("argon2id salt is not base64")
	}
	if key, err = b64.DecodeString(parts[5]); err != nil {
		return Params{}, nil, nil, malformed("argon2id key is not base64")
	}
	if len(salt) < minSaltLength || len(salt) > maxSaltLength {
		return Params{}, nil, nil, malformed("argon2id salt of %d bytes outside %d..%d",
			len(salt), minSaltLength, maxSaltLength)
	}
	if len(key) < minKeyLength || len(key) > maxKeyLength {
		return Params{}, nil, nil, malformed("argon2id key of %d bytes outside %d..%d",
			len(key), minKeyLength, maxKeyLength)
	}
	return p, salt, key, nil
}

// parseParams parses "m=<KiB>,t=<iterations>,p=<lanes>", in that order.
func parseParams(s string) (Params, error) {
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return Params{}, malformed("argon2id parameters are not m=,t=,p=")
	}
	m, err := parseParam(fields[0], "m", 32)
	if err != nil {
		return Params{}, err
	}
	t, err := parseParam(fields[1], "t", 32)
	if err != nil {
		return Params{}, err
	}
	p, err := parseParam(fields[2], "p", 8)
	if err != nil {
		return Params{}, err
	}
	return Params{MemoryKiB: uint32(m), Iterations: uint32(t), Parallelism: uint8(p)}, nil
}

// parseParam parses "<name>=<decimal>" into an unsigned integer of bits bits,
// accepting only the canonical decimal form.
func parseParam(field, name string, bits int) (uint64, error) {
	v, ok := strings.CutPrefix(field, name+"=")
	if !ok {
		return 0, malformed("argon2id parameter %q missing", name)
	}
	n, err := strconv.ParseUint(v, 10, bits)
	if err != nil || strconv.FormatUint(n, 10) != v {
		return 0, malformed("argon2id parameter %q is not a %d-bit decimal", name, bits)
	}
	return n, nil
}

// malformed returns an error wrapping ErrMalformedHash with detail. The detail
// never quotes the hash itself, which is secret.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
}
