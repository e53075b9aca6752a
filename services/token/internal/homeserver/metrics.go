package homeserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The client's measures, as Prometheus shows them:
//
//	gatehouse_homeserver_requests_total{operation, outcome}  calls by endpoint (provision_user, ...) and outcome:
//	                                                         ok, not_found (404), refused (other 4xx), failed
//	                                                         (5xx, 429, an answer that cannot be read) or
//	                                                         unreachable (no answer: refused, reset, timed out)
//	gatehouse_homeserver_request_duration_seconds{operation} how long they took (histogram)

// measures are a client's instruments.
type measures struct {
	requests metric.Int64Counter
	duration metric.Float64Histogram
}

// operations are the endpoints the client calls, counted from zero.
var operations = []string{"provision_user", "is_localpart_available", "query_user", "delete_user", "reactivate_user",
	"upsert_device", "update_device_display_name", "delete_device", "sync_devices", "allow_cross_signing_reset"}

// WithMeter counts and times the client's calls with meter; nil: not measured.
func WithMeter(meter metric.Meter) Option {
	return func(c *Client) {
		if meter == nil {
			return
		}
		m := &measures{}
		var err1, err2 error
		m.requests, err1 = meter.Int64Counter("gatehouse.homeserver.requests",
			metric.WithDescription("Calls to the homeserver's /_synapse/mas API by operation and outcome (ok, not_found, refused, failed, unreachable)."))
		m.duration, err2 = meter.Float64Histogram("gatehouse.homeserver.request.duration", metric.WithUnit("s"),
			metric.WithDescription("Time the homeserver took to answer, by operation."),
			metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
		if errors.Join(err1, err2) != nil {
			return // only an invalid name fails, and these are valid
		}
		for _, op := range operations {
			m.requests.Add(context.Background(), 0, metric.WithAttributes(attribute.String("operation", op), attribute.String("outcome", "ok")))
			m.requests.Add(context.Background(), 0, metric.WithAttributes(attribute.String("operation", op), attribute.String("outcome", "unreachable")))
		}
		c.measures = m
	}
}

// do makes one call (call), measured.
func (c *Client) do(ctx context.Context, method, op string, query url.Values, body, out any) (int, error) {
	began := time.Now()
	status, err := c.call(ctx, method, op, query, body, out)
	if m := c.measures; m != nil {
		m.requests.Add(ctx, 1, metric.WithAttributes(attribute.String("operation", op), attribute.String("outcome", outcome(status, err))))
		m.duration.Record(ctx, time.Since(began).Seconds(), metric.WithAttributes(attribute.String("operation", op)))
	}
	return status, err
}

// outcome names the result of a call for the metrics.
func outcome(status int, err error) string {
	switch {
	case err == nil:
		return "ok"
	case status == 0:
		if e, ok := errors.AsType[*Error](err); ok && e.Err == nil {
			return "failed" // the request could not even be made
		}
		return "unreachable"
	case status == http.StatusNotFound:
		return "not_found"
	case status >= 500 || status == http.StatusTooManyRequests:
		return "failed"
	case status >= 400:
		return "refused"
	default:
		return "failed" // a 2xx whose answer could not be read
	}
}
