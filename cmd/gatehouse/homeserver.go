package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"gatehouse.dev/platform/errs"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// homeserverCommand runs `gatehouse homeserver sync`: the running server
// reconciles the homeserver with every user and every live session's device.
func homeserverCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return finish(stderr, "homeserver", fmt.Errorf("%w: homeserver needs a subcommand: sync", errUsage))
	}
	sub, args := args[0], args[1:]
	a := newAdmin("homeserver "+sub, nil, stdout, stderr)
	if sub != "sync" {
		return finish(stderr, "homeserver "+sub, fmt.Errorf("%w: unknown homeserver subcommand %q", errUsage, sub))
	}
	timeout := a.fs.Duration("timeout", time.Hour, "how long to wait for the sync to finish")
	return finish(stderr, "homeserver sync", a.homeserverSync(ctx, args, timeout))
}

func (a *admin) homeserverSync(ctx context.Context, args []string, timeout *time.Duration) error {
	if err := a.parse(args, 0); err != nil {
		return err
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	start := time.Now()
	resp, err := tokenv1.NewTokenServiceClient(conn).SyncHomeserver(ctx, &tokenv1.SyncHomeserverRequest{})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "synced the homeserver in %s: %d users provisioned (%d created), %d deactivated, %d devices\n",
		time.Since(start).Round(time.Millisecond), resp.GetUsersProvisioned(), resp.GetUsersCreated(), resp.GetUsersDeactivated(), resp.GetDevices())
	if n := resp.GetUsersFailed(); n > 0 {
		for _, f := range resp.GetFailures() {
			fmt.Fprintf(a.stdout, "  refused: %s\n", f)
		}
		return errs.FailedPrecondition(fmt.Sprintf("the homeserver refused %d user(s); see above", n))
	}
	return nil
}
