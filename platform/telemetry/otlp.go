package telemetry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/credentials"
)

// OTLP protocols.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// OTLP says where traces and metrics are exported with OpenTelemetry's OTLP.
// Whatever is left empty comes from the standard OTEL_EXPORTER_OTLP_*
// variables (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _CERTIFICATE, ...), which
// the exporters read themselves, and then from their defaults
// (localhost:4317 for gRPC, localhost:4318 for HTTP).
type OTLP struct {
	// Endpoint is host:port (gRPC) or a URL (HTTP: the signal's path,
	// /v1/traces or /v1/metrics, is added to it).
	Endpoint string
	// Protocol is grpc or http/protobuf; empty means grpc.
	Protocol string
	// Headers are sent with every export (an API key, say).
	Headers map[string]string
	// Insecure exports without TLS.
	Insecure bool
	// CAFile holds the CA certificates the collector's certificate must
	// chain to; empty trusts the system's roots.
	CAFile string
	// MetricsInterval is how often metrics are exported; zero means a minute.
	MetricsInterval time.Duration
}

// tlsConfig is the TLS configuration of exports, nil for the defaults.
func (o OTLP) tlsConfig() (*tls.Config, error) {
	if o.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("telemetry: OTLP CA file %s holds no PEM certificate", o.CAFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// traceExporter returns the OTLP span exporter o describes.
func (o OTLP) traceExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	switch o.Protocol {
	case "", ProtocolGRPC:
		var opts []otlptracegrpc.Option
		if o.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpoint(o.Endpoint))
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(o.Headers))
		}
		if o.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		} else if tlsCfg != nil {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		return otlptracegrpc.New(ctx, opts...)
	case ProtocolHTTP:
		var opts []otlptracehttp.Option
		if o.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(signalURL(o.Endpoint, "/v1/traces")))
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
		}
		if o.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		} else if tlsCfg != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
		}
		return otlptracehttp.New(ctx, opts...)
	}
	return nil, fmt.Errorf("telemetry: OTLP protocol %q: want %s or %s", o.Protocol, ProtocolGRPC, ProtocolHTTP)
}

// metricReader returns a reader exporting metrics periodically with OTLP.
func (o OTLP) metricReader(ctx context.Context) (sdkmetric.Reader, error) {
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	var exp sdkmetric.Exporter
	switch o.Protocol {
	case "", ProtocolGRPC:
		var opts []otlpmetricgrpc.Option
		if o.Endpoint != "" {
			opts = append(opts, otlpmetricgrpc.WithEndpoint(o.Endpoint))
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlpmetricgrpc.WithHeaders(o.Headers))
		}
		if o.Insecure {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		} else if tlsCfg != nil {
			opts = append(opts, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		exp, err = otlpmetricgrpc.New(ctx, opts...)
	case ProtocolHTTP:
		var opts []otlpmetrichttp.Option
		if o.Endpoint != "" {
			opts = append(opts, otlpmetrichttp.WithEndpointURL(signalURL(o.Endpoint, "/v1/metrics")))
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlpmetrichttp.WithHeaders(o.Headers))
		}
		if o.Insecure {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		} else if tlsCfg != nil {
			opts = append(opts, otlpmetrichttp.WithTLSClientConfig(tlsCfg))
		}
		exp, err = otlpmetrichttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("telemetry: OTLP protocol %q: want %s or %s", o.Protocol, ProtocolGRPC, ProtocolHTTP)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP metric exporter: %w", err)
	}
	interval := o.MetricsInterval
	if interval <= 0 {
		interval = time.Minute
	}
	return sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(interval)), nil
}

// signalURL is base with the signal's path (/v1/traces, /v1/metrics) when
// base names none, as OTEL_EXPORTER_OTLP_ENDPOINT is read.
func signalURL(base, path string) string {
	u, err := url.Parse(base)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return base
	}
	u.Path = path
	return u.String()
}
