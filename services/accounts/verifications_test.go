package accounts_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts"
)

const (
	registrationPurpose = eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION
	addEmailPurpose     = eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL
)

// confirmation is a verification as the notify service records it.
type confirmation struct {
	email   string
	purpose eventsv1.VerificationPurpose
	userID  string
	// at is when it is confirmed; now when zero.
	at time.Time
	// unconfirmed stops after VerificationStarted (a code sent, never typed).
	unconfirmed bool
	// ttl, when set, is the TTL of the verification's events, as notify
	// gives them (its end less now); none: they stay.
	ttl time.Duration
}

// notifyPending is NOTIFY_PENDING as the notify service opens it: bounded,
// its events expiring.
func notifyPending() eventlog.StreamConfig {
	sc := eventlog.StreamOf(eventsv1.NotifyPending, 1)
	sc.Bounds = &eventlog.Bounds{MaxAge: 2 * time.Hour, MaxBytes: 1 << 20, MarkerTTL: time.Second}
	return sc
}

// confirm appends a verification to the notify service's stream, NOTIFY_PENDING,
// with the events the notify service writes, and returns its id. The
// accounts service reads them as it reads notify's: from the stream.
func (h *harness) confirm(t *testing.T, c confirmation) string {
	t.Helper()
	ctx := context.Background()
	at := c.at
	if at.IsZero() {
		at = time.Now()
	}
	notify, err := eventlog.Open(ctx, h.js, notifyPending(),
		eventlog.WithClock(func() time.Time { return at }))
	if err != nil {
		t.Fatal(err)
	}
	id := ids.New()
	ref := eventlog.Ref{Type: "verification", ID: id}
	writes := []eventlog.Write{{Expect: eventlog.ExpectNew(), Event: eventlog.Event{Aggregate: ref, Actor: "test",
		Payload: &eventsv1.VerificationStarted{VerificationId: id, Email: c.email, Purpose: c.purpose, UserId: c.userID, CodeHash: "00"}}}}
	if !c.unconfirmed {
		writes = append(writes, eventlog.Write{Event: eventlog.Event{Aggregate: ref, Actor: "test",
			Payload: &eventsv1.VerificationConfirmed{VerificationId: id, Email: c.email, Purpose: c.purpose, UserId: c.userID}}})
	}
	for _, w := range writes {
		w.TTL = c.ttl
		if _, err := notify.Append(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// An address joins a user only against a confirmation the accounts service
// projected from the notify service's stream, never on the caller's word.
func TestAddEmailNeedsAConfirmedVerification(t *testing.T) {
	clock := newFakeClock()
	h := startHarness(t, func(c *accounts.Config) { c.Clock = clock.Now })
	c, ctx := h.c, context.Background()
	alice := register(t, c, "alice", "alice's password")
	bob := register(t, c, "bob", "bob's password")
	const addr = "alice@work.example"

	cases := []struct {
		name string
		// verification returns the verification id to present.
		verification func() string
		want         codes.Code
	}{
		{"no verification and no vouching", func() string { return "" }, codes.InvalidArgument},
		{"malformed id", func() string { return "a.b" }, codes.InvalidArgument},
		{"unknown verification", func() string { return ids.New() }, codes.FailedPrecondition},
		{"code sent but never confirmed", func() string {
			return h.confirm(t, confirmation{email: addr, purpose: addEmailPurpose, userID: alice.GetId(), unconfirmed: true})
		}, codes.FailedPrecondition},
		{"another address confirmed", func() string {
			return h.confirm(t, confirmation{email: "other@work.example", purpose: addEmailPurpose, userID: alice.GetId()})
		}, codes.FailedPrecondition},
		{"confirmed for another user", func() string {
			return h.confirm(t, confirmation{email: addr, purpose: addEmailPurpose, userID: bob.GetId()})
		}, codes.FailedPrecondition},
		{"confirmed for a registration", func() string {
			return h.confirm(t, confirmation{email: addr, purpose: registrationPurpose})
		}, codes.FailedPrecondition},
		{"confirmed too long ago", func() string {
			return h.confirm(t, confirmation{email: addr, purpose: addEmailPurpose, userID: alice.GetId(), at: clock.Now().Add(-31 * time.Minute)})
		}, codes.FailedPrecondition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: alice.GetId(), Email: addr, VerificationId: tc.verification()})
			wantCode(t, err, tc.want)
		})
	}
	list, err := c.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: alice.GetId()})
	if err != nil || emailList(t, list.GetEmails()) != "alice@example.com*" {
		t.Fatalf("after refused additions: %v, %v", list, err)
	}

	proved := h.confirm(t, confirmation{email: addr, purpose: addEmailPurpose, userID: alice.GetId(), at: clock.Now().Add(-time.Minute)})
	added, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: alice.GetId(), Email: "Alice@Work.Example", VerificationId: proved})
	if err != nil || emailList(t, added.GetEmails()) != "alice@example.com*, "+addr {
		t.Fatalf("AddEmail with a confirmation = %v, %v", added, err)
	}
	if got := added.GetEmails()[1]; !got.GetVerified() || got.GetVerificationId() != proved {
		t.Fatalf("added address = %v, want verified by %s", got, proved)
	}
	// The user aggregate records which verification proved the address.
	var recorded string
	for _, rec := range h.events(t, "accounts.user."+alice.GetId()) {
		if ev, ok := rec.Event.(*eventsv1.EmailAdded); ok {
			recorded = ev.GetVerificationId()
		}
	}
	if recorded != proved {
		t.Fatalf("EmailAdded records verification %q, want %q", recorded, proved)
	}
}

