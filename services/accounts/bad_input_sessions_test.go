package accounts_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// Bad input to every email and browser session method gets a clear status,
// never Unknown or Internal.
func TestBadInputToEmailsAndSessions(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	u := register(t, c, "heidi", "heidi's password")
	id := u.GetId()
	other := register(t, c, "ivan", "ivan's password")
	session := startSession(t, c, id, "")
	sid := session.GetSession().GetSessionId()
	locked := register(t, c, "judy", "judy's password")
	lockedProof := proofFor(t, c, locked.GetId())
	if _, err := c.LockUser(ctx, &accountsv1.LockUserRequest{UserId: locked.GetId()}); err != nil {
		t.Fatal(err)
	}
	deactivated := register(t, c, "ken", "ken's password")
	deactivatedProof := proofFor(t, c, deactivated.GetId())
	if _, err := c.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: deactivated.GetId()}); err != nil {
		t.Fatal(err)
	}
	const unknown = "01J00000000000000000000000"
	validSecretShape := strings.Repeat("A", 43)

	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		// GetUserByEmail.
		{"get by empty email", func() error { _, err := c.GetUserByEmail(ctx, &accountsv1.GetUserByEmailRequest{}); return err }, codes.InvalidArgument},
		{"get by malformed email", func() error {
			_, err := c.GetUserByEmail(ctx, &accountsv1.GetUserByEmailRequest{Email: "Heidi <heidi@example.com>"})
			return err
		}, codes.InvalidArgument},
		{"get by unknown email", func() error {
			_, err := c.GetUserByEmail(ctx, &accountsv1.GetUserByEmailRequest{Email: "nobody@example.com"})
			return err
		}, codes.NotFound},

		// AddEmail.
		{"add without user", func() error {
			_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, Email: "x@example.com"})
			return err
		}, codes.InvalidArgument},
		{"add to subject wildcard", func() error {
			_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: "a.>", Email: "x@example.com"})
			return err
		}, codes.InvalidArgument},
		{"add to unknown user", func() error {
			_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: unknown, Email: "x@example.com"})
			return err
		}, codes.NotFound},
		{"add empty email", func() error { _, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: id}); return err }, codes.InvalidArgument},
		{"add malformed email", func() error {
			_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: id, Email: "not an email"})
			return err
		}, codes.InvalidArgument},
		{"add overlong email", func() error {
			_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: id, Email: strings.Repeat("a", 300) + "@example.com"})
			return err
		}, codes.InvalidArgument},
		{"add with malformed verification id", func() error {
			_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: id, Email: "x@example.com", VerificationId: "../../etc"})
			return err
		}, codes.InvalidArgument},
		{"add another user's address", func() error {
			_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: id, Email: other.GetEmail()})
			return err
		}, codes.AlreadyExists},
		{"add to deactivated user", func() error {
			_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: deactivated.GetId(), Email: "ken2@example.com"})
			return err
		}, codes.FailedPrecondition},

		// RemoveEmail.
		{"remove without user", func() error {
			_, err := c.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{Email: "x@example.com"})
			return err
		}, codes.InvalidArgument},
		{"remove from unknown user", func() error {
			_, err := c.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{UserId: unknown, Email: "x@example.com"})
			return err
		}, codes.NotFound},
		{"remove malformed email", func() error {
			_, err := c.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{UserId: id, Email: "@"})
			return err
		}, codes.InvalidArgument},
		{"remove primary email", func() error {
			_, err := c.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{UserId: id, Email: u.GetEmail()})
			return err
		}, codes.FailedPrecondition},

		// SetPrimaryEmail.
		{"set primary without user", func() error {
			_, err := c.SetPrimaryEmail(ctx, &accountsv1.SetPrimaryEmailRequest{Email: "x@example.com"})
			return err
		}, codes.InvalidArgument},
		{"set primary of unknown user", func() error {
			_, err := c.SetPrimaryEmail(ctx, &accountsv1.SetPrimaryEmailRequest{UserId: unknown, Email: "x@example.com"})
			return err
		}, codes.NotFound},
		{"set primary malformed email", func() error {
			_, err := c.SetPrimaryEmail(ctx, &accountsv1.SetPrimaryEmailRequest{UserId: id, Email: "x"})
			return err
		}, codes.InvalidArgument},
		{"set primary to another user's address", func() error {
			_, err := c.SetPrimaryEmail(ctx, &accountsv1.SetPrimaryEmailRequest{UserId: id, Email: other.GetEmail()})
			return err
		}, codes.FailedPrecondition},

		// ListEmails.
		{"list emails without user", func() error { _, err := c.ListEmails(ctx, &accountsv1.ListEmailsRequest{}); return err }, codes.InvalidArgument},
		{"list emails of malformed user", func() error {
			_, err := c.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: "heidi"})
			return err
		}, codes.InvalidArgument},
		{"list emails of unknown user", func() error {
			_, err := c.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: unknown})
			return err
		}, codes.NotFound},

		// StartBrowserSession.
		{"start without user", func() error {
			_, err := c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{})
			return err
		}, codes.InvalidArgument},
		// Nobody can prove to be a user that does not exist.
		{"start for unknown user", func() error {
			_, err := c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: unknown})
			return err
		}, codes.PermissionDenied},
		{"start without proof", func() error {
			_, err := c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: id})
			return err
		}, codes.PermissionDenied},
		{"start with another user's proof", func() error {
			_, err := c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: id, AuthProof: proofFor(t, c, other.GetId())})
			return err
		}, codes.PermissionDenied},
		{"start with a forged proof", func() error {
			_, err := c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: id, AuthProof: id + ".password.1900000000.AAAA"})
			return err
		}, codes.PermissionDenied},
		{"start with malformed address", func() error {
			_, err := c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: id, IpAddress: "192.0.2.1:443"})
			return err
		}, codes.InvalidArgument},
		{"start for locked user with a proof from before the lock", func() error {
			_, err := c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: locked.GetId(), AuthProof: lockedProof})
			return err
		}, codes.FailedPrecondition},
		{"start for deactivated user with a proof from before", func() error {
			_, err := c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: deactivated.GetId(), AuthProof: deactivatedProof})
			return err
		}, codes.FailedPrecondition},

		// AuthenticateBrowserSession.
		{"authenticate empty", func() error { _, err := authenticate(c, "", ""); return err }, codes.Unauthenticated},
		{"authenticate garbage", func() error { _, err := authenticate(c, "'; DROP TABLE users; --", ""); return err }, codes.Unauthenticated},
		{"authenticate unknown secret", func() error { _, err := authenticate(c, validSecretShape, ""); return err }, codes.Unauthenticated},
		{"authenticate with the session id", func() error { _, err := authenticate(c, sid, ""); return err }, codes.Unauthenticated},
		{"authenticate with a huge secret", func() error { _, err := authenticate(c, strings.Repeat("A", 1<<16), ""); return err }, codes.Unauthenticated},
		{"authenticate with malformed address", func() error {
			_, err := authenticate(c, session.GetSecret(), "not-an-ip")
			return err
		}, codes.InvalidArgument},

		// EndBrowserSession.
		{"end without session", func() error { _, err := c.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{}); return err }, codes.InvalidArgument},
		{"end malformed session", func() error {
			_, err := c.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: "a.*"})
			return err
		}, codes.InvalidArgument},
		{"end unknown session", func() error {
			_, err := c.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: unknown})
			return err
		}, codes.NotFound},
		{"end with malformed owner", func() error {
			_, err := c.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: sid, UserId: "heidi"})
			return err
		}, codes.InvalidArgument},
		{"end another user's session", func() error {
			_, err := c.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: sid, UserId: other.GetId()})
			return err
		}, codes.NotFound},

		// ListBrowserSessions.
		{"list sessions without user", func() error {
			_, err := c.ListBrowserSessions(ctx, &accountsv1.ListBrowserSessionsRequest{})
			return err
		}, codes.InvalidArgument},
		{"list sessions of unknown user", func() error {
			_, err := c.ListBrowserSessions(ctx, &accountsv1.ListBrowserSessionsRequest{UserId: unknown})
			return err
		}, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			wantCode(t, err, tt.want)
			if msg := status.Convert(err).Message(); msg == "" {
				t.Error("empty error message")
			}
		})
	}
	// None of it harmed the session.
	if _, err := authenticate(c, session.GetSecret(), ""); err != nil {
		t.Fatalf("session after bad input: %v", err)
	}
}
