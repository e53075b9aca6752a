package accounts_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/accounts"
	"gatehouse.dev/services/accounts/internal/password"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// cheap keeps hashing fast in tests that are not about hashing cost.
var cheap = password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

// start runs an accounts service on real NATS and PostgreSQL behind a real gRPC
// server on loopback and returns a client for it.
func start(t *testing.T) accountsv1.AccountsServiceClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logger := slog.New(slog.DiscardHandler)
	pool, err := pg.Connect(ctx, testkit.Postgres(t), accounts.Schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	svc, err := accounts.New(ctx, accounts.Config{ServerName: "example.org", Passwords: cheap},
		accounts.Deps{Pool: pool, JetStream: testkit.NATS(t), Logger: logger, Keyring: sealed.NewRandomKeyring()})
	if err != nil {
		t.Fatal(err)
	}
	go svc.Run(ctx)

	srv := testkit.ServeGRPC(t, svc.RegisterGRPC, testkit.GRPCOptions{Logger: logger})
	return accountsv1.NewAccountsServiceClient(srv.DialAuto(t))
}

func register(t *testing.T, c accountsv1.AccountsServiceClient, username, pw string) *accountsv1.User {
	t.Helper()
	resp, err := c.Register(context.Background(), &accountsv1.RegisterRequest{SkipVerification: true, Username: username, Password: pw, Email: username + "@example.com"})
	if err != nil {
		t.Fatalf("register %s: %v", username, err)
	}
	passwords.Store(resp.GetUser().GetId(), pw)
	return resp.GetUser()
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("code = %v (%v), want %v", got, err, code)
	}
}

func TestRegisterAndRead(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	u := register(t, c, "alice", "correct horse battery")
	if u.GetUsername() != "alice" || u.GetEmail() != "alice@example.com" || !u.GetHasPassword() || u.GetId() == "" {
		t.Fatalf("registered %v", u)
	}
	byID, err := c.GetUser(ctx, &accountsv1.GetUserRequest{UserId: u.GetId()})
	if err != nil || byID.GetUser().GetUsername() != "alice" {
		t.Fatalf("GetUser = %v, %v", byID, err)
	}
	byName, err := c.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: "alice"})
	if err != nil || byName.GetUser().GetId() != u.GetId() {
		t.Fatalf("GetUserByUsername = %v, %v", byName, err)
	}
	_, err = c.Register(ctx, &accountsv1.RegisterRequest{Username: "alice", Password: "another password"})
	wantCode(t, err, codes.AlreadyExists)
	_, err = c.Register(ctx, &accountsv1.RegisterRequest{SkipVerification: true, Username: "alice2", Password: "another password", Email: "ALICE@example.com"})
	wantCode(t, err, codes.AlreadyExists)
}

// Two concurrent registrations of one username: exactly one user exists.
func TestConcurrentRegistrationsOfOneUsername(t *testing.T) {
	c := start(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.Register(context.Background(), &accountsv1.RegisterRequest{Username: "bob", Password: fmt.Sprintf("password number %d", i)})
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			wins++
		case codes.AlreadyExists:
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d registrations won, want 1", wins)
	}
	list, err := c.ListUsers(context.Background(), &accountsv1.ListUsersRequest{})
	if err != nil || len(list.GetUsers()) != 1 {
		t.Fatalf("users = %v, %v", list, err)
	}
}

func TestVerifyPassword(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	u := register(t, c, "carol", "carol's secret")
	ok, err := c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "carol", Password: "carol's secret"})
	if err != nil || ok.GetUser().GetId() != u.GetId() {
		t.Fatalf("right password: %v, %v", ok, err)
	}
	// A wrong password and an unknown user get the same answer.
	_, wrongPW := c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "carol", Password: "not it at all"})
	_, noUser := c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "nobody", Password: "not it at all"})
	wantCode(t, wrongPW, codes.Unauthenticated)
	wantCode(t, noUser, codes.Unauthenticated)
	if status.Convert(wrongPW).Message() != status.Convert(noUser).Message() {
		t.Fatalf("messages differ: %q vs %q", status.Convert(wrongPW).Message(), status.Convert(noUser).Message())
	}

	// A locked user with the right password is told so; with a wrong one, not.
	if _, err := c.LockUser(ctx, &accountsv1.LockUserRequest{UserId: u.GetId(), Reason: "abuse"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "carol", Password: "carol's secret"})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "carol", Password: "wrong wrong"})
	wantCode(t, err, codes.Unauthenticated)
	if _, err := c.UnlockUser(ctx, &accountsv1.UnlockUserRequest{UserId: u.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "carol", Password: "carol's secret"}); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

