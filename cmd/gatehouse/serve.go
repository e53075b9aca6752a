package main

import (
	"context"
	"io"

	"gatehouse.dev/platform/host"
	"gatehouse.dev/services/accounts"
	adminapi "gatehouse.dev/services/admin"
	"gatehouse.dev/services/authorize"
	"gatehouse.dev/services/notify"
	"gatehouse.dev/services/token"
	"gatehouse.dev/services/web"
)

// serve runs the services the configuration names (all six by default) in
// this process.
func serve(args []string, stderr io.Writer) int {
	return host.Main("gatehouse", args, stderr, func(ctx context.Context, rt *host.Runtime) ([]host.Service, error) {
		builders := []struct {
			name  string
			build func(context.Context, *host.Runtime) (host.Service, error)
		}{
			{"accounts", func(ctx context.Context, rt *host.Runtime) (host.Service, error) {
				return accounts.FromRuntime(ctx, rt)
			}},
			{"authorize", func(ctx context.Context, rt *host.Runtime) (host.Service, error) {
				return authorize.FromRuntime(ctx, rt)
			}},
			{"token", func(ctx context.Context, rt *host.Runtime) (host.Service, error) { return token.FromRuntime(ctx, rt) }},
			{"notify", func(ctx context.Context, rt *host.Runtime) (host.Service, error) { return notify.FromRuntime(ctx, rt) }},
			{"web", func(ctx context.Context, rt *host.Runtime) (host.Service, error) { return web.FromRuntime(ctx, rt) }},
			{"admin", func(ctx context.Context, rt *host.Runtime) (host.Service, error) {
				return adminapi.FromRuntime(ctx, rt)
			}},
		}
		var services []host.Service
		for _, b := range builders {
			if !rt.Config.Runs(b.name) {
				continue
			}
			svc, err := b.build(ctx, rt)
			if err != nil {
				return nil, err
			}
			services = append(services, svc)
		}
		return services, nil
	})
}
