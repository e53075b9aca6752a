package notify_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/ratelimit"
	"gatehouse.dev/platform/testkit"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	"gatehouse.dev/services/notify"
	"gatehouse.dev/services/notify/internal/smtptest"
)

func TestMain(m *testing.M) { testkit.Main(m) }

var (
	registration = notifyv1.Purpose_PURPOSE_REGISTRATION
	addEmail     = notifyv1.Purpose_PURPOSE_ADD_EMAIL
	recovery     = notifyv1.Purpose_PURPOSE_RECOVERY
)

// A code is emailed over each kind of connection and confirms once.
func TestCodeEmailedAndConfirmed(t *testing.T) {
	tests := []struct {
		name    string
		smtp    smtptest.Options
		purpose notifyv1.Purpose
		subject string
	}{
		{"STARTTLS", smtptest.Options{TLS: true, Username: "mailer", Password: "pw"}, registration, "Your Example Auth verification code"},
		{"smtps", smtptest.Options{TLS: true, Implicit: true, Username: "mailer", Password: "pw"}, addEmail, "Confirm your email address for Example Auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.smtp)
			n := e.start(t)
			ctx := context.Background()
			userID := ""
			if tt.purpose == addEmail {
				userID = ids.New()
			}
			resp := verify(t, n.client, &notifyv1.StartVerificationRequest{
				Email: " Alice@Example.ORG ", Purpose: tt.purpose, UserId: userID, ClientIp: "192.0.2.7", Locale: "en",
			})
			now := e.clock.Now()
			if !resp.GetExpiresAt().AsTime().Equal(now.Add(5*time.Minute)) || !resp.GetResendAfter().AsTime().Equal(now.Add(30*time.Second)) {
				t.Errorf("expires %v, resend after %v (now %v)", resp.GetExpiresAt().AsTime(), resp.GetResendAfter().AsTime(), now)
			}

			m := e.mails(t, 1)[0]
			if !m.raw.TLS || m.raw.AuthUser != "mailer" || m.raw.From != "noreply@example.org" || len(m.raw.To) != 1 || m.raw.To[0] != "alice@example.org" {
				t.Errorf("envelope: TLS %v, user %q, from %q, to %v", m.raw.TLS, m.raw.AuthUser, m.raw.From, m.raw.To)
			}
			for k, want := range map[string]string{
				"From": `"Example Auth" <noreply@example.org>`, "Reply-To": "<support@example.org>", "To": "<alice@example.org>",
				"Message-Id": fmt.Sprintf("<%s.1@example.org>", resp.GetVerificationId()),
			} {
				if got := m.header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if m.subject != tt.subject || !strings.Contains(m.html, "Example Auth") || !strings.Contains(m.text, "5 minutes") {
				t.Errorf("subject %q; text %q", m.subject, m.text)
			}
			code := m.code(t)

			got, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: code})
			if err != nil {
				t.Fatalf("CheckCode: %v", err)
			}
			if got.GetEmail() != "alice@example.org" || got.GetPurpose() != tt.purpose || got.GetUserId() != userID {
				t.Errorf("CheckCode = %v", got)
			}
			_, err = n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: code})
			wantStatus(t, err, codes.FailedPrecondition, "already been used", "")

			// The mail server has the email before EmailDelivered is appended
			// and projected: give the read model a moment.
			var status string
			var delivered int
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if err := n.pool.QueryRow(ctx, `SELECT status, delivered_issue FROM verifications WHERE id = $1`, resp.GetVerificationId()).Scan(&status, &delivered); err != nil {
					t.Fatal(err)
				}
				if (status == "confirmed" && delivered == 1) || time.Now().After(deadline) {
					break
				}
			}
			if status != "confirmed" || delivered != 1 {
				t.Errorf("read model: status %q, delivered issue %d", status, delivered)
			}
			if strings.Contains(e.logs.String(), code) {
				t.Errorf("the code was logged while sending over SMTP")
			}
		})
	}
}

