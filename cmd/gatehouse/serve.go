package main

import (
	"context"
	"io"

	"gatehouse.dev/platform/host"
	"gatehouse.dev/services/accounts"
	"gatehouse.dev/services/authorize"
	"gatehouse.dev/services/notify"
	"gatehouse.dev/services/token"
	"gatehouse.dev/services/web"
)

// serve runs the services the configuration names (all five by default) in
// this process.
func serve(args []string, stderr io.Writer) int {
	return host.Main("gatehouse", args, stderr, func(ctx context.Context, rt *host.Runtime) ([]host.Service, error) {
		var services []host.Service
		if rt.Config.Runs("accounts") {
			svc, err := accounts.FromRuntime(ctx, rt)
			if err != nil {
				return nil, err
			}
			services = append(services, svc)
		}
		for _, s := range []host.Service{authorize.New(), token.New(), notify.New(), web.New()} {
			if rt.Config.Runs(s.Name()) {
				services = append(services, s)
			}
		}
		return services, nil
	})
}
