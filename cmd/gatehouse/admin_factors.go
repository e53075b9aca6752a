package main

import (
	"context"
	"fmt"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// userFactors recovers an account that lost its second factor (every
// factor removed: the person signs in with the password and, if the policy
// requires it, sets up a new one), or requires a second factor of a user.
func (a *admin) userFactors(ctx context.Context, sub string, args []string) error {
	off := a.fs.Bool("off", false, "lift the requirement (require-factor only)")
	if err := a.parse(args, 1); err != nil {
		return err
	}
	c, done, err := a.accounts()
	if err != nil {
		return err
	}
	defer done()
	u, err := lookup(ctx, c, a.positional[0])
	if err != nil {
		return err
	}
	if sub == "reset-factors" {
		if _, err := c.ResetSecondFactors(ctx, &accountsv1.ResetSecondFactorsRequest{UserId: u.GetId()}); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "second factors removed: %s\n", u.GetUsername())
		return nil
	}
	if _, err := c.SetSecondFactorRequired(ctx, &accountsv1.SetSecondFactorRequiredRequest{UserId: u.GetId(), Required: !*off}); err != nil {
		return err
	}
	state := "required"
	if *off {
		state = "no longer required by an administrator"
	}
	fmt.Fprintf(a.stdout, "second factor %s: %s\n", state, u.GetUsername())
	return nil
}
