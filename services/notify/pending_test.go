package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	"gatehouse.dev/services/notify"
	"gatehouse.dev/services/notify/internal/smtptest"
)

// shortLived makes verifications expire within seconds: a second of use,
// a second more for their confirmations.
func shortLived(c *notify.Config) {
	c.VerificationTTL, c.ConfirmationWindow = time.Second, time.Second
}

// waitEmpty waits until NOTIFY_PENDING holds nothing, expiry markers
// included.
func (e *env) waitEmpty(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(45 * time.Second)
	for {
		st, err := e.js.Stream(ctx, "NOTIFY_PENDING")
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("NOTIFY_PENDING still holds %d messages", info.State.Msgs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rows counts the rows of the verifications read model.
func (n *instance) rows(t *testing.T) (verifications, tickets int) {
	t.Helper()
	ctx := context.Background()
	if err := n.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM verifications), (SELECT count(*) FROM recovery_tickets)`).
		Scan(&verifications, &tickets); err != nil {
		t.Fatal(err)
	}
	return verifications, tickets
}

// A verification's events expire once it can no longer be used (and its
// confirmation no longer proves anything): the stream forgets it, the read
// model follows the marker its expiry leaves, and a rebuild agrees.
func TestVerificationExpires(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	n := e.start(t, shortLived)
	ctx := context.Background()
	code := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "ivan@example.org", Purpose: registration})
	recovery := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "judy@example.org", Purpose: recovery, UserId: ids.New()})
	mails := e.mails(t, 2)
	var ticket string
	for _, m := range mails {
		if m.raw.To[0] == "judy@example.org" {
			ticket = m.ticket(t)
		}
	}
	if v, tk := n.rows(t); v != 2 || tk != 1 {
		t.Fatalf("read model: %d verifications, %d tickets; want 2, 1", v, tk)
	}

	e.waitEmpty(t)
	deadline := time.Now().Add(30 * time.Second)
	for v, tk := n.rows(t); v+tk > 0; v, tk = n.rows(t) {
		if time.Now().After(deadline) {
			t.Fatalf("read model still holds %d verifications, %d tickets after they expired", v, tk)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := n.svc.Projections().Rebuild(ctx, "verifications"); err != nil {
		t.Fatal(err)
	}
	if v, tk := n.rows(t); v+tk > 0 {
		t.Fatalf("after a rebuild: %d verifications, %d tickets", v, tk)
	}
	// Expired, a verification is unknown: its code and its link are refused.
	_, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: code.GetVerificationId(), Code: "123456"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("CheckCode of an expired verification: %v", err)
	}
	if _, err := n.client.CheckRecoveryTicket(ctx, &notifyv1.CheckRecoveryTicketRequest{Ticket: ticket}); status.Code(err) != codes.NotFound {
		t.Errorf("CheckRecoveryTicket of an expired verification: %v", err)
	}
	if _, err := n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: recovery.GetVerificationId()}); status.Code(err) != codes.NotFound {
		t.Errorf("ResendVerification of an expired verification: %v", err)
	}
}

// A verification that expired before its email went out (delivery was
// down) sends nothing and does not hold the delivery up.
func TestExpiredBeforeDeliveryIsSkipped(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	down := e.start(t, shortLived, func(c *notify.Config) { c.DisableDelivery = true })
	verify(t, down.client, &notifyv1.StartVerificationRequest{Email: "mallory@example.org", Purpose: registration})
	down.stop()
	e.waitEmpty(t)

	up := e.start(t, shortLived)
	verify(t, up.client, &notifyv1.StartVerificationRequest{Email: "niaj@example.org", Purpose: registration})
	if m := e.mails(t, 1)[0]; m.raw.To[0] != "niaj@example.org" {
		t.Fatalf("emailed %v, want only the live verification's address", m.raw.To)
	}
	e.settle(t, 1)
}

// Once NOTIFY_PENDING is full but for its reserve, new verifications are
// refused as unavailable, saying when to try again, while one started
// before is resent and confirmed.
func TestFullStreamRefusesNewStarts(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	n := e.start(t, func(c *notify.Config) { c.PendingMaxBytes = 64 << 10 })
	ctx := context.Background()
	ongoing := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "olivia@example.org", Purpose: registration})
	e.mails(t, 1)

	var refused error
	for i := range 500 {
		_, err := n.client.StartVerification(ctx, &notifyv1.StartVerificationRequest{Email: fmt.Sprintf("bot%d@example.net", i), Purpose: registration})
		if err != nil {
			refused = err
			break
		}
	}
	if refused == nil {
		t.Fatal("500 verifications fit in a 64 KiB stream")
	}
	if st := status.Convert(refused); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "try again later") {
		t.Fatalf("refusal = %v, want unavailable, try again later", refused)
	}
	if wait, ok := errs.FactOf(errs.FromStatus(refused), errs.FactRetryAfterSeconds); !ok || wait != "60" {
		t.Errorf("refusal says retry after %q (%v), want 60 s", wait, ok)
	}

	// The verification under way still gets a new code and confirms.
	e.clock.Advance(30 * time.Second)
	if _, err := n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: ongoing.GetVerificationId()}); err != nil {
		t.Fatalf("resend while full: %v", err)
	}
	var code string
	deadline := time.Now().Add(20 * time.Second)
	for code == "" {
		for _, m := range e.smtp.Messages() {
			if p := parseEmail(t, m); m.To[0] == "olivia@example.org" && strings.Contains(p.header.Get("Message-Id"), ".2@") {
				code = p.code(t)
			}
		}
		if code == "" {
			if time.Now().After(deadline) {
				t.Fatal("the resent code was not emailed")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: ongoing.GetVerificationId(), Code: code}); err != nil {
		t.Fatalf("confirm while full: %v", err)
	}
}

// Past its usable time a verification gets no new code (its events would
// outlive their end); its current code still checks until it expires.
func TestNoResendPastUsableTime(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	n := e.start(t, func(c *notify.Config) { c.VerificationTTL = 20 * time.Second })
	ctx := context.Background()
	resp := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: "peggy@example.org", Purpose: registration})
	code := e.mails(t, 1)[0].code(t)
	e.clock.Advance(30 * time.Second)
	_, err := n.client.ResendVerification(ctx, &notifyv1.ResendVerificationRequest{VerificationId: resp.GetVerificationId()})
	wantStatus(t, err, codes.FailedPrecondition, "start it again", "")
	if _, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: resp.GetVerificationId(), Code: code}); err != nil {
		t.Fatalf("the code issued in time: %v", err)
	}
}