// A registration waits in the event log until its address is proved, then
// becomes a user in one atomic batch.
func TestRegistrationCompletesWithAConfirmedVerification(t *testing.T) {
	clock := newFakeClock()
	h := startHarness(t, func(c *accounts.Config) { c.Clock = clock.Now })
	c, ctx := h.c, context.Background()
	register(t, c, "taken", "a long enough password")

	started, err := c.StartRegistration(ctx, &accountsv1.StartRegistrationRequest{
		Username: "carol", Password: "carol's long password", Email: "Carol@Example.NET", DisplayName: "Carol",
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := started.GetRegistration()
	if reg.GetUsername() != "carol" || reg.GetEmail() != "carol@example.net" || reg.GetUserId() != "" ||
		!reg.GetExpiresAt().AsTime().Equal(clock.Now().Add(30*time.Minute)) {
		t.Fatalf("StartRegistration = %v", reg)
	}
	got, err := c.GetRegistration(ctx, &accountsv1.GetRegistrationRequest{RegistrationId: reg.GetRegistrationId()})
	if err != nil || got.GetRegistration().GetEmail() != "carol@example.net" {
		t.Fatalf("GetRegistration = %v, %v", got, err)
	}
	// Nothing is claimed yet: the username is still free for anyone.
	if _, err := c.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: "carol"}); err == nil {
		t.Fatal("a started registration made a user")
	}

	complete := func(verification string) error {
		_, err := c.CompleteRegistration(ctx, &accountsv1.CompleteRegistrationRequest{RegistrationId: reg.GetRegistrationId(), VerificationId: verification})
		return err
	}
	refused := []struct {
		name         string
		verification string
		want         codes.Code
	}{
		{"no verification", "", codes.InvalidArgument},
		{"unknown verification", ids.New(), codes.FailedPrecondition},
		{"confirmed before the registration started",
			h.confirm(t, confirmation{email: "carol@example.net", purpose: registrationPurpose, at: clock.Now().Add(-time.Second)}), codes.FailedPrecondition},
		{"another address", h.confirm(t, confirmation{email: "mallory@example.net", purpose: registrationPurpose, at: clock.Now()}), codes.FailedPrecondition},
		{"an add-email verification", h.confirm(t, confirmation{email: "carol@example.net", purpose: addEmailPurpose, at: clock.Now()}), codes.FailedPrecondition},
		{"never confirmed", h.confirm(t, confirmation{email: "carol@example.net", purpose: registrationPurpose, at: clock.Now(), unconfirmed: true}), codes.FailedPrecondition},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, complete(tc.verification), tc.want) })
	}

	proved := h.confirm(t, confirmation{email: "carol@example.net", purpose: registrationPurpose, at: clock.Now().Add(time.Minute)})
	done, err := c.CompleteRegistration(ctx, &accountsv1.CompleteRegistrationRequest{RegistrationId: reg.GetRegistrationId(), VerificationId: proved})
	if err != nil {
		t.Fatal(err)
	}
	carol := done.GetUser()
	if carol.GetUsername() != "carol" || carol.GetEmail() != "carol@example.net" || carol.GetDisplayName() != "Carol" {
		t.Fatalf("registered user = %v", carol)
	}
	if _, err := c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "carol", Password: "carol's long password"}); err != nil {
		t.Fatalf("the registration's password does not sign in: %v", err)
	}
	emails, err := c.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: carol.GetId()})
	if err != nil || len(emails.GetEmails()) != 1 || emails.GetEmails()[0].GetVerificationId() != proved {
		t.Fatalf("registered addresses = %v, %v", emails, err)
	}
	// Spent: a second completion makes no second user.
	wantCode(t, complete(proved), codes.FailedPrecondition)
	if got, _ := c.GetRegistration(ctx, &accountsv1.GetRegistrationRequest{RegistrationId: reg.GetRegistrationId()}); got.GetRegistration().GetUserId() != carol.GetId() {
		t.Fatalf("completed registration = %v, want user %s", got, carol.GetId())
	}
	// The password hash is kept in the event, sealed, never in clear, given out or audited.
	for _, rec := range h.events(t, "accounts.registration."+reg.GetRegistrationId()) {
		if ev, ok := rec.Event.(*eventsv1.RegistrationStarted); ok && (ev.GetSealedPasswordHash() == nil || ev.GetPasswordHash() != "") {
			t.Fatalf("RegistrationStarted does not hold the password hash sealed: %v", ev)
		}
	}
}

