package projection_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
)

// RunsBy hands over each maximal run of one kind, in order and whole; RunsOf
// (built on it) sends bulk runs to many and every other record to one; an
// error stops both.
func TestRunsByAndRunsOf(t *testing.T) {
	kinds := func(s string) []eventlog.Record { // one record per letter, its kind the letter
		recs := make([]eventlog.Record, len(s))
		for i, c := range s {
			recs[i] = eventlog.Record{Seq: uint64(i + 1), Subject: string(c)}
		}
		return recs
	}
	kind := func(rec eventlog.Record) string { return rec.Subject }
	tests := []struct {
		name, in, by, of string
	}{
		{"empty", "", "", ""},
		{"one kind", "aaa", "a3", "many3"},
		{"alternating", "abab", "a1 b1 a1 b1", "many1 one many1 one"},
		{"runs", "aabbbca", "a2 b3 c1 a1", "many2 one one one one many1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var by []string
			if err := projection.RunsBy(kinds(tt.in), kind, func(k string, run []eventlog.Record) error {
				for _, rec := range run {
					if rec.Subject != k {
						t.Fatalf("a %s in a run of %s", rec.Subject, k)
					}
				}
				by = append(by, fmt.Sprintf("%s%d", k, len(run)))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(by, " "); got != tt.by {
				t.Fatalf("RunsBy: %q, want %q", got, tt.by)
			}
			var of []string
			var seqs []uint64
			if err := projection.RunsOf(kinds(tt.in), func(rec eventlog.Record) bool { return rec.Subject == "a" },
				func(run []eventlog.Record) error {
					of = append(of, fmt.Sprintf("many%d", len(run)))
					for _, rec := range run {
						seqs = append(seqs, rec.Seq)
					}
					return nil
				},
				func(rec eventlog.Record) error { of, seqs = append(of, "one"), append(seqs, rec.Seq); return nil },
			); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(of, " "); got != tt.of {
				t.Fatalf("RunsOf: %q, want %q", got, tt.of)
			}
			for i, seq := range seqs {
				if seq != uint64(i+1) {
					t.Fatalf("RunsOf handed records out of order: %v", seqs)
				}
			}
		})
	}
	stop := errors.New("stop")
	calls := 0
	err := projection.RunsBy(kinds("abc"), kind, func(string, []eventlog.Record) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("after an error: %v, %d calls", err, calls)
	}
}
