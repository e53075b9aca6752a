package accounts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts"
)

// An abandoned registration leaves the durable stream on its own: its
// RegistrationStarted carries a TTL, so anonymous starts cannot fill the
// store, and the audit log (which a rebuild must reproduce) never shows it.
func TestAbandonedRegistrationExpires(t *testing.T) {
	h := startHarness(t, func(c *accounts.Config) { c.RegistrationTTL, c.RegistrationKeep = time.Second, -1 })
	ctx := context.Background()
	started, err := h.c.StartRegistration(ctx, &accountsv1.StartRegistrationRequest{
		Username: "eve", Password: "eve's long password", Email: "eve@example.org",
	})
	if err != nil {
		t.Fatal(err)
	}
	id := started.GetRegistration().GetRegistrationId()
	st, err := h.js.Stream(ctx, eventsv1.Accounts.Name)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := st.CachedInfo().Config; !cfg.AllowMsgTTL || !cfg.DenyDelete || !cfg.DenyPurge || cfg.MaxAge != 0 {
		t.Errorf("ACCOUNTS: TTLs %v, deny delete %v, deny purge %v, max age %s", cfg.AllowMsgTTL, cfg.DenyDelete, cfg.DenyPurge, cfg.MaxAge)
	}
	subject := eventsv1.AccountsRegistration.Subject(id)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := st.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still holds the registration's start after its TTL", subject)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := h.c.GetRegistration(ctx, &accountsv1.GetRegistrationRequest{RegistrationId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("an expired registration: %v", err)
	}
	var entries int
	if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM audit_entries WHERE event_type = 'gatehouse.events.v1.RegistrationStarted'`).Scan(&entries); err != nil || entries != 0 {
		t.Errorf("audit entries of registration starts: %d (%v)", entries, err)
	}
}
