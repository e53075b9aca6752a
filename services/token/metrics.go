package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"gatehouse.dev/platform/telemetry"
	"gatehouse.dev/services/token/internal/homeserver"
)

// The token service's measures, as Prometheus shows them (OTLP carries the
// same instruments under their dotted names):
//
//	gatehouse_token_grants_total{grant, outcome}             token requests by grant type: outcome ok is tokens
//	                                                         issued; otherwise the error's kind (invalid, ...)
//	gatehouse_refresh_token_reuse_total{kind}                rotated-out refresh tokens presented again past the
//	                                                         grace: the session was ended (kind oauth or compat)
//	gatehouse_introspections_total{caller, transport, outcome}  introspections: caller homeserver, client or admin;
//	                                                         outcome active, inactive or the error's kind
//	gatehouse_introspection_duration_seconds{caller, transport} how long they took (histogram)
//	gatehouse_token_sessions_unexpired                       live sessions nothing can use any more, a whole
//	                                                         sweep period past their last token's expiry: what
//	                                                         the expiry sweep has not caught up with (counted
//	                                                         up to 100,000)
//
// Refreshes are the grants refresh_token (OAuth) and compat_refresh (the
// Matrix /refresh API). The
// homeserver's calls are measured by its client (internal/homeserver).
// Labels come from fixed sets: never a client id, user or token.

// meterName is the instrumentation scope of the service's measures.
const meterName = "gatehouse.dev/services/token"

// measures are the service's instruments; a nil *measures (no telemetry)
// measures nothing.
type measures struct {
	meter         metric.Meter
	grants        metric.Int64Counter
	reuse         metric.Int64Counter
	introspection metric.Int64Counter
	introspectDur metric.Float64Histogram
	// byCall are the options (attribute sets) of the common introspections,
	// made once — slices, so that passing them allocates nothing:
	// introspection is the hot path.
	byCall map[introspectionCall][]metric.AddOption
	byWho  map[introspectionCall][]metric.RecordOption // outcome left out
}

// introspectionCall is who introspected, how, and what they learnt.
type introspectionCall struct{ caller, transport, outcome string }

// introspectionAttrs are the attributes of an introspection's measures.
func introspectionAttrs(c introspectionCall) []attribute.KeyValue {
	attrs := []attribute.KeyValue{attribute.String("caller", c.caller), attribute.String("transport", c.transport)}
	if c.outcome != "" {
		attrs = append(attrs, attribute.String("outcome", c.outcome))
	}
	return attrs
}

// newMeasures makes the instruments with t's meter (nil t: a nil *measures).
func newMeasures(t *telemetry.Telemetry) (*measures, error) {
	if t == nil {
		return nil, nil
	}
	meter := t.MeterProvider().Meter(meterName)
	m := &measures{meter: meter}
	var e1, e2, e3, e4 error
	m.grants, e1 = meter.Int64Counter("gatehouse.token.grants",
		metric.WithDescription("Token requests by grant type and outcome (ok: tokens issued)."))
	m.reuse, e2 = meter.Int64Counter("gatehouse.refresh_token.reuse",
		metric.WithDescription("Rotated-out refresh tokens presented again after the grace period: the session was ended."))
	m.introspection, e3 = meter.Int64Counter("gatehouse.introspections",
		metric.WithDescription("Token introspections by caller, transport and outcome (active, inactive, or the error's kind)."))
	m.introspectDur, e4 = meter.Float64Histogram("gatehouse.introspection.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to answer an introspection, by caller and transport."),
		metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets()...))
	if err := errors.Join(e1, e2, e3, e4); err != nil {
		return nil, fmt.Errorf("token: metrics: %w", err)
	}
	// Present from the start, so that the first of each is seen as a change.
	for _, g := range append(GrantTypes(), "compat_refresh") {
		m.grants.Add(context.Background(), 0, metric.WithAttributes(attribute.String("grant", g), attribute.String("outcome", "ok")))
	}
	for _, k := range []string{"oauth", "compat"} {
		m.reuse.Add(context.Background(), 0, metric.WithAttributes(attribute.String("kind", k)))
	}
	m.byCall, m.byWho = map[introspectionCall][]metric.AddOption{}, map[introspectionCall][]metric.RecordOption{}
	for _, caller := range []string{"homeserver", "client", "admin"} {
		for _, transport := range []string{"http", "grpc"} {
			who := introspectionCall{caller: caller, transport: transport}
			m.byWho[who] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(introspectionAttrs(who)...))}
			for _, outcome := range []string{"active", "inactive"} {
				c := introspectionCall{caller, transport, outcome}
				m.byCall[c] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(introspectionAttrs(c)...))}
			}
		}
	}
	return m, nil
}