// Wrong codes are counted in the aggregate: five in all, even concurrently.
func TestWrongCodesAreLimited(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	n := e.start(t)
	ctx := context.Background()

	resp := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "bob@example.org", Purpose: registration})
	code := e.mails(t, 1)[0].code(t)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i, left := range []string{"4 attempts left", "3 attempts left", "2 attempts left", "1 attempt left", "no attempts left"} {
		_, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: wrong})
		wantStatus(t, err, codes.InvalidArgument, left, "code")
		// The count also travels as a fact, for callers that word it themselves.
		if got, _ := errs.FactOf(errs.FromStatus(err), errs.FactAttemptsLeft); got != strconv.Itoa(4-i) {
			t.Errorf("attempt %d: fact %s = %q, want %d", i+1, errs.FactAttemptsLeft, got, 4-i)
		}
	}
	_, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: code})
	wantStatus(t, err, codes.FailedPrecondition, "Too many wrong codes", "")
	_, err = n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: resp.GetVerificationId()})
	wantStatus(t, err, codes.FailedPrecondition, "Too many wrong codes", "")

	// Twelve wrong codes at once: exactly five are judged, the rest find the verification locked.
	resp = verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "carol@example.org", Purpose: registration})
	code = e.mails(t, 2)[1].code(t)
	if code == wrong {
		wrong = "222222"
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		count = map[codes.Code]int{}
	)
	for range 12 {
		wg.Go(func() {
			_, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: wrong})
			mu.Lock()
			count[status.Code(err)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if count[codes.InvalidArgument] != 5 || count[codes.FailedPrecondition] != 7 {
		t.Errorf("outcomes %v, want 5 InvalidArgument and 7 FailedPrecondition", count)
	}
	var attempts int
	var st string
	if err := n.pool.QueryRow(ctx, `SELECT failed_attempts, status FROM verifications WHERE id = $1`, resp.GetVerificationId()).Scan(&attempts, &st); err != nil {
		t.Fatal(err)
	}
	if attempts != 5 || st != "locked" {
		t.Errorf("read model: %d attempts, status %q", attempts, st)
	}
}

// A code stops working after five minutes; a resend issues a fresh one.
func TestCodeExpires(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	n := e.start(t)
	ctx := context.Background()
	resp := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "dave@example.org", Purpose: registration})
	code := e.mails(t, 1)[0].code(t)

	e.clock.Advance(5*time.Minute - time.Second)
	if _, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: "not it"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed code: %v", err)
	}
	e.clock.Advance(time.Second)
	_, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: code})
	wantStatus(t, err, codes.FailedPrecondition, "expired", "")

	r, err := n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: resp.GetVerificationId()})
	if err != nil {
		t.Fatalf("resend after expiry: %v", err)
	}
	if !r.GetExpiresAt().AsTime().Equal(e.clock.Now().Add(5 * time.Minute)) {
		t.Errorf("new code expires %v", r.GetExpiresAt().AsTime())
	}
	fresh := e.mails(t, 2)[1].code(t)
	if _, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: fresh}); err != nil {
		t.Fatalf("fresh code: %v", err)
	}
}

// A resend invalidates the old code, waits 30 s between emails, and stops after five.
func TestResend(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	n := e.start(t)
	ctx := context.Background()
	resp := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "erin@example.org", Purpose: registration, ClientIp: "2001:db8::1"})
	id := resp.GetVerificationId()
	first := e.mails(t, 1)[0].code(t)

	_, err := n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: id, ClientIp: "2001:db8::1"})
	wantStatus(t, err, codes.ResourceExhausted, "Wait 30 seconds", "")
	e.clock.Advance(30 * time.Second)
	r, err := n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: id, ClientIp: "2001:db8::1"})
	if err != nil {
		t.Fatalf("resend: %v", err)
	}
	if r.GetResendsLeft() != 4 || !r.GetResendAfter().AsTime().Equal(e.clock.Now().Add(30*time.Second)) {
		t.Errorf("resend answered %v", r)
	}
	mails := e.mails(t, 2)
	if got := mails[1].header.Get("Message-Id"); got != fmt.Sprintf("<%s.2@example.org>", id) {
		t.Errorf("second Message-ID %q", got)
	}
	second := mails[1].code(t)
	if second == first {
		t.Fatalf("the resend carries the same code %s", first)
	}
	_, err = n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: id, Code: first})
	wantStatus(t, err, codes.InvalidArgument, "Wrong code", "code")
	if _, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: id, Code: second}); err != nil {
		t.Fatalf("new code: %v", err)
	}
	_, err = n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: id})
	wantStatus(t, err, codes.FailedPrecondition, "already been verified", "")

	// At most five resends per verification.
	resp = verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "frank@example.org", Purpose: registration})
	for i := range 5 {
		e.clock.Advance(30 * time.Second)
		r, err := n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: resp.GetVerificationId()})
		if err != nil || r.GetResendsLeft() != uint32(4-i) {
			t.Fatalf("resend %d: %v, %v", i+1, r, err)
		}
	}
	e.clock.Advance(30 * time.Second)
	_, err = n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: resp.GetVerificationId()})
	wantStatus(t, err, codes.FailedPrecondition, "No more than 5", "")
	// Issues superseded before their turn may be skipped, but the last one is
	// sent, and no issue twice.
	lastID := fmt.Sprintf("<%s.6@example.org>", resp.GetVerificationId())
	var last email
	waitFor(t, func() bool {
		for _, m := range parseAll(t, e.smtp.Messages()) {
			if m.header.Get("Message-Id") == lastID {
				last = m
				return true
			}
		}
		return false
	})
	e.settle(t, len(e.smtp.Messages()))
	seen := map[string]bool{}
	for _, m := range parseAll(t, e.smtp.Messages()) {
		if id := m.header.Get("Message-Id"); seen[id] {
			t.Errorf("%s sent twice", id)
		} else {
			seen[id] = true
		}
	}
	if _, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: last.code(t)}); err != nil {
		t.Fatalf("code of the last resend: %v", err)
	}
}

