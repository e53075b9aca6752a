package accounts_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts"
	"gatehouse.dev/services/accounts/internal/browser"
)

// Every event of a browser session, and every activity batch, expires the
// session's longest life plus the retention after it is written, and the
// read model drops the sessions started that long ago: a sign-in does not
// stay in ACCOUNTS and its read model for ever.
func TestBrowserSessionsLeaveAfterTheRetention(t *testing.T) {
	const retention = 48 * time.Hour
	h := startHarness(t, func(cfg *accounts.Config) {
		cfg.EndedSessionRetention, cfg.ActivityFlushInterval = retention, time.Hour
	})
	ctx, c := context.Background(), h.c
	u := register(t, c, "alice", "alice's password")
	started := startSession(t, c, u.GetId(), "192.0.2.10")
	id := started.GetSession().GetSessionId()
	if _, err := authenticate(c, started.GetSecret(), "192.0.2.11"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: id}); err != nil {
		t.Fatal(err)
	}
	h.stopRun() // the last flush writes the activity batch

	cons, err := h.js.OrderedConsumer(ctx, eventsv1.Accounts.Name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"accounts.browser." + id, eventsv1.AccountsActivity.Subjects()}})
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(int((browser.MaxAge + retention).Seconds()))
	kinds := map[string]int{}
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			break
		}
		kinds[m.Headers().Get("Gatehouse-Event-Type")]++
		if got := m.Headers().Get(jetstream.MsgTTLHeader); got != want {
			t.Errorf("%s (%s) expires after %q s, want %s", m.Subject(), m.Headers().Get("Gatehouse-Event-Type"), got, want)
		}
	}
	if len(kinds) < 3 {
		t.Fatalf("read %v; want the session's start, its end and the activity batch", kinds)
	}

	for _, sweep := range []struct {
		at      time.Time
		dropped int64
	}{{time.Now(), 0}, {time.Now().Add(browser.MaxAge + retention - time.Hour), 0}, {time.Now().Add(browser.MaxAge + retention + time.Hour), 1}} {
		if n, err := h.svc.DropOldBrowserSessions(ctx, sweep.at); err != nil || n != sweep.dropped {
			t.Fatalf("sweep at %s: %d dropped, %v; want %d", sweep.at, n, err, sweep.dropped)
		}
	}
	if ids := sessionIDs(t, c, u.GetId(), true); len(ids) != 0 {
		t.Fatalf("sessions listed after the sweep: %v", ids)
	}
}
