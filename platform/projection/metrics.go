package projection

import (
	"context"
	"fmt"
	"sort"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metricsTimeout bounds one collection of the projections' metrics.
const metricsTimeout = 3 * time.Second

// RegisterMetrics publishes the state of every projection and reactor of the
// sets (keyed by service) as gauges, read when metrics are collected:
//
//	gatehouse.projection.checkpoint       last event applied live
//	gatehouse.projection.head             newest event on its subjects (lag = head - checkpoint)
//	gatehouse.projection.version          version of the live read model
//	gatehouse.projection.build.active     1 while a rebuild or a new version is built
//	gatehouse.projection.build.position   last event applied to the copies
//	gatehouse.projection.build.target     where the build must get to before following live
//	gatehouse.projection.build.rate       recent events per second of the build
//	gatehouse.projection.lag              seconds the oldest event not yet handled has waited (0: caught up)
//	gatehouse.projection.lag.events       head - checkpoint: at most this many events not handled yet
//
// each with the attribute projection="<service>.<name>". A reactor's lag is
// its backlog: the emails not sent yet, the homeserver changes not made yet.
func RegisterMetrics(meter metric.Meter, sets map[string]*Set) error {
	gauges := map[string]metric.Int64ObservableGauge{}
	for _, g := range []struct{ name, unit, help string }{
		{"gatehouse.projection.checkpoint", "{event}", "Stream sequence of the last event the projection or reactor applied."},
		{"gatehouse.projection.head", "{event}", "Stream sequence of the newest event on its subjects."},
		{"gatehouse.projection.lag.events", "{event}", "Stream positions between the checkpoint and the newest event on its subjects: at most this many events are not handled yet."},
		{"gatehouse.projection.version", "", "Version of the live read model."},
		{"gatehouse.projection.build.active", "", "1 while a rebuild or a new version is built beside the live tables."},
		{"gatehouse.projection.build.position", "{event}", "Stream sequence of the last event applied to the build's copies."},
		{"gatehouse.projection.build.target", "{event}", "The stream's newest event when the build was asked for."},
	} {
		opts := []metric.Int64ObservableGaugeOption{metric.WithDescription(g.help)}
		if g.unit != "" {
			opts = append(opts, metric.WithUnit(g.unit))
		}
		gauge, err := meter.Int64ObservableGauge(g.name, opts...)
		if err != nil {
			return fmt.Errorf("projection metrics: %w", err)
		}
		gauges[g.name] = gauge
	}
	rate, err := meter.Float64ObservableGauge("gatehouse.projection.build.rate", metric.WithUnit("{event}/s"),
		metric.WithDescription("Recent speed of the build, in events per second."))
	if err != nil {
		return fmt.Errorf("projection metrics: %w", err)
	}
	lag, err := meter.Float64ObservableGauge("gatehouse.projection.lag", metric.WithUnit("s"),
		metric.WithDescription("How long the oldest event the projection or reactor has not handled yet has waited; 0 when caught up."))
	if err != nil {
		return fmt.Errorf("projection metrics: %w", err)
	}
	instruments := []metric.Observable{rate, lag}
	for _, g := range gauges {
		instruments = append(instruments, g)
	}
	services := make([]string, 0, len(sets))
	for svc := range sets {
		services = append(services, svc)
	}
	sort.Strings(services)
	_, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
		defer cancel()
		for _, svc := range services {
			set := sets[svc]
			for _, name := range set.Names() {
				attrs := metric.WithAttributes(attribute.String("projection", svc+"."+name))
				st, err := set.Status(ctx, name)
				if err != nil {
					continue // the database is away: no sample rather than a wrong one
				}
				o.ObserveInt64(gauges["gatehouse.projection.checkpoint"], int64(st.Checkpoint), attrs)
				o.ObserveInt64(gauges["gatehouse.projection.version"], int64(st.Version), attrs)
				if head, err := set.Head(ctx, name); err == nil {
					o.ObserveInt64(gauges["gatehouse.projection.head"], int64(head), attrs)
					o.ObserveInt64(gauges["gatehouse.projection.lag.events"], int64(head-min(head, st.Checkpoint)), attrs)
					if waited, err := waitedFor(ctx, set, name, head, st.Checkpoint); err == nil {
						o.ObserveFloat64(lag, waited, attrs)
					}
				}
				if st.Kind != KindProjection {
					continue
				}
				var active, pos, target int64
				var r float64
				if b := st.Build; b != nil {
					active, pos, target, r = 1, int64(b.Position), int64(b.Target), b.Rate
				}
				o.ObserveInt64(gauges["gatehouse.projection.build.active"], active, attrs)
				o.ObserveInt64(gauges["gatehouse.projection.build.position"], pos, attrs)
				o.ObserveInt64(gauges["gatehouse.projection.build.target"], target, attrs)
				o.ObserveFloat64(rate, r, attrs)
			}
		}
		return nil
	}, instruments...)
	if err != nil {
		return fmt.Errorf("projection metrics: %w", err)
	}
	return nil
}

// waitedFor is how long, in seconds, the oldest event member name has not
// handled yet has waited: 0 when its checkpoint is at head.
func waitedFor(ctx context.Context, set *Set, name string, head, checkpoint uint64) (float64, error) {
	if head <= checkpoint {
		return 0, nil
	}
	at, behind, err := set.Waiting(ctx, name)
	if err != nil || !behind {
		return 0, err
	}
	return max(time.Since(at).Seconds(), 0), nil
}
