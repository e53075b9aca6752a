package host

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// tuneGC sets the garbage collector's target to ops.gc_percent (when not 0),
// unless GOGC is in the environment (lookupEnv, as os.LookupEnv): the
// runtime read that one already, and it wins. It reports the target at
// rest (100, the runtime's, when percent is 0) and whether Gatehouse manages
// the target at all: not when GOGC is set, and then adaptGC must not run.
func tuneGC(percent int, lookupEnv func(string) (string, bool), logger *slog.Logger) (base int, managed bool) {
	if v, ok := lookupEnv("GOGC"); ok {
		if percent != 0 {
			logger.Info("GOGC is set: ops.gc_percent is ignored", "GOGC", v, "ops.gc_percent", percent)
		}
		return 0, false
	}
	if percent == 0 {
		return 100, true
	}
	debug.SetGCPercent(percent)
	return percent, true
}

// A process of Gatehouse keeps little live data (tens of MiB, more in a
// token replica's introspection index) and, under load, allocates hundreds
// of MiB a second in its HTTP and gRPC stacks. With the runtime's target of
// 100%, that is a collection every few tens of milliseconds, each marking
// the whole heap on cores the requests need: the collector was a tenth of
// the CPU of a gRPC introspection and most of its tail latency. The
// adaptive target lets the heap grow, under load only, by what the process
// allocates in gcEvery (bounded by ops.gc_headroom_mib), and falls back to
// the configured target at rest, so an idle process stays small.
const (
	// gcEvery is the time between collections aimed for under load.
	gcEvery = 500 * time.Millisecond
	// gcTick is how often the allocation rate is read.
	gcTick = 250 * time.Millisecond
	// gcWindow is how many ticks the rate is measured over (a second).
	gcWindow = 4
	// maxGCPercent bounds the adaptive target.
	maxGCPercent = 10000
)

// gcTarget is the collector's target (percent) for a process whose live
// heap is live bytes and which allocates rate bytes a second: what it
// allocates in gcEvery, at most headroom bytes, as a share of live, never
// under base.
func gcTarget(base int, live uint64, rate float64, headroom uint64) int {
	if live == 0 {
		return base
	}
	want := min(rate*gcEvery.Seconds(), float64(headroom))
	return max(base, min(int(want/float64(live)*100), maxGCPercent))
}

// gcSample is one reading of the runtime's allocation counters.
type gcSample struct {
	at     time.Time
	allocs uint64 // bytes allocated on the heap since the process started
	live   uint64 // bytes marked live by the last collection
}

// readGC reads the runtime's counters into s.
func readGC(s []metrics.Sample, now time.Time) gcSample {
	metrics.Read(s)
	return gcSample{at: now, allocs: s[0].Value.Uint64(), live: s[1].Value.Uint64()}
}

// gcSamples are the runtime metrics readGC reads, in its order.
func gcSamples() []metrics.Sample {
	return []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
}

// adaptGC runs the adaptive target until ctx ends (see above): base is the
// target at rest (tuneGC's), headroomMiB ops.gc_headroom_mib. It does
// nothing when headroomMiB is 0, and restores base when it returns. Only
// run it when tuneGC says Gatehouse manages the target.
func adaptGC(ctx context.Context, base, headroomMiB int, logger *slog.Logger) {
	if headroomMiB == 0 {
		return
	}
	headroom := uint64(headroomMiB) << 20
	if c := memoryCeiling(os.ReadFile); c > 0 && headroom > c/4 {
		// A container of 256 MiB must not be pushed over its limit by a
		// burst: the headroom stays within a quarter of it.
		headroom = c / 4
		logger.Debug("garbage collector's headroom bounded by the memory limit", "headroom_bytes", headroom, "limit_bytes", c)
	}
	samples := gcSamples()
	// The last gcWindow readings, oldest next; all the first one until a
	// second has passed.
	var window [gcWindow]gcSample
	first := readGC(samples, time.Now())
	for i := range window {
		window[i] = first
	}
	current := base
	defer func() { debug.SetGCPercent(base) }()
	tick := time.NewTicker(gcTick)
	defer tick.Stop()
	for n := 0; ; n = (n + 1) % gcWindow {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s, oldest := readGC(samples, now), window[n]
			window[n] = s
			rate := float64(s.allocs-oldest.allocs) / s.at.Sub(oldest.at).Seconds()
			want := gcTarget(base, s.live, rate, headroom)
			// A small change is not worth making: the target moves with
			// every reading.
			if want == current || (want > base && want*10 > current*9 && want*10 < current*11) {
				continue
			}
			debug.SetGCPercent(want)
			logger.Debug("garbage collector's target", "percent", want, "live_bytes", s.live, "alloc_bytes_per_s", int64(rate))
			current = want
		}
	}
}

// cgroupMemoryFiles hold the container's memory limit: cgroup v2's, then v1's.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// memoryCeiling is the memory the process may use when something bounds it:
// GOMEMLIMIT (or debug.SetMemoryLimit), else its container's cgroup limit
// read with readFile (as os.ReadFile); 0 when nothing does.
func memoryCeiling(readFile func(string) ([]byte, error)) uint64 {
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		return uint64(l)
	}
	for _, f := range cgroupMemoryFiles {
		raw, err := readFile(f)
		if err != nil {
			continue
		}
		// "max" (v2) or a number near 2^63 (v1) means no limit.
		n, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
		if err == nil && n > 0 && n < 1<<60 {
			return n
		}
		return 0
	}
	return 0
}
