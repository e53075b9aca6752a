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
	os.Exit(host.Main("token", os.Args[1:], os.Stderr, func(context.Context, *host.Runtime) ([]host.Service, error) {
		return []host.Service{token.New()}, nil
	}))
}
