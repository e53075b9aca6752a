package synapsetest

import (
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"gatehouse.dev/migrate/synapse"
)

// The generator hashes as Synapse does, which is what verifying an imported
// hash must repeat: NFKC, the pepper appended, the first 72 bytes, bcrypt.
func TestHashPasswordIsSynapses(t *testing.T) {
	const pepper = "pepper"
	tests := []struct {
		name, password, typed string
		pepper                string
		ok                    bool
	}{
		{"plain", "correct horse", "correct horse", pepper, true},
		{"NFKC: the ligature and the Ohm sign", "\ufb01ne \u2126", "fine \u03a9", pepper, true},
		{"NFKC the other way round", "fine \u03a9", "\ufb01ne \u2126", pepper, true},
		{"without the pepper", "correct horse", "correct horse", "", false},
		{"past 72 bytes nothing counts, the pepper neither", strings.Repeat("x", 72) + "a", strings.Repeat("x", 72) + "b", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash, err := HashPassword(tt.password, pepper, bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(hash, "$2b$04$") {
				t.Fatalf("hash %q", hash)
			}
			typed := []byte(normalize(tt.typed) + tt.pepper)
			if len(tt.password) > 72 {
				typed = []byte(tt.typed) // the pepper falls past the cut
			}
			err = bcrypt.CompareHashAndPassword([]byte(hash), typed)
			if (err == nil) != tt.ok {
				t.Errorf("verify: %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// Generated tokens have Synapse's shapes.
func TestGeneratedTokens(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, lp := range []string{"alice", "Zoë", "o'brien", "_irc_x:irc.example"} {
		if f := synapse.ClassifyToken(synapse.Token(SynapseToken(r, "syt", lp))); f != synapse.FormatAccess {
			t.Errorf("syt token of %q: %v", lp, f)
		}
		if f := synapse.ClassifyToken(synapse.Token(SynapseToken(r, "syr", lp))); f != synapse.FormatRefresh {
			t.Errorf("syr token of %q: %v", lp, f)
		}
		if f := synapse.ClassifyToken(synapse.Token(Macaroon(r, "example.org:8448", "@"+lp+":example.org:8448"))); f != synapse.FormatMacaroon {
			t.Errorf("macaroon of %q: %v", lp, f)
		}
	}
	if id := crossSigningID(r); len(id) != 43 {
		t.Errorf("cross-signing device ID %q", id)
	}
}
