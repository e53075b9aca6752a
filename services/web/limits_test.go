package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
)

// loginOnce signs in from a new browser (the test server's clients all
// share one address) and returns the answer's status.
func loginOnce(t *testing.T, e *testEnv, username, password string) int {
	t.Helper()
	c := e.client()
	_, body := get(t, c, e.srv.URL+"/login")
	resp, _ := post(t, c, e.srv.URL+"/login", url.Values{"csrf": {csrfField.FindStringSubmatch(body)[1]}, "username": {username}, "password": {password}})
	return resp.StatusCode
}

// Sign-ins with the right password do not spend the address's budget; wrong
// ones do, and the fourth within the minute is refused (MAS's 3 a minute).
func TestOnlyFailedSignInsAreCounted(t *testing.T) {
	e := newTestEnv(t)
	for i := range 10 {
		if got := loginOnce(t, e, "alice", "alice's password"); got != http.StatusSeeOther {
			t.Fatalf("sign-in %d with the right password: %d", i+1, got)
		}
	}
	for i := range 3 {
		if got := loginOnce(t, e, "alice", "wrong"); got != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i+1, got)
		}
	}
	if got := loginOnce(t, e, "bob", "wrong"); got != http.StatusTooManyRequests {
		t.Fatalf("fourth wrong password: %d, want 429", got)
	}
	// Refused before the password is checked, even the right one: the
	// address's budget is spent.
	verified := e.accounts.verified
	if got := loginOnce(t, e, "alice", "alice's password"); got != http.StatusTooManyRequests {
		t.Fatalf("right password past the budget: %d, want 429", got)
	}
	if e.accounts.verified != verified {
		t.Error("a password was checked past the budget")
	}
}

// Recovery is limited per address typed too: a fourth link for one address
// within the hour is refused, whoever asks.
func TestRecoveryPerAddress(t *testing.T) {
	e := newTestEnv(t)
	e.svc.rules.RecoveryPerIP.Burst = 100 // one test server, one client address
	ask := func(email string) (int, string) {
		c := e.client()
		_, body := get(t, c, e.srv.URL+"/recover")
		resp, page := post(t, c, e.srv.URL+"/recover", url.Values{"csrf": {csrfField.FindStringSubmatch(body)[1]}, "email": {email}})
		return resp.StatusCode, page
	}
	e.svc.notify = &countingNotify{}
	for i := range 3 {
		if status, page := ask("victim@example.org"); status != http.StatusOK {
			t.Fatalf("recovery %d: %d\n%s", i+1, status, page)
		}
	}
	status, page := ask("VICTIM@example.org")
	if status != http.StatusTooManyRequests || !strings.Contains(page, "Too many") {
		t.Fatalf("fourth recovery of one address: %d\n%s", status, page)
	}
	if status, _ := ask("other@example.org"); status != http.StatusOK {
		t.Fatalf("another address: %d", status)
	}
}

func (f *fakeAccounts) GetUserByEmail(context.Context, *accountsv1.GetUserByEmailRequest, ...grpc.CallOption) (*accountsv1.GetUserByEmailResponse, error) {
	return nil, errs.NotFound("no such address")
}

// countingNotify starts every verification it is asked for.
type countingNotify struct {
	notifyv1.NotifyServiceClient
	started int
}

func (n *countingNotify) StartVerification(context.Context, *notifyv1.StartVerificationRequest, ...grpc.CallOption) (*notifyv1.StartVerificationResponse, error) {
	n.started++
	return &notifyv1.StartVerificationResponse{VerificationId: "01HXXXXXXXXXXXXXXXXXXXXXXX"}, nil
}
