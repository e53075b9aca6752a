package host

import (
	"log/slog"
	"runtime/debug"
)

// tuneGC sets the garbage collector's target to ops.gc_percent (when not 0),
// unless GOGC is in the environment (lookupEnv, as os.LookupEnv): the
// runtime read that one already, and it wins. It reports the target set,
// 0 when it left the runtime's.
func tuneGC(percent int, lookupEnv func(string) (string, bool), logger *slog.Logger) int {
	if percent == 0 {
		return 0
	}
	if v, ok := lookupEnv("GOGC"); ok {
		logger.Info("GOGC is set: ops.gc_percent is ignored", "GOGC", v, "ops.gc_percent", percent)
		return 0
	}
	debug.SetGCPercent(percent)
	return percent
}
