package host

import (
	"runtime/debug"
	"testing"
)

// ops.gc_percent sets the collector's target, unless it is 0 or GOGC is in
// the environment.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	noEnv := func(string) (string, bool) { return "", false }
	withGOGC := func(k string) (string, bool) { return "50", k == "GOGC" }
	tests := []struct {
		name    string
		percent int
		env     func(string) (string, bool)
		want    int // the runtime's target afterwards
	}{
		{"configured", 250, noEnv, 250},
		{"zero keeps the runtime's", 0, noEnv, 100},
		{"GOGC wins", 250, withGOGC, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			tuneGC(tt.percent, tt.env, quiet)
			if got := debug.SetGCPercent(100); got != tt.want {
				t.Fatalf("GC percent %d, want %d", got, tt.want)
			}
		})
	}
}
