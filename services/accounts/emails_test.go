package accounts_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// emailList renders addresses as "a@x*, b@y" with the primary one starred,
// failing on an unverified one.
func emailList(t *testing.T, emails []*accountsv1.Email) string {
	t.Helper()
	var parts []string
	for _, e := range emails {
		if !e.GetVerified() || e.GetAddedAt() == nil {
			t.Fatalf("address %v is not verified or has no time", e)
		}
		s := e.GetEmail()
		if e.GetPrimary() {
			s += "*"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func TestEmails(t *testing.T) {
	h := startHarness(t, nil)
	c, ctx := h.c, context.Background()
	alice := register(t, c, "alice", "alice's password")
	id := alice.GetId()

	list, err := c.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: id})
	if err != nil || emailList(t, list.GetEmails()) != "alice@example.com*" {
		t.Fatalf("ListEmails = %v, %v", list, err)
	}

	proved := h.confirm(t, confirmation{email: "alice.work@example.org", purpose: addEmailPurpose, userID: id})
	added, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: id, Email: " Alice.Work@Example.ORG ", VerificationId: proved})
	if err != nil || emailList(t, added.GetEmails()) != "alice@example.com*, alice.work@example.org" {
		t.Fatalf("AddEmail = %v, %v", added, err)
	}
	if got := added.GetEmails()[1].GetVerificationId(); got != proved {
		t.Fatalf("added address records verification %q, want %q", got, proved)
	}
	// Adding it again changes nothing.
	again, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: id, Email: "alice.work@example.org"})
	if err != nil || emailList(t, again.GetEmails()) != "alice@example.com*, alice.work@example.org" {
		t.Fatalf("AddEmail again = %v, %v", again, err)
	}
	for _, addr := range []string{"alice@example.com", "ALICE.WORK@example.org"} {
		byEmail, err := c.GetUserByEmail(ctx, &accountsv1.GetUserByEmailRequest{Email: addr})
		if err != nil || byEmail.GetUser().GetId() != id {
			t.Fatalf("GetUserByEmail(%s) = %v, %v", addr, byEmail, err)
		}
	}

	primary, err := c.SetPrimaryEmail(ctx, &accountsv1.SetPrimaryEmailRequest{UserId: id, Email: "Alice.Work@example.org"})
	if err != nil || emailList(t, primary.GetEmails()) != "alice.work@example.org*, alice@example.com" {
		t.Fatalf("SetPrimaryEmail = %v, %v", primary, err)
	}
	if u, err := c.GetUser(ctx, &accountsv1.GetUserRequest{UserId: id}); err != nil || u.GetUser().GetEmail() != "alice.work@example.org" {
		t.Fatalf("user's email after SetPrimaryEmail: %v, %v", u, err)
	}

	_, err = c.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{UserId: id, Email: "alice.work@example.org"})
	wantCode(t, err, codes.FailedPrecondition)
	removed, err := c.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{UserId: id, Email: "alice@example.com"})
	if err != nil || emailList(t, removed.GetEmails()) != "alice.work@example.org*" {
		t.Fatalf("RemoveEmail = %v, %v", removed, err)
	}
	// Removing an address the user does not have changes nothing.
	if _, err := c.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{UserId: id, Email: "alice@example.com"}); err != nil {
		t.Fatalf("RemoveEmail again: %v", err)
	}
	_, err = c.GetUserByEmail(ctx, &accountsv1.GetUserByEmailRequest{Email: "alice@example.com"})
	wantCode(t, err, codes.NotFound)
	_, err = c.SetPrimaryEmail(ctx, &accountsv1.SetPrimaryEmailRequest{UserId: id, Email: "alice@example.com"})
	wantCode(t, err, codes.FailedPrecondition)

	// A user registered without an address gets a primary one with the first added.
	bob, err := c.Register(ctx, &accountsv1.RegisterRequest{Username: "bob", Password: "bob's password"})
	if err != nil {
		t.Fatal(err)
	}
	if list, err := c.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: bob.GetUser().GetId()}); err != nil || len(list.GetEmails()) != 0 {
		t.Fatalf("bob's addresses: %v, %v", list, err)
	}
	if added, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: bob.GetUser().GetId(), Email: "bob@example.net"}); err != nil || emailList(t, added.GetEmails()) != "bob@example.net*" {
		t.Fatalf("bob's first address: %v, %v", added, err)
	}
	if u, err := c.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: "bob"}); err != nil || u.GetUser().GetEmail() != "bob@example.net" {
		t.Fatalf("bob: %v, %v", u, err)
	}

	// The audit log tells what happened to alice's addresses (their
	// claims, which only keep each unique, make no entries).
	eventually(t, "audit of alice's addresses", func() error {
		audit, err := c.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: id})
		if err != nil {
			return err
		}
		var got []string
		for _, e := range audit.GetEntries() {
			got = append(got, e.GetSummary())
		}
		slices.Reverse(got)
		want := []string{
			`registered as "alice" with email "alice@example.com" (vouched for by admin:cli)`,
			`email "alice.work@example.org" added (verification ` + proved + `)`,
			`primary email set to "alice.work@example.org"`,
			`email "alice@example.com" removed`,
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("audit = %q", got)
		}
		return nil
	})

	// A rebuild of the users projection from the stream gives the same addresses.
	if _, err := h.svc.Projections().Rebuild(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	if list, err := c.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: id}); err != nil || emailList(t, list.GetEmails()) != "alice.work@example.org*" {
		t.Fatalf("after rebuild: %v, %v", list, err)
	}
	if u, err := c.GetUserByEmail(ctx, &accountsv1.GetUserByEmailRequest{Email: "bob@example.net"}); err != nil || u.GetUser().GetUsername() != "bob" {
		t.Fatalf("after rebuild: %v, %v", u, err)
	}
}

