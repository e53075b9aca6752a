// Command admin runs the admin API on its own, for deployments that scale
// each service separately. It holds no credential: it forwards its callers'.
package main

import (
	"context"
	"os"

	"gatehouse.dev/platform/host"
	"gatehouse.dev/services/admin"
)

func main() {
	os.Exit(host.Main("admin", os.Args[1:], os.Stderr, func(ctx context.Context, rt *host.Runtime) ([]host.Service, error) {
		svc, err := admin.FromRuntime(ctx, rt)
		if err != nil {
			return nil, err
		}
		return []host.Service{svc}, nil
	}))
}