// The service stops after appending VerificationStarted and before sending:
// the email goes out once the delivery consumer runs again, exactly once.
func TestCrashBetweenAppendAndSend(t *testing.T) {
	e := newEnv(t, smtptest.Options{TLS: true})
	ctx := context.Background()
	down := e.start(t, func(c *notify.Config) { c.DisableDelivery = true })
	resp := verify(t, down.client, &notifyv1.StartVerificationRequest{Email: "grace@example.org", Purpose: registration})
	e.settle(t, 0)
	down.stop()

	up := e.start(t)
	code := e.mails(t, 1)[0].code(t)
	e.settle(t, 1)
	up.stop()

	again := e.start(t)
	e.settle(t, 1)
	// The code was derived from the key in the stream: it still checks.
	if _, err := again.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: code}); err != nil {
		t.Fatalf("CheckCode after restarts: %v", err)
	}
}

// Replaying the stream through the delivery consumer (a redelivery, a crash
// before its checkpoint, an operator's rebuild) sends nothing twice.
func TestRedeliveryDoesNotSendTwice(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	n := e.start(t)
	ctx := context.Background()
	resp := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "heidi@example.org", Purpose: registration})
	e.mails(t, 1)
	e.clock.Advance(30 * time.Second)
	if _, err := n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: resp.GetVerificationId()}); err != nil {
		t.Fatal(err)
	}
	e.mails(t, 2)
	for range 2 {
		if _, err := n.svc.Projections().Rebuild(ctx, "delivery"); err != nil {
			t.Fatalf("rebuild delivery: %v", err)
		}
	}
	e.settle(t, 2)
}

