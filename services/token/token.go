// Package token is the token service: the token, introspection, revocation and userinfo endpoints, and sessions and tokens as aggregates.
//
// This module so far only takes its place in the process: it is hosted,
// reports health and has no API of its own yet.
package token

import (
	"context"

	"google.golang.org/grpc"
)

// Service is the token service.
type Service struct{}

// New returns the token service.
func New() *Service { return &Service{} }

// Name is the service's name.
func (*Service) Name() string { return "token" }

// RegisterGRPC registers the service's gRPC APIs; it has none yet.
func (*Service) RegisterGRPC(grpc.ServiceRegistrar) {}

// Run waits until ctx ends; the service has no background work yet.
func (*Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
