// Command notify runs the notify service on its own, for deployments that scale
// each service separately.
package main

import (
	"context"
	"os"

	"gatehouse.dev/platform/host"
	"gatehouse.dev/services/notify"
)

func main() {
	os.Exit(host.Main("notify", os.Args[1:], os.Stderr, func(ctx context.Context, rt *host.Runtime) ([]host.Service, error) {
		svc, err := notify.FromRuntime(ctx, rt)
		if err != nil {
			return nil, err
		}
		return []host.Service{svc}, nil
	}))
}
