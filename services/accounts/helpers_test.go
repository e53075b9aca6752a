package accounts_test

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"gatehouse.dev/platform/grpcx"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

// passwords remembers the password each test user was registered with, so
// that a test can sign them in (a browser session starts only against an
// authentication proof, which only the right password gives).
var passwords sync.Map // user id → password

// proofFor signs the user in with their password and returns the
// authentication proof StartBrowserSession needs.
func proofFor(t *testing.T, c accountsv1.AccountsServiceClient, userID string) string {
	t.Helper()
	pw, ok := passwords.Load(userID)
	if !ok {
		t.Fatalf("no password known for user %s", userID)
	}
	u, err := c.GetUser(context.Background(), &accountsv1.GetUserRequest{UserId: userID})
	if err != nil {
		t.Fatalf("get user %s: %v", userID, err)
	}
	resp, err := c.VerifyPassword(context.Background(), &accountsv1.VerifyPasswordRequest{Username: u.GetUser().GetUsername(), Password: pw.(string), SecondFactorCapable: true})
	if err != nil {
		t.Fatalf("verify password of %s: %v", userID, err)
	}
	return resp.GetAuthProof()
}

// asUser returns a context whose calls act for the signed-in person whose
// browser session secret is given.
func asUser(secret string) context.Context {
	return grpcx.WithBrowserSession(context.Background(), secret)
}
