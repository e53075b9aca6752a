package grpcx

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
)

// ShutdownTimeout bounds how long a graceful stop waits for calls in flight
// before the remaining connections are closed.
const ShutdownTimeout = 10 * time.Second

// Serve listens on addr and serves srv until ctx is done, then stops it
// gracefully (see ServeListener). It returns nil after such a stop.
func Serve(ctx context.Context, srv *grpc.Server, addr string, logger *slog.Logger) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("grpcx: listen %s: %w", addr, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger.InfoContext(ctx, "grpc listening", "addr", lis.Addr().String())
	return ServeListener(ctx, srv, lis)
}

// ServeListener serves srv on lis until ctx is done, then stops accepting
// calls, waits up to ShutdownTimeout for those in flight and closes whatever
// remains. It returns nil after such a stop, or the error that ended serving
// early; lis is closed either way.
func ServeListener(ctx context.Context, srv *grpc.Server, lis net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()

	select {
	case err := <-served:
		if err != nil {
			return fmt.Errorf("grpcx: serve %s: %w", lis.Addr(), err)
		}
		return nil // stopped by someone else
	case <-ctx.Done():
	}

	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		srv.Stop()
		<-stopped
	}
	<-served
	return nil
}
