package accounts_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/prototext"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts"
)

// Erasing a user (deactivate with erase) leaves none of their personal data
// readable: not in any table of the service's schema, not in the stream even
// for whoever holds the key-encryption key (their personal key is gone), not
// in the audit log's summaries; their addresses are free for others, their
// account cannot come back, and a rebuild shows them erased. Another user's
// data is untouched.
func TestEraseLeavesNoPersonalData(t *testing.T) {
	clock := newFakeClock()
	h := startHarness(t, func(cfg *accounts.Config) {
		cfg.Clock = clock.Now
		cfg.ActivityFlushInterval = 50 * time.Millisecond
	})
	c, ctx := h.c, context.Background()

	type person struct {
		name, display, email2, ip, ip2 string
		secret                         string
		user                           *accountsv1.User
	}
	alice, bob := &person{name: "alice", display: "Alice Liddell-Erasable", email2: "alice.second@example.net", ip: "192.0.2.77", ip2: "2001:db8:77::1"},
		&person{name: "bob", display: "Bob Keeps-His-Data", email2: "bob.second@example.net", ip: "198.51.100.88", ip2: "2001:db8:88::1"}
	people := []*person{alice, bob}
	for _, p := range people {
		p.user = register(t, c, p.name, p.name+"'s long password")
		if _, err := c.SetDisplayName(ctx, &accountsv1.SetDisplayNameRequest{UserId: p.user.GetId(), DisplayName: p.display}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: p.user.GetId(), Email: p.email2, SkipVerification: true}); err != nil {
			t.Fatal(err)
		}
		resp, err := c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: p.user.GetId(), UserAgent: p.name + "'s browser/1.0",
			IpAddress: p.ip, AuthProof: proofFor(t, c, p.user.GetId())})
		if err != nil {
			t.Fatal(err)
		}
		p.secret = resp.GetSecret()
	}
	h.confirm(t, confirmation{email: bob.email2, purpose: addEmailPurpose, userID: bob.user.GetId()}) // the NOTIFY_PENDING stream exists
	// The TOKEN stream exists too: its sessions' read model is rebuilt below.
	if _, err := eventlog.Open(ctx, h.js, eventlog.StreamOf(eventsv1.Token, 1)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour) // activity is recorded in whole seconds, after the start
	for _, p := range people {
		if _, err := authenticate(c, p.secret, p.ip2); err != nil {
			t.Fatal(err)
		}
	}
	personalData := func(p *person) []string {
		return []string{p.name + "@example.com", p.email2, p.display, p.ip, p.ip2, p.name + "'s browser/1.0"}
	}
	// Wait until the activity (the second addresses) reached the read model.
	eventually(t, "activity recorded", func() error {
		for _, p := range people {
			if rows := h.rowsHolding(t, p.ip2); len(rows) == 0 {
				return fmt.Errorf("%s's second address not in the read model yet", p.name)
			}
		}
		return nil
	})

	resp, err := c.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: alice.user.GetId(), Erase: true})
	if err != nil {
		t.Fatal(err)
	}
	if u := resp.GetUser(); !u.GetErased() || !u.GetDeactivated() || u.GetEmail() != "" || u.GetDisplayName() != "" || u.GetHasPassword() || u.GetUsername() != "alice" {
		t.Fatalf("erased user = %v", u)
	}

	check := func(t *testing.T, except ...string) {
		t.Helper()
		for _, v := range personalData(alice) {
			if slices.Contains(except, v) {
				continue
			}
			if rows := h.rowsHolding(t, v); len(rows) > 0 {
				t.Errorf("the read models still hold alice's %q: %v", v, rows)
			}
		}
		for _, v := range []string{bob.name + "@example.com", bob.email2, bob.display, bob.ip2} {
			if rows := h.rowsHolding(t, v); len(rows) == 0 {
				t.Errorf("bob's %q is gone from the read models", v)
			}
		}
	}
	check(t)

	// The stream: alice's key is gone, so with every key Gatehouse has,
	// none of her events opens to anything of hers; bob's still open.
	if _, err := h.personal(t).Get(ctx, personal.User(alice.user.GetId())); !errors.Is(err, personal.ErrErased) {
		t.Fatalf("alice's personal key: %v, want it destroyed", err)
	}
	var opened strings.Builder
	for _, rec := range h.events(t, "accounts.>") {
		if err := h.personal(t).UnsealRecord(ctx, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Event != nil {
			opened.WriteString(prototext.Format(rec.Event))
		}
	}
	for _, v := range personalData(alice) {
		if strings.Contains(opened.String(), v) {
			t.Errorf("alice's %q still opens from the stream", v)
		}
	}
	if !strings.Contains(opened.String(), bob.email2) || !strings.Contains(opened.String(), bob.ip2) {
		t.Error("bob's data no longer opens from the stream")
	}

	// So does the AUDIT stream: nothing in clear, alice's entries no longer
	// open to anything of hers, bob's still do.
	var raw, openedAudit strings.Builder
	for _, rec := range h.events(t, "audit.>") {
		raw.WriteString(prototext.Format(rec.Event))
		if err := h.personal(t).UnsealRecord(ctx, &rec); err != nil {
			t.Fatal(err)
		}
		openedAudit.WriteString(prototext.Format(rec.Event))
	}
	for _, p := range people {
		for _, v := range personalData(p) {
			if strings.Contains(raw.String(), v) {
				t.Errorf("the AUDIT stream holds %s's %q in clear", p.name, v)
			}
		}
	}
	for _, v := range personalData(alice) {
		if strings.Contains(openedAudit.String(), v) {
			t.Errorf("alice's %q still opens from the AUDIT stream", v)
		}
	}
	for _, v := range []string{bob.email2, bob.display, bob.ip} {
		if !strings.Contains(openedAudit.String(), v) {
			t.Errorf("bob's %q does not open from the AUDIT stream", v)
		}
	}

	// The audit log says what happened, without what alice was.
	audit, err := c.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: alice.user.GetId(), PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var summaries []string
	for _, e := range audit.GetEntries() {
		summaries = append(summaries, e.GetSummary())
	}
	joined := strings.Join(summaries, "\n")
	for _, want := range []string{"deactivated (erase requested)", "email (erased) added", "display name set to (erased)", `registered as "alice" with email (erased)`} {
		if !strings.Contains(joined, want) {
			t.Errorf("the audit log of alice lacks %q:\n%s", want, joined)
		}
	}

	// Her addresses are free; her account does not come back.
	if _, err := c.Register(ctx, &accountsv1.RegisterRequest{Username: "alicia", Email: alice.email2, SkipVerification: true}); err != nil {
		t.Errorf("registering with an erased user's address: %v", err)
	}
	_, err = c.ReactivateUser(ctx, &accountsv1.ReactivateUserRequest{UserId: alice.user.GetId()})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = c.Register(ctx, &accountsv1.RegisterRequest{Username: "alice", Password: "someone else's password"})
	wantCode(t, err, codes.AlreadyExists)
	if _, err := c.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: alice.user.GetId(), Erase: true}); err != nil {
		t.Errorf("erasing again: %v", err)
	}
	if err := signsIn(t, c, "alice", "alice's long password"); err == nil {
		t.Error("an erased user signs in")
	}

	// A rebuild of every read model, from the stream: alice erased, bob whole.
	for _, name := range h.svc.Projections().Names() {
		if h.svc.Projections().KindOf(name) != "projection" {
			continue
		}
		if _, err := h.svc.Projections().Rebuild(ctx, name); err != nil {
			t.Fatalf("rebuild %s: %v", name, err)
		}
	}
	got, err := c.GetUser(ctx, &accountsv1.GetUserRequest{UserId: alice.user.GetId()})
	if err != nil || !got.GetUser().GetErased() || got.GetUser().GetEmail() != "" {
		t.Fatalf("alice after a rebuild: %v, %v", got, err)
	}
	check(t, alice.email2) // alicia's address now
}

