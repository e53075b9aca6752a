package ids_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"gatehouse.dev/platform/ids"
)

func TestNew(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	id := ids.New()
	after := time.Now()

	if !ids.Valid(id) {
		t.Fatalf("New() = %q is not Valid", id)
	}
	if id != strings.ToUpper(id) {
		t.Errorf("New() = %q is not upper-case", id)
	}
	ts := ulid.Time(ulid.MustParse(id).Time())
	if ts.Before(before) || ts.After(after) {
		t.Errorf("timestamp %v not within [%v, %v]", ts, before, after)
	}
}

func TestNewUniqueConcurrently(t *testing.T) {
	const workers, each = 8, 1000
	var mu sync.Mutex
	seen := make(map[string]bool, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			local := make([]string, each)
			for i := range local {
				local[i] = ids.New()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if seen[id] {
					t.Errorf("duplicate id %s", id)
				}
				seen[id] = true
			}
		})
	}
	wg.Wait()
}

func TestNewSortsByTime(t *testing.T) {
	first := ids.New()
	time.Sleep(2 * time.Millisecond)
	second := ids.New()
	if first >= second {
		t.Errorf("%s generated before %s but does not sort before it", first, second)
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
		{"01arz3ndektsv4rrffq69g5fav", false}, // lower-case is not canonical
		{"01ARZ3NDEKTSV4RRFFQ69G5FA", false},  // too short
		{"01ARZ3NDEKTSV4RRFFQ69G5FAVX", false},
		{"01ARZ3NDEKTSV4RRFFQ69G5FAU", false}, // U is not Crockford base32
		{"81ARZ3NDEKTSV4RRFFQ69G5FAV", false}, // timestamp overflow
		{"", false},
	}
	for _, tt := range tests {
		if got := ids.Valid(tt.in); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestToken(t *testing.T) {
	for _, n := range []int{-1, 0, 1, 32, 200} {
		tok := ids.Token(n)
		want := max(n, 0)
		if len(tok) != want {
			t.Errorf("len(Token(%d)) = %d, want %d", n, len(tok), want)
		}
		for _, c := range tok {
			if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
				t.Errorf("Token(%d) = %q has non-alphanumeric %q", n, tok, c)
			}
		}
	}
}

func TestTokenUsesWholeAlphabetEvenly(t *testing.T) {
	counts := map[rune]int{}
	const total = 62 * 1000
	for _, c := range ids.Token(total) {
		counts[c]++
	}
	if len(counts) != 62 {
		t.Fatalf("saw %d distinct characters, want 62", len(counts))
	}
	// Each character expects 1000 draws (sd ≈ 31); 800..1200 is > 6 sd wide.
	for c, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("character %q drawn %d times, want about 1000", c, n)
		}
	}
	if a, b := ids.Token(32), ids.Token(32); a == b {
		t.Errorf("two tokens are equal: %q", a)
	}
}

func TestDerive(t *testing.T) {
	at := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	a := ids.Derive(at, "user", "@alice:example.org")
	if !ids.Valid(a) {
		t.Fatalf("Derive gave %q, not a valid ULID", a)
	}
	if b := ids.Derive(at, "user", "@alice:example.org"); b != a {
		t.Errorf("Derive is not a function of its arguments: %q then %q", a, b)
	}
	for _, other := range []string{ids.Derive(at, "user", "@bob:example.org"), ids.Derive(at.Add(time.Millisecond), "user", "@alice:example.org"), ids.Derive(at, "user@alice", ":example.org")} {
		if other == a {
			t.Errorf("different arguments gave the same id %q", a)
		}
	}
	if got := ulid.MustParse(a).Time(); got != uint64(at.UnixMilli()) {
		t.Errorf("timestamp %d, want %d", got, at.UnixMilli())
	}
}
