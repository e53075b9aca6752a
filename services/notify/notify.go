// Package notify is the notify service: email verification codes and their delivery over SMTP, driven by the event stream.
//
// This module so far only takes its place in the process: it is hosted,
// reports health and has no API of its own yet.
package notify

import (
	"context"

	"google.golang.org/grpc"
)

// Service is the notify service.
type Service struct{}

// New returns the notify service.
func New() *Service { return &Service{} }

// Name is the service's name.
func (*Service) Name() string { return "notify" }

// RegisterGRPC registers the service's gRPC APIs; it has none yet.
func (*Service) RegisterGRPC(grpc.ServiceRegistrar) {}

// Run waits until ctx ends; the service has no background work yet.
func (*Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
