package host

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// ops.gc_percent sets the collector's target, unless it is 0 or GOGC is in
// the environment; with GOGC set, Gatehouse does not manage the target
// (adaptGC does not run).
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	noEnv := func(string) (string, bool) { return "", false }
	withGOGC := func(k string) (string, bool) { return "50", k == "GOGC" }
	tests := []struct {
		name    string
		percent int
		env     func(string) (string, bool)
		want    int  // the runtime's target afterwards
		managed bool // adaptGC may run
	}{
		{"configured", 250, noEnv, 250, true},
		{"zero keeps the runtime's", 0, noEnv, 100, true},
		{"GOGC wins", 250, withGOGC, 100, false},
		{"GOGC alone", 0, withGOGC, 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			base, managed := tuneGC(tt.percent, tt.env, quiet)
			if got := debug.SetGCPercent(100); got != tt.want {
				t.Fatalf("GC percent %d, want %d", got, tt.want)
			}
			if managed != tt.managed || (managed && base != tt.want) {
				t.Fatalf("tuneGC = %d, %v; want %d, %v", base, managed, tt.want, tt.managed)
			}
		})
	}
}

// Under load the target allows what the process allocates in gcEvery, at
// most the headroom, never under the base.
func TestGCTarget(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name     string
		base     int
		live     uint64
		rate     float64 // bytes a second
		headroom uint64
		want     int
	}{
		{"at rest: the base", 100, 20 * mib, 0, 256 * mib, 100},
		{"slow allocation: the base", 100, 20 * mib, 10 * mib, 256 * mib, 100},
		{"fast: half a second's allocation", 100, 20 * mib, 200 * mib, 256 * mib, 500},
		{"faster: bounded by the headroom", 100, 20 * mib, 2000 * mib, 256 * mib, 1280},
		{"a large live heap: the base already allows more", 100, 1000 * mib, 200 * mib, 256 * mib, 100},
		{"a configured base wins when higher", 800, 20 * mib, 200 * mib, 256 * mib, 800},
		{"before the first collection: the base", 100, 0, 200 * mib, 256 * mib, 100},
		{"a tiny heap: bounded", 100, 1024, 200 * mib, 256 * mib, maxGCPercent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gcTarget(tt.base, tt.live, tt.rate, tt.headroom); got != tt.want {
				t.Fatalf("gcTarget = %d, want %d", got, tt.want)
			}
		})
	}
}

// adaptGC, on the real runtime: allocating fast raises the collector's
// target, which comes back to the base at rest and when adaptGC ends; a
// headroom of 0 leaves the runtime's target alone (GOGC in the environment
// keeps adaptGC from running at all: TestTuneGC).
func TestAdaptGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	percent := func() int { // read, not set and restored: adaptGC sets it meanwhile
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64())
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); adaptGC(ctx, 100, 256, quiet) }()

	// Allocate about 400 MiB a second until the target rises.
	var sink [][]byte
	deadline := time.Now().Add(10 * time.Second)
	for percent() <= 100 {
		if time.Now().After(deadline) {
			t.Fatal("allocating fast for 10 s did not raise the target")
		}
		for range 100 {
			sink = append(sink, make([]byte, 40<<10))
		}
		if len(sink) > 2000 {
			sink = sink[:0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	raised := percent()
	sink = nil
	deadline = time.Now().Add(10 * time.Second)
	for percent() != 100 {
		if time.Now().After(deadline) {
			t.Fatalf("at rest the target stayed at %d, raised from 100 to %d", percent(), raised)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("raised to %d under load, back to 100 at rest", raised)

	// Raised again, then adaptGC ends: the base is restored.
	debug.SetGCPercent(700)
	cancel()
	<-done
	if p := percent(); p != 100 {
		t.Fatalf("after adaptGC ended the target is %d, want 100", p)
	}

	debug.SetGCPercent(300)
	adaptGC(t.Context(), 100, 0, quiet) // returns at once, or the test times out
	if p := percent(); p != 300 {
		t.Fatalf("headroom 0: the target is %d, want 300 untouched", p)
	}
}

// The headroom's bound: GOMEMLIMIT when set, else the container's cgroup
// limit (v2, then v1), else none.
func TestMemoryCeiling(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(name string) ([]byte, error) {
			if v, ok := m[name]; ok {
				return []byte(v), nil
			}
			return nil, os.ErrNotExist
		}
	}
	v2, v1 := cgroupMemoryFiles[0], cgroupMemoryFiles[1]
	tests := []struct {
		name     string
		memLimit int64 // GOMEMLIMIT; 0: unset
		files    map[string]string
		want     uint64
	}{
		{"nothing", 0, nil, 0},
		{"cgroup v2", 0, map[string]string{v2: "268435456\n"}, 256 << 20},
		{"cgroup v2 unlimited", 0, map[string]string{v2: "max\n"}, 0},
		{"cgroup v1", 0, map[string]string{v1: "536870912\n"}, 512 << 20},
		{"cgroup v1 unlimited", 0, map[string]string{v1: "9223372036854771712\n"}, 0},
		{"GOMEMLIMIT wins", 100 << 20, map[string]string{v2: "268435456\n"}, 100 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.memLimit > 0 {
				before := debug.SetMemoryLimit(tt.memLimit)
				defer debug.SetMemoryLimit(before)
			}
			if got := memoryCeiling(files(tt.files)); got != tt.want {
				t.Fatalf("memoryCeiling = %d, want %d", got, tt.want)
			}
		})
	}
}
