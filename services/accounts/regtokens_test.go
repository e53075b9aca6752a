package accounts_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/accounts"
)

// A token allowing n uses admits exactly n registrations, however many race;
// revoked and expired tokens admit none, and every refusal looks the same.
func TestRegistrationTokens(t *testing.T) {
	clock := newFakeClock()
	h := startHarness(t, func(c *accounts.Config) { c.Clock = clock.Now })
	c := h.c
	ctx := context.Background()

	created, err := c.CreateRegistrationToken(ctx, &accountsv1.CreateRegistrationTokenRequest{UsesAllowed: 3})
	if err != nil {
		t.Fatal(err)
	}
	token := created.GetToken()
	if len(token) < 20 {
		t.Fatalf("token %q", token)
	}
	const racers = 8
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won int
	)
	for range racers {
		wg.Go(func() {
			_, err := c.UseRegistrationToken(ctx, &accountsv1.UseRegistrationTokenRequest{Token: token})
			switch codeOf(err) {
			case codes.OK:
				mu.Lock()
				won++
				mu.Unlock()
			case codes.FailedPrecondition:
			default:
				t.Errorf("unexpected error %v", err)
			}
		})
	}
	wg.Wait()
	if won != 3 {
		t.Fatalf("%d registrations used a 3-use token", won)
	}

	expiring, err := c.CreateRegistrationToken(ctx, &accountsv1.CreateRegistrationTokenRequest{ExpiresAt: timestamppb.New(clock.Now().Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UseRegistrationToken(ctx, &accountsv1.UseRegistrationTokenRequest{Token: expiring.GetToken()}); err != nil {
		t.Fatalf("unexpired token: %v", err)
	}
	clock.Advance(2 * time.Hour)
	_, expiredErr := c.UseRegistrationToken(ctx, &accountsv1.UseRegistrationTokenRequest{Token: expiring.GetToken()})

	unlimited, _ := c.CreateRegistrationToken(ctx, &accountsv1.CreateRegistrationTokenRequest{})
	if _, err := c.RevokeRegistrationToken(ctx, &accountsv1.RevokeRegistrationTokenRequest{TokenId: unlimited.GetRegistrationToken().GetTokenId()}); err != nil {
		t.Fatal(err)
	}
	_, revokedErr := c.UseRegistrationToken(ctx, &accountsv1.UseRegistrationTokenRequest{Token: unlimited.GetToken()})
	_, unknownErr := c.UseRegistrationToken(ctx, &accountsv1.UseRegistrationTokenRequest{Token: "not-a-token-we-issued"})
	for name, err := range map[string]error{"expired": expiredErr, "revoked": revokedErr, "unknown": unknownErr} {
		if codeOf(err) != codes.FailedPrecondition || msgOf(err) != "This registration token is not valid." {
			t.Errorf("%s token: %v", name, err)
		}
	}

	list, err := c.ListRegistrationTokens(ctx, &accountsv1.ListRegistrationTokensRequest{})
	if err != nil || len(list.GetRegistrationTokens()) != 3 {
		t.Fatalf("list: %v, %v", list, err)
	}
	for _, rt := range list.GetRegistrationTokens() {
		if rt.GetTokenId() == created.GetRegistrationToken().GetTokenId() && rt.GetUses() != 3 {
			t.Errorf("uses = %d, want 3", rt.GetUses())
		}
	}
	for _, bad := range []*accountsv1.CreateRegistrationTokenRequest{{UsesAllowed: -1}, {ExpiresAt: timestamppb.New(clock.Now().Add(-time.Minute))}} {
		if _, err := c.CreateRegistrationToken(ctx, bad); codeOf(err) != codes.InvalidArgument {
			t.Errorf("create %v: %v", bad, err)
		}
	}
	if _, err := c.RevokeRegistrationToken(ctx, &accountsv1.RevokeRegistrationTokenRequest{TokenId: "x.y"}); codeOf(err) != codes.InvalidArgument {
		t.Errorf("revoke bad id: %v", err)
	}
}

func codeOf(err error) codes.Code { return status.Code(err) }

func msgOf(err error) string { return status.Convert(err).Message() }