// expiryBacklogCap bounds the count of the expiry sweep's backlog: past
// it, the gauge says "at least", and a scrape reads no more rows.
const expiryBacklogCap = 100_000

// observeExpiryBacklog registers the gauge of the sessions the expiry sweep
// has not ended a whole period (expireEvery) after it should have: a sweep
// that fails, or ends fewer sessions than clients start, makes it grow.
func (m *measures) observeExpiryBacklog(pool *pgxpool.Pool, now func() time.Time) error {
	if m == nil {
		return nil
	}
	gauge, err := m.meter.Int64ObservableGauge("gatehouse.token.sessions.unexpired",
		metric.WithDescription("Live sessions nothing can use any more (their last token expired) that the expiry sweep has not ended a whole period later; counted up to 100,000."))
	if err != nil {
		return fmt.Errorf("token: metrics: %w", err)
	}
	_, err = m.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		n, err := expiryBacklog(ctx, pool, now().Add(-expireGrace-expireEvery))
		if err != nil {
			return err
		}
		o.ObserveInt64(gauge, n)
		return nil
	}, gauge)
	if err != nil {
		return fmt.Errorf("token: metrics: %w", err)
	}
	return nil
}

// expiryBacklog counts, up to expiryBacklogCap, the live sessions whose
// last token expired before cut.
func expiryBacklog(ctx context.Context, pool *pgxpool.Pool, cut time.Time) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM sessions WHERE ended_at IS NULL AND usable_until < $1 LIMIT $2) x`,
		cut, expiryBacklogCap).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("token: the expiry sweep's backlog: %w", err)
	}
	return n, nil
}

// granted counts a token request of grant type grant that ended with err.
func (m *measures) granted(ctx context.Context, grant string, err error) {
	if m == nil {
		return
	}
	m.grants.Add(ctx, 1, metric.WithAttributes(attribute.String("grant", grant), attribute.String("outcome", telemetry.Outcome(err))))
}

// reused counts a refresh token presented again (compat: of a compat session).
func (m *measures) reused(ctx context.Context, compat bool) {
	if m == nil {
		return
	}
	kind := "oauth"
	if compat {
		kind = "compat"
	}
	m.reuse.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind)))
}

// introspected counts an introspection by v over transport (http, grpc),
// begun at began, that found res or failed with err.
func (m *measures) introspected(ctx context.Context, v viewer, transport string, res introspection, err error, began time.Time) {
	if m == nil {
		return
	}
	outcome := "inactive"
	switch {
	case err != nil:
		outcome = telemetry.Outcome(err)
	case res.Active:
		outcome = "active"
	}
	c := introspectionCall{v.kind(), transport, outcome}
	call, ok := m.byCall[c]
	if !ok {
		call = []metric.AddOption{metric.WithAttributes(introspectionAttrs(c)...)}
	}
	m.introspection.Add(ctx, 1, call...)
	c.outcome = ""
	m.introspectDur.Record(ctx, time.Since(began).Seconds(), m.byWho[c]...)
}

// kind names the viewer for metrics: homeserver, client or admin.
func (v viewer) kind() string {
	switch {
	case v.admin:
		return "admin"
	case v.clientID != "":
		return "client"
	default:
		return "homeserver"
	}
}

// homeserver are the options that make the homeserver client measure its
// calls with the service's meter.
func (m *measures) homeserver() []homeserver.Option {
	if m == nil {
		return nil
	}
	return []homeserver.Option{homeserver.WithMeter(m.meter)}
}
