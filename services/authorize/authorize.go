// Package authorize is the authorize service: OAuth 2.0 / OpenID Connect discovery, dynamic client registration, the authorization and device authorization endpoints, and grants as aggregates.
//
// This module so far only takes its place in the process: it is hosted,
// reports health and has no API of its own yet.
package authorize

import (
	"context"

	"google.golang.org/grpc"
)

// Service is the authorize service.
type Service struct{}

// New returns the authorize service.
func New() *Service { return &Service{} }

// Name is the service's name.
func (*Service) Name() string { return "authorize" }

// RegisterGRPC registers the service's gRPC APIs; it has none yet.
func (*Service) RegisterGRPC(grpc.ServiceRegistrar) {}

// Run waits until ctx ends; the service has no background work yet.
func (*Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