// A recovery emails a single-use link for an account, and nothing for an
// address without one, answering both the same way.
func TestRecovery(t *testing.T) {
	e := newEnv(t, smtptest.Options{TLS: true})
	n := e.start(t)
	ctx := context.Background()
	userID := ids.New()

	unknown := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "nobody@example.org", Purpose: recovery, ClientIp: "192.0.2.9"})
	known := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "ivan@example.org", Purpose: recovery, UserId: userID, ClientIp: "192.0.2.9"})
	now := e.clock.Now()
	for name, r := range map[string]*notifyv1.StartVerificationResponse{"known": known, "unknown": unknown} {
		if !ids.Valid(r.GetVerificationId()) || !r.GetExpiresAt().AsTime().Equal(now.Add(10*time.Minute)) || !r.GetResendAfter().AsTime().Equal(now.Add(30*time.Second)) {
			t.Errorf("%s address answered %v", name, r)
		}
	}
	// Deliveries are in stream order: once the known address's email is here,
	// the unknown one's turn has passed.
	m := e.mails(t, 1)[0]
	e.settle(t, 1)
	if m.raw.To[0] != "ivan@example.org" || m.subject != "Recover your Example Auth account" || !strings.Contains(m.text, "10 minutes") {
		t.Fatalf("recovery email to %v: %q\n%s", m.raw.To, m.subject, m.text)
	}
	ticket := m.ticket(t)

	// Resending behaves alike too, and replaces the link.
	e.clock.Advance(30 * time.Second)
	for _, id := range []string{unknown.GetVerificationId(), known.GetVerificationId()} {
		if _, err := n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: id, ClientIp: "192.0.2.9"}); err != nil {
			t.Fatalf("resend %s: %v", id, err)
		}
	}
	mails := e.mails(t, 2)
	e.settle(t, 2)
	newTicket := mails[1].ticket(t)
	_, err := n.client.CheckRecoveryTicket(ctx, &notifyv1.CheckRecoveryTicketRequest{Ticket: ticket})
	wantStatus(t, err, codes.FailedPrecondition, "replaced by a newer one", "")

	got, err := n.client.CheckRecoveryTicket(ctx, &notifyv1.CheckRecoveryTicketRequest{Ticket: newTicket})
	if err != nil {
		t.Fatalf("CheckRecoveryTicket: %v", err)
	}
	if got.GetEmail() != "ivan@example.org" || got.GetUserId() != userID || got.GetVerificationId() != known.GetVerificationId() {
		t.Errorf("CheckRecoveryTicket = %v", got)
	}
	_, err = n.client.CheckRecoveryTicket(ctx, &notifyv1.CheckRecoveryTicketRequest{Ticket: newTicket})
	wantStatus(t, err, codes.FailedPrecondition, "already been used", "")
	_, err = n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: known.GetVerificationId(), Code: "123456"})
	wantStatus(t, err, codes.FailedPrecondition, "link", "")

	// A link works for ten minutes.
	verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "judy@example.org", Purpose: recovery, UserId: ids.New()})
	expiring := e.mails(t, 3)[2].ticket(t)
	e.clock.Advance(10 * time.Minute)
	_, err = n.client.CheckRecoveryTicket(ctx, &notifyv1.CheckRecoveryTicketRequest{Ticket: expiring})
	wantStatus(t, err, codes.FailedPrecondition, "expired", "")
}

// StartVerification allows 3 verifications per address (then one an hour)
// and 5 emails per client IP (then one a minute; an IPv6 /64 counts as one),
// resends included, and says when to try again (MAS's defaults).
func TestRateLimits(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	n := e.start(t, func(c *notify.Config) { c.DisableDelivery = true })
	ctx := context.Background()
	start := func(addr, ip string) error {
		_, err := n.client.StartVerification(ctx, &notifyv1.StartVerificationRequest{Email: addr, Purpose: registration, ClientIp: ip})
		return err
	}
	for i := range 3 {
		if err := start("kim@example.org", fmt.Sprintf("198.51.100.%d", i)); err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
	}
	wantStatus(t, start("KIM@example.org", "198.51.100.99"), codes.ResourceExhausted, "try again in 60 minutes", "")
	// A recovery of the same address shares its allowance, account or not.
	_, err := n.client.StartVerification(ctx, &notifyv1.StartVerificationRequest{Email: "kim@example.org", Purpose: recovery})
	wantStatus(t, err, codes.ResourceExhausted, "try again in", "")
	e.clock.Advance(time.Hour)
	if err := start("kim@example.org", ""); err != nil {
		t.Fatalf("after an hour: %v", err)
	}

	// Five from one IPv6 /64, whatever the address and interface id.
	for i := range 5 {
		if err := start(fmt.Sprintf("user%d@example.org", i), fmt.Sprintf("2001:db8:1:2::%x", i+1)); err != nil {
			t.Fatalf("start %d from the /64: %v", i+1, err)
		}
	}
	wantStatus(t, start("another@example.org", "2001:db8:1:2:ffff::1"), codes.ResourceExhausted, "try again in 1 minute", "")
	if err := start("another@example.org", "2001:db8:1:3::1"); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	// Resends count toward the client's allowance.
	resp, err := n.client.StartVerification(ctx, &notifyv1.StartVerificationRequest{Email: "resend@example.org", Purpose: registration, ClientIp: "192.0.2.77"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := start(fmt.Sprintf("other%d@example.org", i), "192.0.2.77"); err != nil {
			t.Fatalf("start %d from 192.0.2.77: %v", i+2, err)
		}
	}
	e.clock.Advance(30 * time.Second) // the verification allows a resend; the address's budget is not back yet
	_, err = n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: resp.GetVerificationId(), ClientIp: "192.0.2.77"})
	wantStatus(t, err, codes.ResourceExhausted, "try again in 30 seconds", "")
}

