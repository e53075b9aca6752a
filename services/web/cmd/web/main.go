// Command web runs the web service on its own, for deployments that scale
// each service separately.
package main

import (
	"context"
	"os"

	"gatehouse.dev/platform/host"
	"gatehouse.dev/services/web"
)

func main() {
	os.Exit(host.Main("web", os.Args[1:], os.Stderr, func(ctx context.Context, rt *host.Runtime) ([]host.Service, error) {
		svc, err := web.FromRuntime(ctx, rt)
		if err != nil {
			return nil, err
		}
		return []host.Service{svc}, nil
	}))
}
