package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

func registrationTokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return finish(stderr, "registration-token", fmt.Errorf("%w: registration-token needs add, list or revoke", errUsage))
	}
	sub, args := args[0], args[1:]
	a := newAdmin("registration-token "+sub, nil, stdout, stderr)
	return finish(stderr, "registration-token "+sub, a.registrationToken(ctx, sub, args))
}

func (a *admin) registrationToken(ctx context.Context, sub string, args []string) error {
	uses := a.fs.Int("uses", 0, "how many accounts it may create; 0: unlimited (add)")
	expires := a.fs.Duration("expires", 0, "how long it stays valid, e.g. 72h; 0: forever (add)")
	want := map[string]int{"add": 0, "list": 0, "revoke": 1}
	n, ok := want[sub]
	if !ok {
		return fmt.Errorf("%w: unknown registration-token subcommand %q", errUsage, sub)
	}
	if err := a.parse(args, n); err != nil {
		return err
	}
	if *uses < 0 || *expires < 0 {
		return fmt.Errorf("%w: --uses and --expires cannot be negative", errUsage)
	}
	c, done, err := a.accounts()
	if err != nil {
		return err
	}
	defer done()
	switch sub {
	case "add":
		req := &accountsv1.CreateRegistrationTokenRequest{UsesAllowed: int32(*uses)}
		if *expires > 0 {
			req.ExpiresAt = timestamppb.New(time.Now().Add(*expires))
		}
		resp, err := c.CreateRegistrationToken(ctx, req)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "%s\n(id %s; hand the token out once: it is not shown again)\n", resp.GetToken(), resp.GetRegistrationToken().GetTokenId())
	case "revoke":
		if _, err := c.RevokeRegistrationToken(ctx, &accountsv1.RevokeRegistrationTokenRequest{TokenId: a.positional[0]}); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "revoked %s\n", a.positional[0])
	case "list":
		resp, err := c.ListRegistrationTokens(ctx, &accountsv1.ListRegistrationTokensRequest{})
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tUSES\tEXPIRES\tSTATE")
		for _, t := range resp.GetRegistrationTokens() {
			limit, exp, state := "unlimited", "never", "valid"
			if t.GetUsesAllowed() > 0 {
				limit = fmt.Sprint(t.GetUsesAllowed())
			}
			if t.GetExpiresAt() != nil {
				exp = t.GetExpiresAt().AsTime().Format(time.RFC3339)
			}
			if t.GetRevoked() {
				state = "revoked"
			}
			fmt.Fprintf(w, "%s\t%d/%s\t%s\t%s\n", t.GetTokenId(), t.GetUses(), limit, exp, state)
		}
		return w.Flush()
	}
	return nil
}
