package accounts

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"gatehouse.dev/platform/telemetry"
)

// The accounts service's measures, as Prometheus shows them (OTLP carries
// the same instruments under their dotted names):
//
//	gatehouse_signins_total{method, outcome}        people proving who they are: method password, upstream
//	                                                or recovery; outcome ok or the error's kind (invalid,
//	                                                unauthenticated, rate_limited, failed_precondition, ...)
//	gatehouse_registrations_total{method, outcome}  accounts created: method password (the registration
//	                                                form), upstream (from an upstream provider) or admin
//
// Labels come from fixed sets: never a user name, address or provider's answer.

// measures are the service's instruments; a nil *measures (no telemetry)
// measures nothing.
type measures struct {
	signIns       metric.Int64Counter
	registrations metric.Int64Counter
}

// Registration methods (sign-in methods are the proof methods, proofs.go).
const (
	registeredWithPassword = "password"
	registeredUpstream     = "upstream"
	registeredByAdmin      = "admin"
)

// newMeasures makes the instruments with t's meter (nil t: a nil *measures).
func newMeasures(t *telemetry.Telemetry) (*measures, error) {
	if t == nil {
		return nil, nil
	}
	meter := t.MeterProvider().Meter("gatehouse.dev/services/accounts")
	m := &measures{}
	var err1, err2 error
	m.signIns, err1 = meter.Int64Counter("gatehouse.signins",
		metric.WithDescription("Sign-ins by method (password, upstream, recovery) and outcome (ok or the error's kind)."))
	m.registrations, err2 = meter.Int64Counter("gatehouse.registrations",
		metric.WithDescription("Registrations by method (password, upstream, admin) and outcome (ok or the error's kind)."))
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("accounts: metrics: %w", err)
	}
	// Present from the start, so that the first of each is seen as a change.
	for _, method := range []string{methodPassword, methodUpstream, methodRecovery} {
		m.signIns.Add(context.Background(), 0, metric.WithAttributes(attribute.String("method", method), attribute.String("outcome", "ok")))
	}
	for _, method := range []string{registeredWithPassword, registeredUpstream, registeredByAdmin} {
		m.registrations.Add(context.Background(), 0, metric.WithAttributes(attribute.String("method", method), attribute.String("outcome", "ok")))
	}
	return m, nil
}

// signIn counts a sign-in by method that ended with err.
func (m *measures) signIn(ctx context.Context, method string, err error) {
	if m != nil {
		m.signIns.Add(ctx, 1, metric.WithAttributes(attribute.String("method", method), attribute.String("outcome", telemetry.Outcome(err))))
	}
}

// registered counts a registration by method that ended with err.
func (m *measures) registered(ctx context.Context, method string, err error) {
	if m != nil {
		m.registrations.Add(ctx, 1, metric.WithAttributes(attribute.String("method", method), attribute.String("outcome", telemetry.Outcome(err))))
	}
}