// rowsHolding returns every row of every table of the service's schema whose
// text holds v.
func (h *harness) rowsHolding(t *testing.T, v string) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := h.pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, accounts.Schema)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	var out []string
	for _, table := range tables {
		rs, err := h.pool.Query(ctx, fmt.Sprintf(`SELECT t::text FROM %s.%q t WHERE strpos(t::text, $1) > 0`, accounts.Schema, table), v)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var row string
			if err := rs.Scan(&row); err != nil {
				t.Fatal(err)
			}
			out = append(out, table+": "+row)
		}
		rs.Close()
	}
	return out
}

// Completing a registration destroys the keys of the registration and of its
// verification: the stranger's copies of the address, display name and
// password hash no longer open; the new user's do.
func TestCompletedRegistrationForgetsTheFlow(t *testing.T) {
	h := startHarness(t, nil)
	c, ctx := h.c, context.Background()
	reg, err := c.StartRegistration(ctx, &accountsv1.StartRegistrationRequest{Username: "dora", Password: "dora's long password",
		Email: "dora@example.org", DisplayName: "Dora D."})
	if err != nil {
		t.Fatal(err)
	}
	regID := reg.GetRegistration().GetRegistrationId()
	if _, err := h.personal(t).Get(ctx, personal.Flow(regID)); err != nil {
		t.Fatalf("the registration's key: %v", err)
	}
	proved := h.confirm(t, confirmation{email: "dora@example.org", purpose: registrationPurpose})
	done, err := c.CompleteRegistration(ctx, &accountsv1.CompleteRegistrationRequest{RegistrationId: regID, VerificationId: proved})
	if err != nil {
		t.Fatal(err)
	}
	for _, owner := range []personal.Owner{personal.Flow(regID), personal.Flow(proved)} {
		if _, err := h.personal(t).Get(ctx, owner); !errors.Is(err, personal.ErrErased) {
			t.Errorf("%s after completion: %v, want destroyed", owner, err)
		}
	}
	for _, rec := range h.events(t, "accounts.registration."+regID) {
		if err := h.personal(t).UnsealRecord(ctx, &rec); err != nil {
			t.Fatal(err)
		}
		if text := prototext.Format(rec.Event); strings.Contains(text, "dora@example.org") || strings.Contains(text, "Dora D.") {
			t.Errorf("the completed registration still opens: %s", text)
		}
	}
	if u := done.GetUser(); u.GetEmail() != "dora@example.org" || u.GetDisplayName() != "Dora D." {
		t.Fatalf("the new user = %v", u)
	}
	if err := signsIn(t, c, "dora", "dora's long password"); err != nil {
		t.Fatalf("the new user signs in: %v", err)
	}
}
