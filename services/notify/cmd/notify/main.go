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
	os.Exit(host.Main("notify", os.Args[1:], os.Stderr, func(context.Context, *host.Runtime) ([]host.Service, error) {
		return []host.Service{notify.New()}, nil
	}))
}
