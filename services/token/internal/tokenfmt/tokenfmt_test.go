package tokenfmt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
)

// allKinds lists every defined Kind.
var allKinds = []Kind{AccessToken, RefreshToken, CompatAccessToken, CompatRefreshToken, PersonalToken}

// testKey returns a MAC key of n bytes filled with b.
func testKey(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// newTestMinter returns a Minter over the given keys or fails the test.
func newTestMinter(t testing.TB, keys ...[]byte) *Minter {
	t.Helper()
	m, err := NewMinter(keys)
	if err != nil {
		t.Fatalf("NewMinter: %v", err)
	}
	return m
}

func TestNewMinterKeys(t *testing.T) {
	tests := []struct {
		name    string
		keys    [][]byte
		wantErr bool
	}{
		{"one 32-byte key", [][]byte{testKey(1, 32)}, false},
		{"two keys", [][]byte{testKey(1, 64), testKey(2, 32)}, false},
		{"no keys", nil, true},
		{"short key", [][]byte{testKey(1, 31)}, true},
		{"short second key", [][]byte{testKey(1, 32), testKey(2, 16)}, true},
		{"empty key", [][]byte{{}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMinter(tt.keys)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewMinter err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewFormat(t *testing.T) {
	m := newTestMinter(t, testKey(1, 32))
	for _, kind := range allKinds {
		t.Run(kind.String(), func(t *testing.T) {
			re := regexp.MustCompile(`^` + kind.Prefix() + `_[A-Za-z0-9]{30}_[A-Za-z0-9]{6}$`)
			tok := m.New(kind)
			if !re.MatchString(tok) {
				t.Fatalf("token %q does not match %s", tok, re)
			}
			got, err := m.Parse(tok)
			if err != nil || got != kind {
				t.Fatalf("Parse(%q) = %v, %v; want %v, nil", tok, got, err, kind)
			}
			if again := m.New(kind); again == tok {
				t.Fatalf("two tokens are equal: %q", tok)
			}
		})
	}
}

func TestKindNames(t *testing.T) {
	tests := []struct {
		kind         Kind
		prefix, name string
		valid        bool
	}{
		{AccessToken, "mat", "access_token", true},
		{RefreshToken, "mar", "refresh_token", true},
		{CompatAccessToken, "mct", "compat_access_token", true},
		{CompatRefreshToken, "mcr", "compat_refresh_token", true},
		{PersonalToken, "mpt", "personal_token", true},
		{0, "", "Kind(0)", false},
		{99, "", "Kind(99)", false},
	}
	for _, tt := range tests {
		if tt.kind.Prefix() != tt.prefix || tt.kind.String() != tt.name || tt.kind.Valid() != tt.valid {
			t.Errorf("Kind %d = (%q, %q, %v), want (%q, %q, %v)", int(tt.kind),
				tt.kind.Prefix(), tt.kind.String(), tt.kind.Valid(), tt.prefix, tt.name, tt.valid)
		}
		if tt.valid && kindOfPrefix(tt.prefix) != tt.kind {
			t.Errorf("kindOfPrefix(%q) = %v, want %v", tt.prefix, kindOfPrefix(tt.prefix), tt.kind)
		}
	}
}

func TestNewInvalidKindPanics(t *testing.T) {
	m := newTestMinter(t, testKey(1, 32))
	defer func() {
		if recover() == nil {
			t.Fatal("New(0) did not panic")
		}
	}()
	m.New(0)
}

func TestParseRejects(t *testing.T) {
	m := newTestMinter(t, testKey(1, 32))
	good := m.New(AccessToken)
	random, checksum := good[4:34], good[35:]
	// flip changes the character at i to another alphanumeric one.
	flip := func(s string, i int) string {
		c := byte('a')
		if s[i] == 'a' {
			c = 'b'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	// relabel moves good's random part and checksum under another prefix.
	relabel := "mar_" + random + "_" + checksum
	foreign := newTestMinter(t, testKey(9, 32)).New(AccessToken)

	tests := []struct {
		name  string
		token string
		want  reason
	}{
		{"empty", "", errShape},
		{"no separators", strings.Repeat("a", 41), errShape},
		{"one separator", "mat_" + random + checksum, errShape},
		{"three separators", "mat_" + random + "_" + checksum + "_x", errShape},
		{"too long", good + strings.Repeat("a", MaxLen-len(good)+1), errTooLong},
		{"huge", strings.Repeat("mat_", 1<<20), errTooLong},
		{"unknown prefix", "mxx_" + random + "_" + checksum, errPrefix},
		{"upper-case prefix", "MAT_" + random + "_" + checksum, errPrefix},
		{"synapse prefix", "syt_" + random + "_" + checksum, errPrefix},
		{"empty prefix", "_" + random + "_" + checksum, errPrefix},
		{"short random", "mat_" + random[1:] + "_" + checksum, errLength},
		{"long random", "mat_" + random + "a_" + checksum, errLength},
		{"short checksum", "mat_" + random + "_" + checksum[1:], errLength},
		{"long checksum", good + "0", errLength},
		{"dash in random", "mat_" + random[:29] + "-_" + checksum, errChars},
		{"non-ASCII in random", "mat_" + random[:28] + "é_" + checksum, errChars},
		{"NUL in checksum", "mat_" + random + "_" + checksum[:5] + "\x00", errChars},
		{"space in checksum", "mat_" + random + "_" + checksum[:5] + " ", errChars},
		{"changed random", flip(good, 10), errChecksum},
		{"changed checksum", flip(good, len(good)-1), errChecksum},
		{"relabelled kind", relabel, errChecksum},
		{"other server's key", foreign, errChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, err := m.Parse(tt.token)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, nil; want error", tt.token, kind)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) err = %v, want reason %q", tt.token, err, tt.want)
			}
			if errs.KindOf(err) != errs.KindUnauthenticated || errs.PublicMessage(err) != "invalid token" {
				t.Fatalf("err kind %v message %q, want unauthenticated \"invalid token\"",
					errs.KindOf(err), errs.PublicMessage(err))
			}
			if kind != 0 {
				t.Fatalf("Parse returned kind %v with an error", kind)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	oldKey, newKey, otherKey := testKey(1, 32), testKey(2, 32), testKey(3, 32)
	before := newTestMinter(t, oldKey)
	during := newTestMinter(t, newKey, oldKey)
	after := newTestMinter(t, newKey)
	unrelated := newTestMinter(t, otherKey)

	oldTok := before.New(RefreshToken)
	newTok := during.New(RefreshToken)
	tests := []struct {
		name   string
		minter *Minter
		token  string
		ok     bool
	}{
		{"old token, old minter", before, oldTok, true},
		{"old token, rotating minter", during, oldTok, true},
		{"new token, rotating minter", during, newTok, true},
		{"new token, old minter", before, newTok, false},
		{"new token, rotated minter", after, newTok, true},
		{"old token, rotated minter", after, oldTok, false},
		{"old token, unrelated minter", unrelated, oldTok, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.minter.Parse(tt.token)
			if (err == nil) != tt.ok {
				t.Fatalf("Parse err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestMinterCopiesKeys(t *testing.T) {
	key := testKey(1, 32)
	m := newTestMinter(t, key)
	tok := m.New(AccessToken)
	key[0] = 2
	if _, err := m.Parse(tok); err != nil {
		t.Fatalf("Parse after caller changed its key slice: %v", err)
	}
}

// TestForgeriesFail checks that well-shaped tokens with a guessed checksum
// practically never parse: with a 6-character base62 MAC the expected number
// of successes among 200,000 guesses is 3.5e-6.
func TestForgeriesFail(t *testing.T) {
	m := newTestMinter(t, testKey(1, 32))
	for i := range 200_000 {
		tok := allKinds[i%len(allKinds)].Prefix() + "_" + ids.Token(randomLen) + "_" + ids.Token(checksumLen)
		if kind, err := m.Parse(tok); err == nil {
			t.Fatalf("forged token %q parsed as %v", tok, kind)
		}
	}
}

func TestHash(t *testing.T) {
	tests := []struct {
		token string
		hex   string
	}{
		// SHA-256 test vectors from FIPS 180-2.
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tt := range tests {
		if got := HashString(tt.token); got != tt.hex {
			t.Errorf("HashString(%q) = %s, want %s", tt.token, got, tt.hex)
		}
		h := Hash(tt.token)
		if got := hex.EncodeToString(h[:]); got != tt.hex {
			t.Errorf("Hash(%q) = %s, want %s", tt.token, got, tt.hex)
		}
	}
}

// mintFixed returns the token m would mint for kind with the given random
// part, so that fuzz seeds are the same in every fuzzing process.
func mintFixed(m *Minter, kind Kind, random string) string {
	signed := []byte(kind.Prefix() + "_" + random)
	return string(appendChecksum(signed, m.keys[0], signed))
}

// FuzzParse checks that Parse never panics, that anything it accepts is a
// token the minter actually minted (of the kind its prefix names), and that
// parsing is deterministic.
func FuzzParse(f *testing.F) {
	m := newTestMinter(f, testKey(7, 32))
	minted := make(map[string]Kind)
	for i, kind := range allKinds {
		tok := mintFixed(m, kind, strings.Repeat(string(base62[i]), 15)+strings.Repeat("Z", 15))
		if got, err := m.Parse(tok); err != nil || got != kind {
			f.Fatalf("Parse(mintFixed %v) = %v, %v", kind, got, err)
		}
		minted[tok] = kind
		f.Add(tok)
		f.Add(tok[:len(tok)-1])
		f.Add(tok + "_")
	}
	for _, s := range []string{"", "_", "__", "mat__", "mat_" + strings.Repeat("a", 30) + "_aaaaaa", "\xff\xfe", strings.Repeat("_", 101)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, err := m.Parse(s)
		kind2, err2 := m.Parse(s)
		if kind != kind2 || (err == nil) != (err2 == nil) {
			t.Fatalf("Parse(%q) not deterministic: (%v, %v) then (%v, %v)", s, kind, err, kind2, err2)
		}
		if err != nil {
			if kind != 0 || errs.KindOf(err) != errs.KindUnauthenticated {
				t.Fatalf("Parse(%q) = %v, %v (kind %v)", s, kind, err, errs.KindOf(err))
			}
			return
		}
		if want, ok := minted[s]; !ok || want != kind {
			t.Fatalf("Parse accepted %q as %v, which was never minted", s, kind)
		}
	})
}

func BenchmarkNew(b *testing.B) {
	m := newTestMinter(b, testKey(1, 32))
	for b.Loop() {
		m.New(AccessToken)
	}
}

func BenchmarkParse(b *testing.B) {
	m := newTestMinter(b, testKey(1, 32), testKey(2, 32))
	tok := m.New(AccessToken)
	b.Run("valid", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Parse(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	forged := tok[:len(tok)-1] + "!"
	b.Run("bad characters", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Parse(forged); err == nil {
				b.Fatal("forged token parsed")
			}
		}
	})
	wrongMAC := tok[:len(tok)-6] + "000000"
	b.Run("bad MAC, two keys", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Parse(wrongMAC); err == nil {
				b.Fatal("forged token parsed")
			}
		}
	})
}

// HMACs reused across calls and goroutines give every token its own
// checksum: each one minted verifies under the rotating minter, and the same
// token with its checksum's last character changed never does.
func TestReusedMACsConcurrently(t *testing.T) {
	during := newTestMinter(t, testKey(2, 32), testKey(1, 32))
	before := newTestMinter(t, testKey(1, 32))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				m := during
				if (g+i)%2 == 0 {
					m = before
				}
				tok := m.New(allKinds[i%len(allKinds)])
				if _, err := during.Parse(tok); err != nil {
					t.Errorf("minted %q does not parse: %v", tok, err)
					return
				}
				last := tok[len(tok)-1]
				bad := tok[:len(tok)-1] + string(rune('A'+(last-'A'+1)%26))
				if last < 'A' || last > 'Z' {
					bad = tok[:len(tok)-1] + "A"
				}
				if _, err := during.Parse(bad); err == nil && bad != tok {
					t.Errorf("%q with its checksum changed parses", bad)
					return
				}
			}
		})
	}
	wg.Wait()
}
