package accounts_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gatehouse.dev/platform/projection"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts"
)

// auditMessages is how many entries the AUDIT stream holds, and checks its
// retention.
func (h *harness) auditMessages(t *testing.T, retention time.Duration) uint64 {
	t.Helper()
	ctx := context.Background()
	st, err := h.js.Stream(ctx, eventsv1.Audit.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != retention {
		t.Fatalf("AUDIT MaxAge %s, want %s", info.Config.MaxAge, retention)
	}
	return info.State.Msgs
}

// listAudit lists a user's audit entries, as the admin API does.
func listAudit(t *testing.T, c accountsv1.AccountsServiceClient, userID string) []*accountsv1.AuditEntry {
	t.Helper()
	resp, err := c.ListAuditEntries(context.Background(), &accountsv1.ListAuditEntriesRequest{UserId: userID, PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetEntries()
}

// waitCaughtUp waits until a member of the service's set has handled every
// event on its subjects.
func waitCaughtUp(t *testing.T, set *projection.Set, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	head, err := set.Head(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.WaitFor(ctx, name, head); err != nil {
		t.Fatal(err)
	}
}

// The audit reactor appends each event's entry to AUDIT once: a replay of
// the ACCOUNTS stream (its checkpoint rewound, as after a crash between an
// append and its checkpoint) appends nothing more, and the list right after
// an act shows it.
func TestAuditReactorAppendsOnce(t *testing.T) {
	h := startHarness(t, nil)
	ctx := context.Background()
	u := register(t, h.c, "alice", "alice's long password")
	if _, err := h.c.LockUser(ctx, &accountsv1.LockUserRequest{UserId: u.GetId(), Reason: "audit"}); err != nil {
		t.Fatal(err)
	}
	entries := listAudit(t, h.c, u.GetId()) // no wait: the list catches up itself
	if len(entries) == 0 || entries[0].GetSummary() != "locked: audit" {
		t.Fatalf("the lock just done is not the newest entry: %v", entries)
	}
	before := h.auditMessages(t, 0)

	set := h.svc.Projections()
	if _, err := set.Rebuild(ctx, accounts.AuditReactorName); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, set, accounts.AuditReactorName)
	if after := h.auditMessages(t, 0); after != before {
		t.Fatalf("a replay of ACCOUNTS: AUDIT went from %d to %d entries", before, after)
	}
	if again := listAudit(t, h.c, u.GetId()); len(again) != len(entries) {
		t.Fatalf("after a replay %d entries are listed, before %d", len(again), len(entries))
	}
}

// With a retention, entries older than it leave the AUDIT stream (its
// MaxAge), the list and the read model (the sweep); a rebuild finds none,
// and a replay of the events, now older than it, appends none.
func TestAuditRetention(t *testing.T) {
	const retention = 2 * time.Second
	h := startHarness(t, func(c *accounts.Config) { c.AuditRetention = retention })
	ctx := context.Background()
	u := register(t, h.c, "alice", "alice's long password")
	if entries := listAudit(t, h.c, u.GetId()); len(entries) == 0 {
		t.Fatal("no entry of the registration")
	}
	eventually(t, "the entries leaving the stream", func() error {
		if n := h.auditMessages(t, retention); n != 0 {
			return fmt.Errorf("%d entries in AUDIT", n)
		}
		return nil
	})
	if entries := listAudit(t, h.c, u.GetId()); len(entries) != 0 {
		t.Fatalf("entries past the retention are listed: %v", entries)
	}
	if _, err := h.svc.DropOldAudit(ctx); err != nil {
		t.Fatal(err)
	}
	rows := func() (n int) {
		t.Helper()
		if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM audit_entries`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows(); n != 0 {
		t.Fatalf("%d rows past the retention after the sweep", n)
	}
	set := h.svc.Projections()
	for _, name := range []string{accounts.AuditReactorName, accounts.AuditProjection} {
		if _, err := set.Rebuild(ctx, name); err != nil {
			t.Fatal(err)
		}
		waitCaughtUp(t, set, name)
	}
	if n, m := rows(), h.auditMessages(t, retention); n != 0 || m != 0 {
		t.Fatalf("after a replay and a rebuild: %d rows, %d entries in AUDIT; want none", n, m)
	}
}