// The emails of one verification are limited too (email.per_session): here
// the first and one resend, then one every five minutes.
func TestEmailsPerVerification(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	n := e.start(t, func(c *notify.Config) {
		c.DisableDelivery = true
		c.Limits = ratelimit.DefaultRules()
		c.Limits.EmailPerSession.Burst = 2
	})
	ctx := context.Background()
	resp := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "quinn@example.org", Purpose: registration})
	resend := func() error {
		_, err := n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: resp.GetVerificationId()})
		return err
	}
	e.clock.Advance(30 * time.Second)
	if err := resend(); err != nil {
		t.Fatalf("first resend: %v", err)
	}
	e.clock.Advance(30 * time.Second)
	wantStatus(t, resend(), codes.ResourceExhausted, "try again in 4 minutes", "")
	e.clock.Advance(4 * time.Minute)
	if err := resend(); err != nil {
		t.Fatalf("five minutes later: %v", err)
	}
}

// A permanent refusal is recorded and does not hold up later emails; a
// temporary failure is retried until the server accepts.
func TestDeliveryFailures(t *testing.T) {
	e := newEnv(t, smtptest.Options{TempFailures: 2, RejectRecipient: func(a string) bool { return a == "bounce@example.org" }})
	n := e.start(t)
	ctx := context.Background()
	bounced := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "bounce@example.org", Purpose: registration})
	verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "mallory@example.org", Purpose: registration})
	m := e.mails(t, 1)[0]
	if m.raw.To[0] != "mallory@example.org" {
		t.Fatalf("delivered to %v", m.raw.To)
	}
	e.settle(t, 1)
	var reason string
	waitFor(t, func() bool {
		n.pool.QueryRow(ctx, `SELECT delivery_error FROM verifications WHERE id = $1`, bounced.GetVerificationId()).Scan(&reason)
		return reason != ""
	})
	if !strings.HasPrefix(reason, "550") {
		t.Errorf("delivery error %q", reason)
	}
}

// Without an SMTP URL, emails are written to the outbox; the log says so,
// without the code or the address.
func TestOutbox(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	dir := filepath.Join(t.TempDir(), "outbox")
	n := e.start(t, func(c *notify.Config) { c.SMTPURL, c.OutboxDir, c.From = "", dir, "" })
	resp := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "olivia@example.org", Purpose: registration})
	path := filepath.Join(dir, resp.GetVerificationId()+".1@auth.example.org.eml")
	waitFor(t, func() bool { _, err := os.Stat(path); return err == nil })
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := parseEmail(t, smtptest.Message{Data: data})
	code := m.code(t)
	if from := m.header.Get("From"); from != `"Example Auth" <noreply@auth.example.org>` {
		t.Errorf("default From %q", from)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "level=INFO") || !strings.Contains(logs, path) {
		t.Errorf("the log does not say where the email is:\n%s", logs)
	}
	for _, secret := range []string{code, "olivia@"} {
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("the log shows %q:\n%s", secret, e.logs.String())
		}
	}
	if _, err := n.client.CheckCode(context.Background(), &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: code}); err != nil {
		t.Fatal(err)
	}
	if len(e.smtp.Messages()) != 0 {
		t.Error("the SMTP server got mail")
	}
}

