// Package scope provides OAuth 2.0 scope sets (RFC 6749 §3.3) and their
// Matrix reading (MSC2967): which client-server API access, which device, and
// which other recognised scopes a set asks for.
//
// Parsing is strict: tokens are separated by single spaces, with nothing
// before the first or after the last. Interpretation admits only scopes
// Gatehouse understands; whether a given client or user may be granted them
// (urn:synapse:admin:* in particular) is decided elsewhere.
package scope

import (
	"slices"
	"strings"

	"gatehouse.dev/platform/oautherr"
)

// MaxLength is the longest scope string accepted, in bytes.
const MaxLength = 2048

// Set is a set of scope tokens, kept sorted and without duplicates. The zero
// Set is empty.
type Set struct {
	tokens []string
}

// Parse parses a space-delimited scope string into a Set, collapsing
// duplicates. The empty string gives the empty Set; use Required where a
// scope must be present. Errors are *oautherr.Error with code invalid_scope.
func Parse(s string) (Set, error) {
	if len(s) > MaxLength {
		return Set{}, invalidf("scope is longer than %d bytes", MaxLength)
	}
	if s == "" {
		return Set{}, nil
	}
	tokens := strings.Split(s, " ")
	for _, tok := range tokens {
		if err := checkToken(tok); err != nil {
			return Set{}, err
		}
	}
	return newSet(tokens), nil
}

// Required parses s as Parse does but rejects the empty set.
func Required(s string) (Set, error) {
	set, err := Parse(s)
	if err != nil {
		return Set{}, err
	}
	if set.IsEmpty() {
		return Set{}, invalidf("scope is required")
	}
	return set, nil
}

// New returns the Set of the given tokens, each of which must be a valid
// scope token.
func New(tokens ...string) (Set, error) {
	for _, tok := range tokens {
		if err := checkToken(tok); err != nil {
			return Set{}, err
		}
	}
	return newSet(tokens), nil
}

// Has reports whether tok is in s.
func (s Set) Has(tok string) bool {
	_, found := slices.BinarySearch(s.tokens, tok)
	return found
}

// IsEmpty reports whether s has no tokens.
func (s Set) IsEmpty() bool { return len(s.tokens) == 0 }

// Len returns the number of tokens in s.
func (s Set) Len() int { return len(s.tokens) }

// Tokens returns a sorted copy of the tokens in s.
func (s Set) Tokens() []string { return slices.Clone(s.tokens) }

// Equal reports whether s and t hold the same tokens.
func (s Set) Equal(t Set) bool { return slices.Equal(s.tokens, t.tokens) }

// with returns s plus the given tokens, which must be valid scope tokens.
func (s Set) with(tokens ...string) Set {
	return newSet(append(slices.Clone(s.tokens), tokens...))
}

// String returns the tokens of s sorted and joined by single spaces.
func (s Set) String() string { return strings.Join(s.tokens, " ") }

// newSet returns the Set of tokens, sorting and removing duplicates in place.
func newSet(tokens []string) Set {
	slices.Sort(tokens)
	tokens = slices.Compact(tokens)
	if len(tokens) == 0 {
		return Set{}
	}
	return Set{tokens: slices.Clip(tokens)}
}

// checkToken validates tok against RFC 6749 §3.3:
// scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), that is printable ASCII
// except space, '"' and '\'.
func checkToken(tok string) error {
	if tok == "" {
		return invalidf("scope has an empty token (scope tokens are separated by single spaces)")
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return invalidf("scope token %q contains the character %q, which RFC 6749 does not allow", tok, c)
		}
	}
	return nil
}

// invalidf returns an invalid_scope error with a formatted description.
func invalidf(format string, args ...any) error {
	return oautherr.Errorf(oautherr.InvalidScope, format, args...)
}