func TestRegistrationRefusals(t *testing.T) {
	clock := newFakeClock()
	h := startHarness(t, func(c *accounts.Config) { c.Clock = clock.Now })
	c, ctx := h.c, context.Background()
	register(t, c, "taken", "a long enough password")
	start := func(username, email string) (*accountsv1.Registration, error) {
		r, err := c.StartRegistration(ctx, &accountsv1.StartRegistrationRequest{Username: username, Password: "a long enough password", Email: email})
		return r.GetRegistration(), err
	}

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			req  *accountsv1.StartRegistrationRequest
			want codes.Code
		}{
			{"no username", &accountsv1.StartRegistrationRequest{Password: "a long enough password", Email: "a@example.com"}, codes.InvalidArgument},
			{"bad username", &accountsv1.StartRegistrationRequest{Username: "Bad Name", Password: "a long enough password", Email: "a@example.com"}, codes.InvalidArgument},
			{"no email", &accountsv1.StartRegistrationRequest{Username: "dave", Password: "a long enough password"}, codes.InvalidArgument},
			{"bad email", &accountsv1.StartRegistrationRequest{Username: "dave", Password: "a long enough password", Email: "dave"}, codes.InvalidArgument},
			{"no password", &accountsv1.StartRegistrationRequest{Username: "dave", Email: "dave@example.com"}, codes.InvalidArgument},
			{"short password", &accountsv1.StartRegistrationRequest{Username: "dave", Password: "short", Email: "dave@example.com"}, codes.InvalidArgument},
			{"username taken", &accountsv1.StartRegistrationRequest{Username: "taken", Password: "a long enough password", Email: "dave@example.com"}, codes.AlreadyExists},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := c.StartRegistration(ctx, tc.req)
				wantCode(t, err, tc.want)
			})
		}
		_, err := c.GetRegistration(ctx, &accountsv1.GetRegistrationRequest{RegistrationId: "../x"})
		wantCode(t, err, codes.InvalidArgument)
		_, err = c.GetRegistration(ctx, &accountsv1.GetRegistrationRequest{RegistrationId: ids.New()})
		wantCode(t, err, codes.NotFound)
		_, err = c.CompleteRegistration(ctx, &accountsv1.CompleteRegistrationRequest{RegistrationId: ids.New(), VerificationId: ids.New()})
		wantCode(t, err, codes.NotFound)
	})

	t.Run("expired", func(t *testing.T) {
		reg, err := start("erin", "erin@example.com")
		if err != nil {
			t.Fatal(err)
		}
		proved := h.confirm(t, confirmation{email: "erin@example.com", purpose: registrationPurpose, at: clock.Now().Add(time.Minute)})
		clock.Advance(31 * time.Minute)
		_, err = c.CompleteRegistration(ctx, &accountsv1.CompleteRegistrationRequest{RegistrationId: reg.GetRegistrationId(), VerificationId: proved})
		wantCode(t, err, codes.FailedPrecondition)
	})

	t.Run("username or address taken meanwhile", func(t *testing.T) {
		first, err := start("frank", "frank@example.com")
		if err != nil {
			t.Fatal(err)
		}
		second, err := start("frank", "frank2@example.com")
		if err != nil {
			t.Fatal(err)
		}
		third, err := start("frankie", "frank@example.com")
		if err != nil {
			t.Fatal(err)
		}
		proof := func(email string) string {
			return h.confirm(t, confirmation{email: email, purpose: registrationPurpose, at: clock.Now().Add(time.Second)})
		}
		if _, err := c.CompleteRegistration(ctx, &accountsv1.CompleteRegistrationRequest{RegistrationId: first.GetRegistrationId(), VerificationId: proof("frank@example.com")}); err != nil {
			t.Fatal(err)
		}
		_, err = c.CompleteRegistration(ctx, &accountsv1.CompleteRegistrationRequest{RegistrationId: second.GetRegistrationId(), VerificationId: proof("frank2@example.com")})
		wantCode(t, err, codes.AlreadyExists)
		_, err = c.CompleteRegistration(ctx, &accountsv1.CompleteRegistrationRequest{RegistrationId: third.GetRegistrationId(), VerificationId: proof("frank@example.com")})
		wantCode(t, err, codes.AlreadyExists)
	})
}

