// Package web is the web service: the pages people use in the browser — sign in, sign up, consent, device link, account management.
//
// This module so far only takes its place in the process: it is hosted,
// reports health and has no API of its own yet.
package web

import (
	"context"

	"google.golang.org/grpc"
)

// Service is the web service.
type Service struct{}

// New returns the web service.
func New() *Service { return &Service{} }

// Name is the service's name.
func (*Service) Name() string { return "web" }

// RegisterGRPC registers the service's gRPC APIs; it has none yet.
func (*Service) RegisterGRPC(grpc.ServiceRegistrar) {}

// Run waits until ctx ends; the service has no background work yet.
func (*Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
