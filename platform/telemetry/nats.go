package telemetry

import (
	"context"
	"maps"
	"slices"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier adapts a NATS message header to propagation.TextMapCarrier.
// NATS header keys are case-sensitive and kept as written ("traceparent").
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

// Get returns the first value of key.
func (h HeaderCarrier) Get(key string) string { return nats.Header(h).Get(key) }

// Set replaces the values of key; it does nothing on a nil header.
func (h HeaderCarrier) Set(key, value string) {
	if h != nil {
		nats.Header(h).Set(key, value)
	}
}

// Keys returns the header's keys, sorted.
func (h HeaderCarrier) Keys() []string { return slices.Sorted(maps.Keys(h)) }

// InjectNATS writes the trace context and baggage of ctx into h, which must
// not be nil (make it with nats.Header{} or nats.NewMsg).
func InjectNATS(ctx context.Context, p propagation.TextMapPropagator, h nats.Header) {
	p.Inject(ctx, HeaderCarrier(h))
}

// ExtractNATS returns ctx carrying the remote trace context and baggage of h.
func ExtractNATS(ctx context.Context, p propagation.TextMapPropagator, h nats.Header) context.Context {
	return p.Extract(ctx, HeaderCarrier(h))
}
