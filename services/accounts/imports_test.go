package accounts_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts"
)

// synapseHash is the hash Synapse keeps of pw with its pepper.
func synapseHash(t *testing.T, pw, pepper string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw+pepper), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return "$2b$" + string(h[4:])
}

// Importing users from Synapse: each user once with its flags, verified
// addresses and links; its hash verifies with Synapse's pepper and is
// upgraded at the first sign-in; a name or an address someone holds is not
// taken; the personal data is sealed; the audit log says where the user
// came from; a run again changes nothing.
func TestImportUsers(t *testing.T) {
	const pepper = "synapse-pepper"
	h := startHarness(t, func(c *accounts.Config) {
		withProvider(c)
		c.BcryptPepper = pepper
	})
	ctx := context.Background()
	register(t, h.c, "taken", "taken's password")
	created := time.Date(2019, 5, 1, 12, 0, 0, 0, time.UTC)
	id := func(mxid string) string { return ids.Derive(created, "user", mxid) }
	users := []*accountsv1.ImportedUser{
		{UserId: id("alice"), Username: "Alice", ExternalId: "@Alice:example.org", CreatedAt: timestamppb.New(created), Admin: true,
			DisplayName: "Alice Liddell", PasswordHash: synapseHash(t, "alice's old password", pepper),
			Emails: []*accountsv1.ImportedUserEmail{{Email: "Alice@Example.COM"}, {Email: "alice@work.example"}},
			Links:  []*accountsv1.ImportedUserLink{{SynapseAuthProvider: "oidc-test", Subject: "sub-alice"}}},
		{UserId: id("bob"), Username: "bob", ExternalId: "@bob:example.org", CreatedAt: timestamppb.New(created), Locked: true,
			PasswordHash: synapseHash(t, "bob's password", pepper)},
		{UserId: id("carol"), Username: "carol", ExternalId: "@carol:example.org", CreatedAt: timestamppb.New(created), Deactivated: true},
		{UserId: id("taken"), Username: "taken", ExternalId: "@taken:example.org"},
		{UserId: id("dave"), Username: "dave", ExternalId: "@dave:example.org", Emails: []*accountsv1.ImportedUserEmail{{Email: "taken@example.com"}}},
		{UserId: id("bad"), Username: "has:colon", ExternalId: "@has:colon:example.org"},
		{UserId: "not-a-ulid", Username: "x", ExternalId: "@x:example.org"},
	}
	want := []accountsv1.ImportOutcome{
		accountsv1.ImportOutcome_IMPORT_OUTCOME_IMPORTED, accountsv1.ImportOutcome_IMPORT_OUTCOME_IMPORTED,
		accountsv1.ImportOutcome_IMPORT_OUTCOME_IMPORTED, accountsv1.ImportOutcome_IMPORT_OUTCOME_CLASH,
		accountsv1.ImportOutcome_IMPORT_OUTCOME_IMPORTED, accountsv1.ImportOutcome_IMPORT_OUTCOME_INVALID,
		accountsv1.ImportOutcome_IMPORT_OUTCOME_INVALID,
	}
	// A dry run writes nothing.
	dry, err := h.c.ImportUsers(ctx, &accountsv1.ImportUsersRequest{Source: "synapse", Users: users, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := dry.GetResults()[0].GetOutcome(); got != accountsv1.ImportOutcome_IMPORT_OUTCOME_WOULD_IMPORT {
		t.Errorf("dry run: %v", got)
	}
	if n := len(h.events(t, "accounts.user.>")); n != 1 {
		t.Errorf("after a dry run, %d user events, want the one registration", n)
	}

	resp, err := h.c.ImportUsers(ctx, &accountsv1.ImportUsersRequest{Source: "synapse", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range resp.GetResults() {
		if r.GetOutcome() != want[i] {
			t.Errorf("%s: %v (%s), want %v", users[i].GetUsername(), r.GetOutcome(), r.GetMessage(), want[i])
		}
	}
	if notes := resp.GetResults()[4].GetNotes(); len(notes) != 1 || !strings.Contains(notes[0], "another user") {
		t.Errorf("dave's notes: %v", notes)
	}

	// The hash verifies with the pepper; the sign-in upgrades it to argon2id.
	v, err := h.c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "Alice", Password: "alice's old password"})
	if err != nil {
		t.Fatalf("sign-in with the Synapse password: %v", err)
	}
	if u := v.GetUser(); !u.GetAdmin() || u.GetDisplayName() != "Alice Liddell" || u.GetEmail() != "alice@example.com" ||
		!u.GetCreatedAt().AsTime().Equal(created) {
		t.Errorf("alice: %v", u)
	}
	eventually(t, "the hash upgraded to argon2id", func() error {
		for _, rec := range h.events(t, "accounts.user."+id("alice")) {
			if ev, ok := rec.Event.(*eventsv1.PasswordChanged); ok && ev.GetReason() == eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_UPGRADE {
				return nil
			}
		}
		return status.Error(codes.NotFound, "no upgrade")
	})
	if _, err := h.c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "Alice", Password: "alice's old password"}); err != nil {
		t.Errorf("sign-in after the upgrade: %v", err)
	}
	if _, err := h.c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "Alice", Password: "wrong"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := h.c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "bob", Password: "bob's password"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("locked bob signs in: %v", err)
	}

	emails, err := h.c.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: id("alice")})
	if err != nil {
		t.Fatal(err)
	}
	if got := emails.GetEmails(); len(got) != 2 || got[0].GetEmail() != "alice@example.com" || !got[0].GetPrimary() || got[1].GetEmail() != "alice@work.example" {
		t.Errorf("alice's emails: %v", got)
	}
	for _, e := range emails.GetEmails() {
		if e.GetEmailId() == "" { // the read model's email_id is NOT NULL since the admin API
			t.Errorf("imported email %s has no id", e.GetEmail())
		}
	}
	links, err := h.c.ListUpstreamLinks(ctx, &accountsv1.ListUpstreamLinksRequest{UserId: id("alice")})
	if err != nil {
		t.Fatal(err)
	}
	if got := links.GetLinks(); len(got) != 1 || got[0].GetSubject() != "sub-alice" || got[0].GetSource() != "import" {
		t.Errorf("alice's links: %v", got)
	}
	// The identity is alice's: nobody else can be linked to it.
	if _, err := h.c.AddUpstreamLink(ctx, &accountsv1.AddUpstreamLinkRequest{UserId: id("bob"), SynapseAuthProvider: "oidc-test", Subject: "sub-alice"}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("linking alice's identity to bob: %v", err)
	}

	// Personal data and the hash are sealed in the stream.
	for _, rec := range h.events(t, "accounts.user."+id("alice")) {
		ev, ok := rec.Event.(*eventsv1.UserImported)
		if !ok {
			continue
		}
		if ev.GetDisplayName() != "" || ev.GetEmails()[0].GetEmail() != "" || ev.GetLinks()[0].GetSealedSubject() == nil ||
			ev.GetSealedDisplayName() == nil || ev.GetSealedPasswordHash() == nil || ev.GetPasswordScheme() != "bcrypt" {
			t.Errorf("UserImported holds personal data in clear or misses its sealed fields: %v", ev)
		}
		if strings.Contains(rec.Envelope.String(), "alice@") {
			t.Error("an address is in clear in the envelope")
		}
	}

	// The audit trail follows the stream on its own.
	eventually(t, "an audit entry saying alice was imported from Synapse", func() error {
		audit, err := h.c.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: id("alice")})
		if err != nil {
			return err
		}
		for _, e := range audit.GetEntries() {
			if strings.Contains(e.GetSummary(), `imported from Synapse as "Alice" (@Alice:example.org), administrator`) {
				return nil
			}
		}
		return fmt.Errorf("entries: %v", audit.GetEntries())
	})

	// Again: nothing changes.
	before := len(h.events(t, "accounts.>"))
	again, err := h.c.ImportUsers(ctx, &accountsv1.ImportUsersRequest{Source: "synapse", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again.GetResults() {
		w := want[i]
		if w == accountsv1.ImportOutcome_IMPORT_OUTCOME_IMPORTED {
			w = accountsv1.ImportOutcome_IMPORT_OUTCOME_ALREADY_IMPORTED
		}
		if r.GetOutcome() != w {
			t.Errorf("again, %s: %v (%s), want %v", users[i].GetUsername(), r.GetOutcome(), r.GetMessage(), w)
		}
	}
	if after := len(h.events(t, "accounts.>")); after != before {
		t.Errorf("a run again wrote %d events", after-before)
	}

	found2, err := h.c.FindUsernames(ctx, &accountsv1.FindUsernamesRequest{Usernames: []string{"alice", "nobody"}})
	if err != nil {
		t.Fatal(err)
	}
	if f := found2.GetFound(); len(f) != 1 || f[0].GetUsername() != "Alice" || f[0].GetAsked() != "alice" || f[0].GetImportedFrom() != "synapse" {
		t.Errorf("FindUsernames: %v", f)
	}
}

// Registration tokens come over by their hashes, once.
func TestImportRegistrationTokens(t *testing.T) {
	h := startHarness(t, nil)
	ctx := context.Background()
	tokens := []*accountsv1.ImportedRegistrationToken{
		{TokenId: ids.New(), TokenHash: strings.Repeat("ab", 32), UsesAllowed: 3},
		{TokenId: ids.New(), TokenHash: "nothex"},
	}
	for _, want := range []accountsv1.ImportOutcome{accountsv1.ImportOutcome_IMPORT_OUTCOME_IMPORTED, accountsv1.ImportOutcome_IMPORT_OUTCOME_ALREADY_IMPORTED} {
		resp, err := h.c.ImportRegistrationTokens(ctx, &accountsv1.ImportRegistrationTokensRequest{Source: "synapse", Tokens: tokens})
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.GetResults(); r[0].GetOutcome() != want || r[1].GetOutcome() != accountsv1.ImportOutcome_IMPORT_OUTCOME_INVALID {
			t.Errorf("results %v, want %v then invalid", r, want)
		}
	}
	list, err := h.c.ListRegistrationTokens(ctx, &accountsv1.ListRegistrationTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := list.GetRegistrationTokens(); len(got) != 1 || got[0].GetUsesAllowed() != 3 {
		t.Errorf("tokens: %v", got)
	}
	if _, err := h.c.ImportRegistrationTokens(ctx, &accountsv1.ImportRegistrationTokensRequest{Source: "dendrite"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown source: %v", err)
	}
}
