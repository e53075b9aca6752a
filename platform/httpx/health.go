package httpx

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// CheckTimeout bounds each health check.
const CheckTimeout = 2 * time.Second

// Check is one named health check; Fn returns nil when healthy.
type Check struct {
	// Name keys the check's result in the report, e.g. "database".
	Name string
	// Fn returns nil when healthy; its context ends after CheckTimeout.
	Fn func(ctx context.Context) error
}

// Health runs checks for the /health and /ready endpoints. It is not ready
// until SetReady(true), so a process can finish starting (migrations,
// projections catching up) before taking traffic.
type Health struct {
	checks []Check
	ready  atomic.Bool
}

// NewHealth returns a Health running checks, not yet ready.
func NewHealth(checks ...Check) *Health {
	return &Health{checks: checks}
}

// SetReady marks the process ready (or not, when draining) for /ready.
func (h *Health) SetReady(ready bool) { h.ready.Store(ready) }

// healthReport is the JSON body of /health and /ready.
type healthReport struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// HealthHandler runs every check concurrently and answers 200 with
// {"status":"ok"} and each check's result, or 503 with "fail" when any fails.
// Check errors are shown: serve this only on the operations listener.
func (h *Health) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeReport(w, h.run(r.Context()))
	})
}

// ReadyHandler answers like HealthHandler once SetReady(true) was called,
// and 503 with {"status":"starting"} before.
func (h *Health) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.ready.Load() {
			writeReport(w, healthReport{Status: "starting"})
			return
		}
		writeReport(w, h.run(r.Context()))
	})
}

// run runs every check concurrently, each within CheckTimeout, and reports
// them; a panicking check counts as failed.
func (h *Health) run(ctx context.Context) healthReport {
	results := make([]error, len(h.checks))
	var wg sync.WaitGroup
	for i, c := range h.checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			defer func() {
				if r := recover(); r != nil {
					results[i] = fmt.Errorf("check panicked: %v", r)
				}
			}()
			results[i] = c.Fn(ctx)
		})
	}
	wg.Wait()
	report := healthReport{Status: "ok", Checks: make(map[string]string, len(h.checks))}
	for i, c := range h.checks {
		report.Checks[c.Name] = "ok"
		if results[i] != nil {
			report.Checks[c.Name] = results[i].Error()
			report.Status = "fail"
		}
	}
	return report
}

// writeReport writes report as JSON: 200 when ok, else 503.
func writeReport(w http.ResponseWriter, report healthReport) {
	code := http.StatusOK
	if report.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(report)
}

// LiveHandler answers 200 {"status":"ok"} whenever the process can answer
// at all, whatever its dependencies: a liveness probe. Restarting a process
// because its database or NATS is down would not bring them back, and would
// lose what it keeps in memory (the token index) until they are.
func (h *Health) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeReport(w, healthReport{Status: "ok"})
	})
}

// OpsMux serves GET /live, /health, /ready and (when metrics is not nil) /metrics.
func OpsMux(h *Health, metrics http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /live", h.LiveHandler())
	mux.Handle("GET /health", h.HealthHandler())
	mux.Handle("GET /ready", h.ReadyHandler())
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}

// Profiler adds the Go runtime's profiles to an operations mux under
// /debug/pprof/ (CPU, heap, allocations, goroutines, mutex and block
// contention, execution traces). They show the process's internals: serve
// them only on the operations listener, and only when asked (ops.pprof).
func Profiler(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
