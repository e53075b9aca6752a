package telemetry

import "gatehouse.dev/platform/errs"

// LatencyBuckets are the bucket boundaries, in seconds, of Gatehouse's
// latency histograms: from 100 µs (an introspection answered from memory) to
// 10 s (a request's deadline).
func LatencyBuckets() []float64 {
	return []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
}

// Outcome is the outcome label of an operation that returned err: "ok", or
// the kind of the error ("invalid", "unauthenticated", "rate_limited",
// "unavailable", "internal", ...; see errs.Kind). The set is small and fixed,
// so it is safe as a metric label, and it never carries the error's text.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return errs.KindOf(err).String()
}
