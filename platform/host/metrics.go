package host

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"gatehouse.dev/platform/httpx"
)

// registerMetrics publishes the state of the process's connections, read
// when metrics are collected:
//
//	gatehouse_nats_connected                 1 while the NATS connection is up, else 0
//	gatehouse_nats_reconnects_total          times the NATS connection was made again
//	gatehouse_dependency_up{dependency}      1 when the readiness check of a dependency passes
//	                                         (nats, postgres-0, postgres-1, ...), else 0
//
// The dependency checks are those of /ready, each bounded by
// httpx.CheckTimeout, run concurrently.
func (rt *Runtime) registerMetrics(meter metric.Meter, checks []httpx.Check) error {
	connected, err1 := meter.Int64ObservableGauge("gatehouse.nats.connected",
		metric.WithDescription("1 while the process's NATS connection is up, else 0."))
	reconnects, err2 := meter.Int64ObservableCounter("gatehouse.nats.reconnects",
		metric.WithDescription("Times the NATS connection was made again after it broke."))
	up, err3 := meter.Int64ObservableGauge("gatehouse.dependency.up",
		metric.WithDescription("1 when the readiness check of a dependency (nats, postgres-N) passes, else 0."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("host metrics: %w", err)
	}
	_, err := meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		state := int64(0)
		if rt.NATS.Status() == nats.CONNECTED {
			state = 1
		}
		o.ObserveInt64(connected, state)
		o.ObserveInt64(reconnects, int64(rt.NATS.Stats().Reconnects))
		results := make([]int64, len(checks))
		var wg sync.WaitGroup
		for i, c := range checks {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(ctx, httpx.CheckTimeout)
				defer cancel()
				if c.Fn(ctx) == nil {
					results[i] = 1
				}
			})
		}
		wg.Wait()
		for i, c := range checks {
			o.ObserveInt64(up, results[i], metric.WithAttributes(attribute.String("dependency", c.Name)))
		}
		return nil
	}, connected, reconnects, up)
	if err != nil {
		return fmt.Errorf("host metrics: %w", err)
	}
	return nil
}
