// Command token runs the token service on its own, for deployments that scale
// each service separately.
package main

import (
	"context"
	"os"

	"gatehouse.dev/platform/host"
	"gatehouse.dev/services/token"
)

func main() {
	os.Exit(host.Main("token", os.Args[1:], os.Stderr, func(ctx context.Context, rt *host.Runtime) ([]host.Service, error) {
		svc, err := token.FromRuntime(ctx, rt)
		if err != nil {
			return nil, err
		}
		return []host.Service{svc}, nil
	}))
}