// Register with an address needs a confirmed registration verification, or an
// administrator vouching for it.
func TestRegisterWithAnAddressNeedsProof(t *testing.T) {
	h := startHarness(t, nil)
	c, ctx := h.c, context.Background()
	_, err := c.Register(ctx, &accountsv1.RegisterRequest{Username: "gina", Password: "a long enough password", Email: "gina@example.com"})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.Register(ctx, &accountsv1.RegisterRequest{Username: "gina", Password: "a long enough password", Email: "gina@example.com", VerificationId: ids.New()})
	wantCode(t, err, codes.FailedPrecondition)

	proved := h.confirm(t, confirmation{email: "gina@example.com", purpose: registrationPurpose})
	resp, err := c.Register(ctx, &accountsv1.RegisterRequest{Username: "gina", Password: "a long enough password", Email: "gina@example.com", VerificationId: proved})
	if err != nil || resp.GetUser().GetEmail() != "gina@example.com" {
		t.Fatalf("Register with a confirmation = %v, %v", resp, err)
	}
	vouched, err := c.Register(ctx, &accountsv1.RegisterRequest{Username: "hank", Password: "a long enough password", Email: "hank@example.com", SkipVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	emails, err := c.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: vouched.GetUser().GetId()})
	if err != nil || len(emails.GetEmails()) != 1 || !emails.GetEmails()[0].GetVerified() || emails.GetEmails()[0].GetVerificationId() != "" {
		t.Fatalf("vouched-for address = %v, %v", emails, err)
	}
}

