package notify

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventcheck"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/projection/conformance"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/notify/migrations"
)

// Every fold, projection and reactor of the service names every event of
// the aggregates it consumes.
func TestEveryEventTypeIsHandled(t *testing.T) { eventcheck.Switches(t, ".") }

// The verifications projection passes the platform's conformance suite with
// the history the service really writes.
func TestProjectionsConform(t *testing.T) {
	ctx := context.Background()
	pool := testkit.Schema(t, Schema, migrations.FS)
	cfg := Config{VerificationTTL: 30 * time.Minute, ConfirmationWindow: confirmationWindow, PendingMaxBytes: 1 << 20}
	log, err := eventlog.Open(ctx, testkit.NATS(t), cfg.pendingStream())
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Case{
		Projection: verificationsReadModel(log, cfg.life()), Contract: eventsv1.NotifyPending, Log: log, Pool: pool, Events: verificationHistory(),
	})
}

// verificationHistory (in NOTIFY_PENDING) is a registration code resent after a wrong try and
// confirmed, a code that bounced, a recovery link resent and confirmed, and
// one locked after five wrong codes.
func verificationHistory() []eventlog.Event {
	v1, v2, v3, v4 := ids.New(), ids.New(), ids.New(), ids.New()
	alice := ids.New()
	in := func(d time.Duration) *timestamppb.Timestamp {
		return timestamppb.New(time.Now().Add(d).Truncate(time.Second))
	}
	ev := func(id string, p proto.Message) eventlog.Event {
		return eventlog.Event{Aggregate: eventlog.Ref{Type: verificationAggregate, ID: id}, Actor: "system", Payload: p}
	}
	reg := eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION
	add := eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL
	rec := eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY
	history := []eventlog.Event{
		ev(v1, &eventsv1.VerificationStarted{VerificationId: v1, Email: "alice@example.org", Purpose: reg, CodeHash: "c1", ExpiresAt: in(5 * time.Minute), Locale: "fr", IssuedAt: in(0)}),
		ev(v1, &eventsv1.EmailDelivered{VerificationId: v1, Issue: 1, MessageId: "<v1.1@example.org>"}),
		ev(v1, &eventsv1.VerificationAttemptFailed{VerificationId: v1, Attempts: 1}),
		ev(v1, &eventsv1.VerificationCodeReissued{VerificationId: v1, Issue: 2, CodeHash: "c2", ExpiresAt: in(10 * time.Minute), IssuedAt: in(time.Minute)}),
		ev(v1, &eventsv1.EmailDelivered{VerificationId: v1, Issue: 2, MessageId: "<v1.2@example.org>"}),
		ev(v2, &eventsv1.VerificationStarted{VerificationId: v2, Email: "nobody@example.net", Purpose: add, UserId: alice, CodeHash: "c3", ExpiresAt: in(5 * time.Minute), IssuedAt: in(0)}),
		ev(v2, &eventsv1.EmailDeliveryFailed{VerificationId: v2, Issue: 1, Reason: "550 5.1.1 no such user"}),
		ev(v1, &eventsv1.VerificationConfirmed{VerificationId: v1, Email: "alice@example.org", Purpose: reg}),
		ev(v3, &eventsv1.VerificationStarted{VerificationId: v3, Email: "alice@example.org", Purpose: rec, UserId: alice, TicketHash: "t1", ExpiresAt: in(10 * time.Minute), IssuedAt: in(0)}),
		ev(v3, &eventsv1.VerificationCodeReissued{VerificationId: v3, Issue: 2, TicketHash: "t2", ExpiresAt: in(20 * time.Minute)}),
		ev(v3, &eventsv1.EmailDelivered{VerificationId: v3, Issue: 2, MessageId: "<v3.2@example.org>"}),
		ev(v3, &eventsv1.VerificationConfirmed{VerificationId: v3, Email: "alice@example.org", Purpose: rec, UserId: alice}),
		ev(v4, &eventsv1.VerificationStarted{VerificationId: v4, Email: "bob@example.org", Purpose: reg, CodeHash: "c4", ExpiresAt: in(5 * time.Minute), IssuedAt: in(0)}),
	}
	for n := uint32(1); n <= 5; n++ {
		history = append(history, ev(v4, &eventsv1.VerificationAttemptFailed{VerificationId: v4, Attempts: n}))
	}
	return history
}