// Several users add one address at once: exactly one holds it. Once released,
// it can be claimed again, by adding or by registering.
func TestEmailRaceAndReclaim(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	const n = 6
	users := make([]*accountsv1.User, n)
	for i := range users {
		users[i] = register(t, c, fmt.Sprintf("racer%d", i), "a long enough password")
	}
	const contested = "prize@example.org"
	var wg sync.WaitGroup
	results := make([]error, n)
	startLine := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-startLine
			_, results[i] = c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: users[i].GetId(), Email: contested})
		})
	}
	close(startLine)
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch status.Code(err) {
		case codes.OK:
			if winner >= 0 {
				t.Fatalf("users %d and %d both hold %s", winner, i, contested)
			}
			winner = i
		case codes.AlreadyExists:
		default:
			t.Fatalf("user %d: unexpected error %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("nobody holds the address")
	}
	holder := func() string {
		u, err := c.GetUserByEmail(ctx, &accountsv1.GetUserByEmailRequest{Email: contested})
		if err != nil {
			t.Fatalf("GetUserByEmail: %v", err)
		}
		return u.GetUser().GetId()
	}
	if got := holder(); got != users[winner].GetId() {
		t.Fatalf("holder = %s, want %s", got, users[winner].GetId())
	}
	for i, u := range users {
		list, err := c.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: u.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if has := strings.Contains(emailList(t, list.GetEmails()), contested); has != (i == winner) {
			t.Fatalf("user %d has the address: %v", i, has)
		}
	}
	// Nobody else may register with it either.
	_, err := c.Register(ctx, &accountsv1.RegisterRequest{SkipVerification: true, Username: "latecomer", Password: "a long enough password", Email: contested})
	wantCode(t, err, codes.AlreadyExists)

	// Released, it goes to another user.
	next := (winner + 1) % n
	if _, err := c.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{UserId: users[winner].GetId(), Email: contested}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: users[next].GetId(), Email: contested}); err != nil {
		t.Fatalf("claim a released address: %v", err)
	}
	if got := holder(); got != users[next].GetId() {
		t.Fatalf("holder = %s, want %s", got, users[next].GetId())
	}
	_, err = c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: users[winner].GetId(), Email: contested})
	wantCode(t, err, codes.AlreadyExists)

	// Released again, a registration claims it.
	if _, err := c.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{UserId: users[next].GetId(), Email: contested}); err != nil {
		t.Fatal(err)
	}
	reg, err := c.Register(ctx, &accountsv1.RegisterRequest{SkipVerification: true, Username: "latecomer", Password: "a long enough password", Email: contested})
	if err != nil {
		t.Fatalf("register with a released address: %v", err)
	}
	if got := holder(); got != reg.GetUser().GetId() {
		t.Fatalf("holder = %s, want the new user %s", got, reg.GetUser().GetId())
	}
}

// A registration and an AddEmail race for one address: exactly one wins.
func TestEmailRaceWithRegistration(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	for round := range 3 {
		addr := fmt.Sprintf("round%d@example.org", round)
		existing := register(t, c, fmt.Sprintf("holder%d", round), "a long enough password")
		var wg sync.WaitGroup
		var regErr, addErr error
		startLine := make(chan struct{})
		wg.Go(func() {
			<-startLine
			_, regErr = c.Register(ctx, &accountsv1.RegisterRequest{SkipVerification: true, Username: fmt.Sprintf("newcomer%d", round), Password: "a long enough password", Email: addr})
		})
		wg.Go(func() {
			<-startLine
			_, addErr = c.AddEmail(ctx, &accountsv1.AddEmailRequest{SkipVerification: true, UserId: existing.GetId(), Email: addr})
		})
		close(startLine)
		wg.Wait()
		codesGot := []codes.Code{status.Code(regErr), status.Code(addErr)}
		if !slices.Contains(codesGot, codes.OK) || !slices.Contains(codesGot, codes.AlreadyExists) {
			t.Fatalf("round %d: register %v, add %v; want one OK and one AlreadyExists", round, regErr, addErr)
		}
	}
}
