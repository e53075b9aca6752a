package grpcx_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/grpcx"
	"gatehouse.dev/platform/telemetry"
)

// syncBuffer is a bytes.Buffer safe for the server's and the test's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scripted is a Health service whose behaviour is chosen by the requested
// service name, to exercise the interceptors through a real server.
type scripted struct {
	healthgrpc.UnimplementedHealthServer
	deadlines chan time.Duration // time left before the call's deadline; -1 for none
}

func (s *scripted) Check(ctx context.Context, req *healthgrpc.HealthCheckRequest) (*healthgrpc.HealthCheckResponse, error) {
	switch req.GetService() {
	case "not-found":
		return nil, errs.NotFound("no such client")
	case "invalid-field":
		return nil, errs.InvalidField("redirect_uri", "must use https")
	case "internal":
		return nil, errs.Internalf("query clients: %w", errors.New("dial tcp 10.9.9.9:5432: refused"))
	case "plain":
		return nil, errors.New("unclassified 10.9.9.9")
	case "panic":
		panic("handler bug")
	case "deadline":
		left := time.Duration(-1)
		if d, ok := ctx.Deadline(); ok {
			left = time.Until(d)
		}
		s.deadlines <- left
	}
	return &healthgrpc.HealthCheckResponse{Status: healthgrpc.HealthCheckResponse_SERVING}, nil
}

func (s *scripted) Watch(req *healthgrpc.HealthCheckRequest, stream grpc.ServerStreamingServer[healthgrpc.HealthCheckResponse]) error {
	switch req.GetService() {
	case "panic":
		panic("stream bug")
	case "not-found":
		if err := stream.Send(&healthgrpc.HealthCheckResponse{Status: healthgrpc.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
		return errs.NotFound("watched thing vanished")
	}
	return nil
}

// serve runs srv on a loopback port until the test ends and returns its address.
func serve(t *testing.T, srv *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- grpcx.ServeListener(ctx, srv, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return lis.Addr().String()
}

// dial connects to addr until the test ends.
func dial(t *testing.T, addr string, opts grpcx.DialOptions) healthgrpc.HealthClient {
	t.Helper()
	conn, err := grpcx.Dial(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthgrpc.NewHealthClient(conn)
}

// startScripted serves the scripted service and returns a client, the
// service, and the server's log.
func startScripted(t *testing.T, opts grpcx.DialOptions) (healthgrpc.HealthClient, *scripted, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: logger})
	svc := &scripted{deadlines: make(chan time.Duration, 1)}
	healthgrpc.RegisterHealthServer(srv, svc)
	return dial(t, serve(t, srv), opts), svc, logs
}

func TestHealthService(t *testing.T) {
	tel, err := telemetry.Setup(t.Context(), telemetry.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	hs := health.NewServer()
	hs.SetServingStatus("gatehouse.accounts", healthgrpc.HealthCheckResponse_SERVING)
	hs.SetServingStatus("gatehouse.token", healthgrpc.HealthCheckResponse_NOT_SERVING)
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler), Telemetry: tel, Health: hs})

	for _, name := range []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if _, ok := srv.GetServiceInfo()[name]; !ok {
			t.Errorf("service %s not registered", name)
		}
	}

	client := dial(t, serve(t, srv), grpcx.DialOptions{Telemetry: tel})
	tests := []struct {
		service string
		want    healthgrpc.HealthCheckResponse_ServingStatus
		kind    errs.Kind
		code    codes.Code
	}{
		{"", healthgrpc.HealthCheckResponse_SERVING, 0, codes.OK},
		{"gatehouse.accounts", healthgrpc.HealthCheckResponse_SERVING, 0, codes.OK},
		{"gatehouse.token", healthgrpc.HealthCheckResponse_NOT_SERVING, 0, codes.OK},
		{"gatehouse.unknown", 0, errs.KindNotFound, codes.NotFound},
	}
	for _, tt := range tests {
		resp, err := client.Check(t.Context(), &healthgrpc.HealthCheckRequest{Service: tt.service})
		if status.Code(err) != tt.code {
			t.Errorf("Check(%q) error %v, want code %v", tt.service, err, tt.code)
			continue
		}
		if err != nil {
			if errs.KindOf(err) != tt.kind {
				t.Errorf("Check(%q) kind %v, want %v", tt.service, errs.KindOf(err), tt.kind)
			}
			continue
		}
		if resp.GetStatus() != tt.want {
			t.Errorf("Check(%q) = %v, want %v", tt.service, resp.GetStatus(), tt.want)
		}
	}
}