func TestPasswordChanges(t *testing.T) {
	c := start(t)
	u := register(t, c, "dave", "first password")
	ctx := asUser(startSession(t, c, u.GetId(), "").GetSecret())
	_, err := c.ChangePassword(ctx, &accountsv1.ChangePasswordRequest{UserId: u.GetId(), CurrentPassword: "wrong one", NewPassword: "second password"})
	wantCode(t, err, codes.Unauthenticated)
	_, err = c.ChangePassword(ctx, &accountsv1.ChangePasswordRequest{UserId: u.GetId(), CurrentPassword: "first password", NewPassword: "short"})
	wantCode(t, err, codes.InvalidArgument)
	if _, err := c.ChangePassword(ctx, &accountsv1.ChangePasswordRequest{UserId: u.GetId(), CurrentPassword: "first password", NewPassword: "second password"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "dave", Password: "second password"}); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if _, err := c.SetPassword(context.Background(), &accountsv1.SetPasswordRequest{UserId: u.GetId(), NewPassword: "third password"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "dave", Password: "second password"})
	wantCode(t, err, codes.Unauthenticated)
}

func TestLifecycleAndAudit(t *testing.T) {
	c := start(t)
	ctx := context.Background() // as an administrator
	u := register(t, c, "erin", "erin's password")
	other := register(t, c, "frank", "frank's password")

	d, err := c.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: u.GetId()})
	if err != nil || !d.GetUser().GetDeactivated() {
		t.Fatalf("deactivate: %v, %v", d, err)
	}
	_, err = c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "erin", Password: "erin's password"})
	wantCode(t, err, codes.FailedPrecondition)
	r, err := c.ReactivateUser(ctx, &accountsv1.ReactivateUserRequest{UserId: u.GetId()})
	if err != nil || r.GetUser().GetDeactivated() {
		t.Fatalf("reactivate: %v, %v", r, err)
	}
	n, err := c.SetDisplayName(ctx, &accountsv1.SetDisplayNameRequest{UserId: u.GetId(), DisplayName: "Erin E."})
	if err != nil || n.GetUser().GetDisplayName() != "Erin E." {
		t.Fatalf("display name: %v, %v", n, err)
	}

	// The audit log has every event, newest first, filtered per user, without secrets.
	var audit *accountsv1.ListAuditEntriesResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		audit, err = c.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: u.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if len(audit.GetEntries()) == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the audit projection is not waited for by commands
	}
	want := []string{"display name set to \"Erin E.\"", "reactivated", "deactivated", "registered as \"erin\" with email \"erin@example.com\" (vouched for by admin:cli)"}
	if len(audit.GetEntries()) != len(want) {
		t.Fatalf("audit entries: %v", audit.GetEntries())
	}
	for i, e := range audit.GetEntries() {
		if e.GetSummary() != want[i] || e.GetUserId() != u.GetId() {
			t.Errorf("entry %d = %q for %s, want %q", i, e.GetSummary(), e.GetUserId(), want[i])
		}
	}
	if a := audit.GetEntries()[0].GetActor(); a != "admin:cli" {
		t.Errorf("actor = %q", a)
	}
	for _, e := range audit.GetEntries() {
		if e.GetUserId() == other.GetId() {
			t.Error("audit for erin lists frank's events")
		}
	}
}

