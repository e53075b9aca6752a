package main

import (
	"fmt"
	"io"
	"os"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/grpcx"
	"gatehouse.dev/platform/host"
	"gatehouse.dev/platform/secretfile"
)

// credentialCommand prints the gRPC bearer credential of a caller ("admin",
// or a service's name) derived from the deployment's internal secret, for
// tools such as grpcurl. It is as secret as the internal secret itself.
func credentialCommand(args []string, stdout, stderr io.Writer) int {
	a := newAdmin("credential", nil, stdout, stderr)
	if err := a.parse(args, 1); err != nil {
		return finish(stderr, "credential", err)
	}
	name := a.positional[0]
	if k, ok := caller.ByName(name); !ok || k == caller.Homeserver {
		return finish(stderr, "credential", fmt.Errorf("%w: %q is not admin or a service name", errUsage, name))
	}
	cfg, err := config.Load(*a.configPath, os.Environ())
	if err != nil {
		return finish(stderr, "credential", err)
	}
	secret := []byte(cfg.Internal.Secret)
	if len(secret) == 0 {
		if secret, err = secretfile.Load(host.InternalSecretPath(cfg)); err != nil {
			return finish(stderr, "credential", fmt.Errorf("no internal secret configured, and none generated here: %w", err))
		}
	}
	fmt.Fprintln(stdout, grpcx.DeriveCredential(secret, name))
	return 0
}