func TestHandlerErrors(t *testing.T) {
	client, _, logs := startScripted(t, grpcx.DialOptions{})
	tests := []struct {
		service string
		code    codes.Code
		kind    errs.Kind
		public  string
		field   string
	}{
		{"not-found", codes.NotFound, errs.KindNotFound, "no such client", ""},
		{"invalid-field", codes.InvalidArgument, errs.KindInvalid, "must use https", "redirect_uri"},
		{"internal", codes.Internal, errs.KindInternal, "internal error", ""},
		{"plain", codes.Internal, errs.KindInternal, "internal error", ""},
		{"panic", codes.Internal, errs.KindInternal, "internal error", ""},
		{"ok", codes.OK, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			_, err := client.Check(t.Context(), &healthgrpc.HealthCheckRequest{Service: tt.service})
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.code)
			}
			if err == nil {
				return
			}
			e, ok := errors.AsType[*errs.Error](err)
			if !ok {
				t.Fatalf("client error is %T, want *errs.Error", err)
			}
			if e.Kind != tt.kind || e.Public != tt.public || e.Field != tt.field {
				t.Errorf("got {%v %q %q}, want {%v %q %q}", e.Kind, e.Public, e.Field, tt.kind, tt.public, tt.field)
			}
			if strings.Contains(err.Error(), "10.9.9.9") {
				t.Errorf("internal cause reached the client: %v", err)
			}
		})
	}

	// The server kept serving after the panic, and logged what clients never saw.
	if _, err := client.Check(t.Context(), &healthgrpc.HealthCheckRequest{}); err != nil {
		t.Fatalf("server stopped serving after a panic: %v", err)
	}
	out := logs.String()
	for _, want := range []string{
		`msg="grpc handler panicked"`, "panic=\"handler bug\"", "runtime/debug.Stack",
		"level=ERROR", "dial tcp 10.9.9.9:5432: refused",
		"level=DEBUG msg=\"grpc call\" method=/grpc.health.v1.Health/Check code=NotFound",
		"code=OK",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("server log lacks %q:\n%s", want, out)
		}
	}
}

func TestStreamErrors(t *testing.T) {
	client, _, _ := startScripted(t, grpcx.DialOptions{})

	stream, err := client.Watch(t.Context(), &healthgrpc.HealthCheckRequest{Service: "not-found"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("first Recv: %v", err)
	}
	_, err = stream.Recv()
	if errs.KindOf(err) != errs.KindNotFound || errs.PublicMessage(err) != "watched thing vanished" {
		t.Errorf("stream error = %v (kind %v), want not found: watched thing vanished", err, errs.KindOf(err))
	}

	stream, err = client.Watch(t.Context(), &healthgrpc.HealthCheckRequest{Service: "panic"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Internal || errs.KindOf(err) != errs.KindInternal {
		t.Errorf("panicking stream: %v, want Internal", err)
	}
}

func TestDefaultDeadline(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration // DialOptions.DefaultTimeout
		ctxLimit time.Duration // the caller's own deadline; 0 for none
		min, max time.Duration
	}{
		{"default 10s", 0, 0, 9 * time.Second, 10 * time.Second},
		{"configured", 3 * time.Second, 0, 2 * time.Second, 3 * time.Second},
		{"caller's longer deadline kept", 3 * time.Second, time.Minute, 55 * time.Second, time.Minute},
		{"caller's shorter deadline kept", 0, 2 * time.Second, time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, svc, _ := startScripted(t, grpcx.DialOptions{DefaultTimeout: tt.timeout})
			ctx := t.Context()
			if tt.ctxLimit > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxLimit)
				defer cancel()
			}
			if _, err := client.Check(ctx, &healthgrpc.HealthCheckRequest{Service: "deadline"}); err != nil {
				t.Fatal(err)
			}
			left := <-svc.deadlines
			if left < tt.min || left > tt.max {
				t.Errorf("server saw %v left, want between %v and %v", left, tt.min, tt.max)
			}
		})
	}
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	hs := health.NewServer()
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler), Health: hs})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- grpcx.ServeListener(ctx, srv, lis) }()

	client := dial(t, addr, grpcx.DialOptions{})
	if _, err := client.Check(t.Context(), &healthgrpc.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check while serving: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeListener = %v, want nil", err)
		}
	case <-time.After(grpcx.ShutdownTimeout + time.Second):
		t.Fatal("ServeListener did not return after its context ended")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("listener still accepts connections after stop")
	}
	_, err = client.Check(t.Context(), &healthgrpc.HealthCheckRequest{})
	if errs.KindOf(err) != errs.KindUnavailable {
		t.Errorf("Check after stop: %v (kind %v), want unavailable", err, errs.KindOf(err))
	}
}

func TestServeListenError(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	srv := grpcx.NewServer(grpcx.ServerOptions{})
	err = grpcx.Serve(t.Context(), srv, lis.Addr().String(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "grpcx: listen") {
		t.Errorf("Serve on a busy port = %v, want a listen error", err)
	}
}

// The server gives calls that come without a deadline its own; a caller's
// deadline is kept.
func TestServerDeadline(t *testing.T) {
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler), Deadline: 4 * time.Second})
	svc := &scripted{deadlines: make(chan time.Duration, 1)}
	healthgrpc.RegisterHealthServer(srv, svc)
	addr := serve(t, srv)
	// A plain client sends no deadline at all.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthgrpc.NewHealthClient(conn)
	for _, tt := range []struct {
		name     string
		ctxLimit time.Duration
		min, max time.Duration
	}{
		{"none sent: the server's", 0, 3 * time.Second, 4 * time.Second},
		{"a longer one sent: kept", time.Minute, 55 * time.Second, time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.ctxLimit > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxLimit)
				defer cancel()
			}
			if _, err := client.Check(ctx, &healthgrpc.HealthCheckRequest{Service: "deadline"}); err != nil {
				t.Fatal(err)
			}
			if left := <-svc.deadlines; left < tt.min || left > tt.max {
				t.Errorf("handler saw %v left, want between %v and %v", left, tt.min, tt.max)
			}
		})
	}
}
