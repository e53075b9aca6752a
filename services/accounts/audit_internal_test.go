package accounts

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/audittrail"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection/conformance"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// reactedAudit is what the audit reactor appends to AUDIT for a history of
// ACCOUNTS events: the history is appended to an ACCOUNTS stream of its own
// (another NATS server), the reactor run over it, and the AUDIT events it
// appended returned as they were stored (sealed).
func (s *Service) reactedAudit(t *testing.T, pool *pgxpool.Pool, history []eventlog.Event) []eventlog.Event {
	t.Helper()
	ctx := context.Background()
	js := testkit.NATS(t)
	log, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Accounts, 1))
	if err != nil {
		t.Fatal(err)
	}
	audit, err := audittrail.Open(ctx, js, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	reactor := &Service{personal: s.personal, log: log, auditLog: audit, clock: time.Now}
	out := conformance.Reacted(t, pool, log, audit, reactor.auditReactor(), history)
	erasures := 0
	for _, ev := range out {
		e := ev.Payload.(*eventsv1.AccountsAuditRecorded).GetEntry()
		if e.GetErasure() {
			erasures++
		}
		if e.GetEventType() == "gatehouse.events.v1.RegistrationStarted" || strings.HasSuffix(e.GetEventType(), "Reserved") || strings.HasSuffix(e.GetEventType(), "Released") {
			t.Errorf("a registration's start or a claim made an entry: %v", e)
		}
	}
	types := historyTypes(history)
	claims := 0
	for _, claim := range []string{"UsernameReserved", "EmailReserved", "EmailReleased", "UpstreamLinkReserved", "UpstreamLinkReleased"} {
		claims += strings.Count(types, claim+"\n")
	}
	if claims == 0 {
		t.Error("the history holds no claim: what the reactor leaves out is not tried")
	}
	if want := len(history) - strings.Count(types, "RegistrationStarted") - claims; len(out) != want {
		t.Errorf("the reactor appended %d entries for %d events (but registration starts and claims), want one each", len(out), want)
	}
	if erasures == 0 {
		t.Error("no entry records an erasure")
	}
	return out
}

// historyTypes names the event types of a history, one a line.
func historyTypes(history []eventlog.Event) string {
	var b strings.Builder
	for _, e := range history {
		b.WriteString(string(e.Payload.ProtoReflect().Descriptor().Name()) + "\n")
	}
	return b.String()
}