// Every RPC answers bad input with a clear status naming the field.
func TestBadInput(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	n := e.start(t, func(c *notify.Config) { c.DisableDelivery = true })
	ctx := context.Background()
	rec := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "peggy@example.org", Purpose: recovery, UserId: ids.New()})
	unknownID := ids.New()
	start := func(r *notifyv1.StartVerificationRequest) func() error {
		return func() error { _, err := n.client.StartVerification(ctx, r); return err }
	}
	resend := func(r *notifyv1.ResendVerificationRequest) func() error {
		return func() error { _, err := n.client.ResendVerification(ctx, r); return err }
	}
	check := func(r *notifyv1.CheckCodeRequest) func() error {
		return func() error { _, err := n.client.CheckCode(ctx, r); return err }
	}
	ticket := func(r *notifyv1.CheckRecoveryTicketRequest) func() error {
		return func() error { _, err := n.client.CheckRecoveryTicket(ctx, r); return err }
	}
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		msg   string
		field string
	}{
		{"start without email", start(&notifyv1.StartVerificationRequest{Purpose: registration}), codes.InvalidArgument, "valid email address", "email"},
		{"start with bad email", start(&notifyv1.StartVerificationRequest{Email: "peggy", Purpose: registration}), codes.InvalidArgument, "valid email address", "email"},
		{"start with header injection", start(&notifyv1.StartVerificationRequest{Email: "a@example.org\r\nBcc: b@example.org", Purpose: registration}), codes.InvalidArgument, "valid email address", "email"},
		{"start without purpose", start(&notifyv1.StartVerificationRequest{Email: "a@example.org"}), codes.InvalidArgument, "REGISTRATION, ADD_EMAIL or RECOVERY", "purpose"},
		{"start with unknown purpose", start(&notifyv1.StartVerificationRequest{Email: "a@example.org", Purpose: 42}), codes.InvalidArgument, "purpose must be", "purpose"},
		{"add email without user", start(&notifyv1.StartVerificationRequest{Email: "a@example.org", Purpose: addEmail}), codes.InvalidArgument, "user_id is required", "user_id"},
		{"start with bad user id", start(&notifyv1.StartVerificationRequest{Email: "a@example.org", Purpose: recovery, UserId: "peggy"}), codes.InvalidArgument, "user_id must be", "user_id"},
		{"start with bad client ip", start(&notifyv1.StartVerificationRequest{Email: "a@example.org", Purpose: registration, ClientIp: "10.0.0"}), codes.InvalidArgument, "client_ip must be", "client_ip"},
		{"start with bad locale", start(&notifyv1.StartVerificationRequest{Email: "a@example.org", Purpose: registration, Locale: "en_US.UTF-8"}), codes.InvalidArgument, "locale must be", "locale"},
		{"resend without id", resend(&notifyv1.ResendVerificationRequest{}), codes.InvalidArgument, "verification_id is required", "verification_id"},
		{"resend with bad id", resend(&notifyv1.ResendVerificationRequest{VerificationId: "x.y"}), codes.InvalidArgument, "verification_id must be", "verification_id"},
		{"resend of unknown", resend(&notifyv1.ResendVerificationRequest{VerificationId: unknownID}), codes.NotFound, "No such verification", ""},
		{"resend with bad client ip", resend(&notifyv1.ResendVerificationRequest{VerificationId: rec.GetVerificationId(), ClientIp: "::g"}), codes.InvalidArgument, "client_ip must be", "client_ip"},
		{"check without id", check(&notifyv1.CheckCodeRequest{Code: "123456"}), codes.InvalidArgument, "verification_id is required", "verification_id"},
		{"check with bad id", check(&notifyv1.CheckCodeRequest{VerificationId: "*", Code: "123456"}), codes.InvalidArgument, "verification_id must be", "verification_id"},
		{"check without code", check(&notifyv1.CheckCodeRequest{VerificationId: rec.GetVerificationId()}), codes.InvalidArgument, "code is required", "code"},
		{"check short code", check(&notifyv1.CheckCodeRequest{VerificationId: rec.GetVerificationId(), Code: "12345"}), codes.InvalidArgument, "6 digits", "code"},
		{"check code with letters", check(&notifyv1.CheckCodeRequest{VerificationId: rec.GetVerificationId(), Code: "12345a"}), codes.InvalidArgument, "6 digits", "code"},
		{"check code of unknown", check(&notifyv1.CheckCodeRequest{VerificationId: unknownID, Code: "123456"}), codes.NotFound, "No such verification", ""},
		{"check code of a recovery", check(&notifyv1.CheckCodeRequest{VerificationId: rec.GetVerificationId(), Code: "123456"}), codes.FailedPrecondition, "link", ""},
		{"ticket empty", ticket(&notifyv1.CheckRecoveryTicketRequest{}), codes.InvalidArgument, "ticket is required", "ticket"},
		{"ticket short", ticket(&notifyv1.CheckRecoveryTicketRequest{Ticket: "abc"}), codes.InvalidArgument, "copy the whole link", "ticket"},
		{"ticket with symbols", ticket(&notifyv1.CheckRecoveryTicketRequest{Ticket: strings.Repeat("a", 31) + "%"}), codes.InvalidArgument, "copy the whole link", "ticket"},
		{"ticket unknown", ticket(&notifyv1.CheckRecoveryTicketRequest{Ticket: strings.Repeat("a", 32)}), codes.NotFound, "not valid", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantStatus(t, tt.call(), tt.code, tt.msg, tt.field) })
	}
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func parseAll(t *testing.T, msgs []smtptest.Message) []email {
	t.Helper()
	out := make([]email, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, parseEmail(t, m))
	}
	return out
}