func TestListUsersPages(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	var want []string
	for i := range 5 {
		want = append(want, register(t, c, fmt.Sprintf("user%d", i), "a long enough password").GetId())
	}
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		resp, err := c.ListUsers(ctx, &accountsv1.ListUsersRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range resp.GetUsers() {
			got = append(got, u.GetId())
		}
		token = resp.GetNextPageToken()
		if token == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
}

// Bad input to every method gets a clear status, never a panic or Unknown/Internal.
func TestBadInput(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	u := register(t, c, "grace", "grace's password")
	unknown := "01J00000000000000000000000"
	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"register without username", func() error {
			_, err := c.Register(ctx, &accountsv1.RegisterRequest{Password: "long enough"})
			return err
		}, codes.InvalidArgument},
		{"register upper-case username", func() error { _, err := c.Register(ctx, &accountsv1.RegisterRequest{Username: "Grace"}); return err }, codes.InvalidArgument},
		{"register numeric username", func() error { _, err := c.Register(ctx, &accountsv1.RegisterRequest{Username: "12345"}); return err }, codes.InvalidArgument},
		{"register short password", func() error {
			_, err := c.Register(ctx, &accountsv1.RegisterRequest{Username: "heidi", Password: "short"})
			return err
		}, codes.InvalidArgument},
		{"register bad email", func() error {
			_, err := c.Register(ctx, &accountsv1.RegisterRequest{SkipVerification: true, Username: "ivan", Password: "long enough", Email: "not an email"})
			return err
		}, codes.InvalidArgument},
		{"get empty id", func() error { _, err := c.GetUser(ctx, &accountsv1.GetUserRequest{}); return err }, codes.InvalidArgument},
		{"get unknown id", func() error { _, err := c.GetUser(ctx, &accountsv1.GetUserRequest{UserId: unknown}); return err }, codes.NotFound},
		{"get by empty username", func() error { _, err := c.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{}); return err }, codes.InvalidArgument},
		{"get by unknown username", func() error {
			_, err := c.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: "zed"})
			return err
		}, codes.NotFound},
		{"verify empty", func() error { _, err := c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{}); return err }, codes.Unauthenticated},
		// Only a signed-in person changes a password, and only their own.
		{"change password without a session", func() error {
			_, err := c.ChangePassword(ctx, &accountsv1.ChangePasswordRequest{UserId: unknown, CurrentPassword: "x", NewPassword: "long enough"})
			return err
		}, codes.PermissionDenied},
		{"set password garbage id", func() error {
			_, err := c.SetPassword(ctx, &accountsv1.SetPasswordRequest{UserId: "../../etc", NewPassword: "long enough"})
			return err
		}, codes.InvalidArgument},
		{"lock unknown", func() error { _, err := c.LockUser(ctx, &accountsv1.LockUserRequest{UserId: unknown}); return err }, codes.NotFound},
		{"lock subject wildcard", func() error { _, err := c.LockUser(ctx, &accountsv1.LockUserRequest{UserId: "a.>"}); return err }, codes.InvalidArgument},
		{"unlock empty", func() error { _, err := c.UnlockUser(ctx, &accountsv1.UnlockUserRequest{}); return err }, codes.InvalidArgument},
		{"deactivate unknown", func() error {
			_, err := c.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: unknown})
			return err
		}, codes.NotFound},
		{"reactivate empty", func() error { _, err := c.ReactivateUser(ctx, &accountsv1.ReactivateUserRequest{}); return err }, codes.InvalidArgument},
		{"display name with control characters", func() error {
			_, err := c.SetDisplayName(ctx, &accountsv1.SetDisplayNameRequest{UserId: u.GetId(), DisplayName: "a\x00b"})
			return err
		}, codes.InvalidArgument},
		{"list negative page size", func() error { _, err := c.ListUsers(ctx, &accountsv1.ListUsersRequest{PageSize: -1}); return err }, codes.InvalidArgument},
		{"list bad token", func() error { _, err := c.ListUsers(ctx, &accountsv1.ListUsersRequest{PageToken: "!!"}); return err }, codes.InvalidArgument},
		{"list unknown status", func() error { _, err := c.ListUsers(ctx, &accountsv1.ListUsersRequest{Status: 42}); return err }, codes.InvalidArgument},
		{"audit bad token", func() error {
			_, err := c.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{PageToken: "bm90LWEtbnVtYmVy"})
			return err
		}, codes.InvalidArgument},
		{"audit huge page", func() error {
			_, err := c.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{PageSize: 100000})
			return err
		}, codes.InvalidArgument},
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
}
