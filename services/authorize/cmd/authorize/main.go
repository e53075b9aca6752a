// Command authorize runs the authorize service on its own, for deployments that scale
// each service separately.
package main

import (
	"context"
	"os"

	"gatehouse.dev/platform/host"
	"gatehouse.dev/services/authorize"
)

func main() {
	os.Exit(host.Main("authorize", os.Args[1:], os.Stderr, func(context.Context, *host.Runtime) ([]host.Service, error) {
		return []host.Service{authorize.New()}, nil
	}))
}
