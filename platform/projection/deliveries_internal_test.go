package projection

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/testkit"
)

// A consumer's messages that arrive with a gap in their delivery numbers
// (a pull answered by a NATS node that died) stop the runner, which starts
// again from its checkpoint; in order, and again after a redelivery, they
// pass.
func TestDeliveriesFindLostMessages(t *testing.T) {
	srv := testkit.StartNATS(t)
	_, js := srv.Connect(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "GAPS", Subjects: []string{"gaps.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := js.Publish(ctx, fmt.Sprintf("gaps.%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	c, err := js.CreateConsumer(ctx, "GAPS", jetstream.ConsumerConfig{Durable: "gaps", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(4, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 4 {
		t.Fatalf("fetched %d messages, want 4", len(msgs))
	}

	var inOrder deliveries
	for i, m := range msgs {
		if err := inOrder.next(m); err != nil {
			t.Fatalf("message %d in order: %v", i, err)
		}
	}
	// Unacknowledged, the first comes again (delivery 5): no gap.
	again, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range again.Messages() {
		if err := inOrder.next(m); err != nil {
			t.Fatalf("a redelivery after the others: %v", err)
		}
	}

	var gap deliveries
	if err := gap.next(msgs[0]); err != nil {
		t.Fatal(err)
	}
	if err := gap.next(msgs[2]); !errors.Is(err, errDeliveryLost) {
		t.Fatalf("the third message right after the first: %v, want errDeliveryLost", err)
	}
}
