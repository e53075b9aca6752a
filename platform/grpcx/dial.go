package grpcx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/telemetry"
)

// DefaultTimeout is the deadline given to a unary call whose context has none.
const DefaultTimeout = 10 * time.Second

// DialOptions configures Dial.
type DialOptions struct {
	// Telemetry traces and measures calls and propagates the trace; nil disables it.
	Telemetry *telemetry.Telemetry
	// DefaultTimeout is the deadline of unary calls whose context has none;
	// zero means DefaultTimeout.
	DefaultTimeout time.Duration
	// Credential authenticates every call; the zero value sends none.
	Credential Credential
	// TLS, when not nil, connects over TLS (presenting its client
	// certificate, if any); nil connects in plaintext.
	TLS *tls.Config
}

// Dial returns a client connection to target (host:port or any grpc-go
// target such as dns:///host:port). It connects lazily, over TLS when given a
// TLS configuration, and authenticates every call with the credential.
// Unary calls get a default deadline, and every error a call returns is an
// *errs.Error rebuilt by errs.FromStatus, so callers switch on errs.KindOf.
func Dial(target string, opts DialOptions) (*grpc.ClientConn, error) {
	timeout := opts.DefaultTimeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	transport := insecure.NewCredentials()
	if opts.TLS != nil {
		transport = credentials.NewTLS(opts.TLS)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		// With a dns:/// target naming every replica (a headless Kubernetes
		// Service), calls are spread over all of them.
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithChainUnaryInterceptor(unaryClientInterceptor(timeout)),
		grpc.WithChainStreamInterceptor(streamClientInterceptor),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                30 * time.Second, // above the server's 10s enforcement
			Timeout:             10 * time.Second,
			PermitWithoutStream: true,
		}),
	}
	if c := opts.Credential; c.Name != "" || c.Bearer != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{name: c.Name, credential: c.Bearer}))
	}
	if t := opts.Telemetry; t != nil {
		dialOpts = append(dialOpts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(t.TracerProvider()),
			otelgrpc.WithMeterProvider(t.MeterProvider()),
			otelgrpc.WithPropagators(t.Propagator()),
		)))
	}
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("grpcx: dial %s: %w", target, err)
	}
	return conn, nil
}

// unaryClientInterceptor applies the default deadline and converts errors.
func unaryClientInterceptor(timeout time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption,
	) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return errs.FromStatus(invoker(ctx, method, req, reply, cc, opts...))
	}
}

// streamClientInterceptor converts the errors of a stream. Streams get no
// default deadline: they may rightly outlive any.
func streamClientInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
	method string, streamer grpc.Streamer, opts ...grpc.CallOption,
) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, errs.FromStatus(err)
	}
	return clientStream{cs}, nil
}

// clientStream converts the errors of its stream, leaving io.EOF alone.
type clientStream struct{ grpc.ClientStream }

// SendMsg sends m, converting a status error.
func (s clientStream) SendMsg(m any) error { return convertStreamErr(s.ClientStream.SendMsg(m)) }

// RecvMsg receives into m, converting a status error.
func (s clientStream) RecvMsg(m any) error { return convertStreamErr(s.ClientStream.RecvMsg(m)) }

// CloseSend closes the sending side, converting a status error.
func (s clientStream) CloseSend() error { return convertStreamErr(s.ClientStream.CloseSend()) }

// convertStreamErr converts err with errs.FromStatus unless it is io.EOF,
// which marks the normal end of a stream.
func convertStreamErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return errs.FromStatus(err)
}