// A password set through a recovery link needs the notify service's
// confirmation of a recovery for that very user, and is audited as a recovery.
func TestRecoveryPasswordNeedsAConfirmedRecovery(t *testing.T) {
	h := startHarness(t, nil)
	c, ctx := h.c, context.Background()
	ann := register(t, c, "ann", "ann's old password")
	ben := register(t, c, "ben", "ben's old password")
	recovery := eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY

	for _, tc := range []struct {
		name         string
		verification string
		want         codes.Code
	}{
		{"unknown verification", ids.New(), codes.FailedPrecondition},
		{"another user's recovery", h.confirm(t, confirmation{email: "ben@example.com", purpose: recovery, userID: ben.GetId()}), codes.FailedPrecondition},
		{"an add-email verification", h.confirm(t, confirmation{email: "ann@example.com", purpose: addEmailPurpose, userID: ann.GetId()}), codes.FailedPrecondition},
		{"a link sent but never used", h.confirm(t, confirmation{email: "ann@example.com", purpose: recovery, userID: ann.GetId(), unconfirmed: true}), codes.FailedPrecondition},
		{"malformed id", "x y", codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.SetPassword(ctx, &accountsv1.SetPasswordRequest{UserId: ann.GetId(), NewPassword: "ann's new password", RecoveryVerificationId: tc.verification})
			wantCode(t, err, tc.want)
		})
	}
	if _, err := c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "ann", Password: "ann's old password"}); err != nil {
		t.Fatalf("a refused recovery changed the password: %v", err)
	}

	proved := h.confirm(t, confirmation{email: "ann@example.com", purpose: recovery, userID: ann.GetId()})
	if _, err := c.SetPassword(ctx, &accountsv1.SetPasswordRequest{UserId: ann.GetId(), NewPassword: "ann's new password", RecoveryVerificationId: proved}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: "ann", Password: "ann's new password"}); err != nil {
		t.Fatalf("the recovered password does not sign in: %v", err)
	}
	eventually(t, "audit of the recovery", func() error {
		audit, err := c.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: ann.GetId()})
		if err != nil {
			return err
		}
		if got := audit.GetEntries()[0].GetSummary(); got != "password reset through recovery" {
			return fmt.Errorf("newest audit entry %q", got)
		}
		return nil
	})
}

// The projection keeps confirmations only while they can prove something:
// one older than an hour, by the stream's own clock, is gone, and so proves nothing.
func TestOldConfirmationsAreForgotten(t *testing.T) {
	h := startHarness(t, nil)
	c, ctx := h.c, context.Background()
	dan := register(t, c, "dan", "dan's password")
	old := h.confirm(t, confirmation{email: "dan@work.example", purpose: addEmailPurpose, userID: dan.GetId(), at: time.Now().Add(-2 * time.Hour)})
	fresh := h.confirm(t, confirmation{email: "dan@home.example", purpose: addEmailPurpose, userID: dan.GetId()})
	if _, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: dan.GetId(), Email: "dan@home.example", VerificationId: fresh}); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM email_verifications WHERE verification_id = $1`, old).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("an old confirmation is still projected: %d rows (%v)", rows, err)
	}
	_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: dan.GetId(), Email: "dan@work.example", VerificationId: old})
	wantCode(t, err, codes.FailedPrecondition)
}

// Since verifications live in NOTIFY_PENDING, a confirmation proves its
// address for as long as a check accepts it (its events stay an hour after
// the verification can last be used), and once its events expired it
// proves nothing: the marker of its expiry removes it from the read model.
func TestConfirmationLivesItsWindowThenExpires(t *testing.T) {
	clock := newFakeClock()
	h := startHarness(t, func(c *accounts.Config) { c.Clock = clock.Now })
	c, ctx := h.c, context.Background()
	alice := register(t, c, "alice", "alice's password")

	// Confirmed 29 minutes ago, its events expiring in an hour and a half
	// (notify's default: 30 minutes of use, then an hour): still proves.
	kept := h.confirm(t, confirmation{email: "alice@work.example", purpose: addEmailPurpose, userID: alice.GetId(),
		at: clock.Now().Add(-29 * time.Minute), ttl: 90 * time.Minute})
	if _, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: alice.GetId(), Email: "alice@work.example", VerificationId: kept}); err != nil {
		t.Fatalf("AddEmail within the window: %v", err)
	}

	// A verification whose events expire: proves nothing once they have.
	gone := h.confirm(t, confirmation{email: "alice@home.example", purpose: addEmailPurpose, userID: alice.GetId(), ttl: 3 * time.Second})
	var rows int
	// waitRows waits until the read model holds want rows of it.
	waitRows := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM email_verifications WHERE verification_id = $1`, gone).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the read model holds %d confirmations of the verification, want %d", rows, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitRows(1) // projected
	waitRows(0) // expired
	_, err := c.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: alice.GetId(), Email: "alice@home.example", VerificationId: gone})
	wantCode(t, err, codes.FailedPrecondition)
	// A rebuild from what the stream still holds agrees.
	if _, err := h.svc.Projections().Rebuild(ctx, "email_verifications"); err != nil {
		t.Fatal(err)
	}
	if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM email_verifications WHERE verification_id = $1`, gone).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("after a rebuild: %d rows, %v", rows, err)
	}
}
