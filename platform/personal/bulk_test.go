package personal_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// CreateAll creates many keys at once, finds the ones that exist already
// (created by Create, or by an earlier CreateAll), and other processes read
// them with GetAll and Prefetch.
func TestCreateAllAndGetAll(t *testing.T) {
	ctx := context.Background()
	js := testkit.NATS(t)
	ring := sealed.NewRandomKeyring()
	a := open(t, js, ring)
	owners := make([]personal.Owner, 700)
	for i := range owners {
		owners[i] = personal.User(fmt.Sprintf("01HZXUSER%017d", i))
	}
	before, err := a.Create(ctx, owners[3])
	if err != nil {
		t.Fatal(err)
	}
	keys, err := a.CreateAll(ctx, owners)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(owners) || keys[owners[3]].ID() != before.ID() {
		t.Fatalf("%d keys; the one created before is %v, want %s", len(keys), keys[owners[3]], before.ID())
	}
	if len(rawKeys(t, js)) != len(owners) {
		t.Fatalf("the stream holds %d keys, want %d", len(rawKeys(t, js)), len(owners))
	}
	// A run again (another process) creates nothing and gets the same keys.
	b := open(t, js, ring)
	again, err := b.CreateAll(ctx, owners)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range owners {
		if again[o].ID() != keys[o].ID() {
			t.Fatalf("%s: key %s, then %s", o, keys[o].ID(), again[o].ID())
		}
	}

	// GetAll in a third process; an owner without a key is left out.
	c := open(t, js, ring)
	got, err := c.GetAll(ctx, append(owners[:300:300], personal.User(alice)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 300 || got[personal.User(alice)] != nil {
		t.Fatalf("GetAll found %d keys (alice's: %v)", len(got), got[personal.User(alice)])
	}

	// Prefetch reads the keys sealed values name; then they open.
	v, err := personal.SealValueWith(keys[owners[500]], owners[500], []byte("a@example.org"), "accounts.user.x/email")
	if err != nil {
		t.Fatal(err)
	}
	ev := &eventsv1.EmailReserved{SealedEmail: v}
	d := open(t, js, ring)
	if err := d.Prefetch(ctx, []proto.Message{ev, nil}); err != nil {
		t.Fatal(err)
	}
	if err := d.Unseal(ctx, ev, "accounts.user.x"); err != nil || ev.GetEmail() != "a@example.org" {
		t.Fatalf("after Prefetch the address opens as %q (%v)", ev.GetEmail(), err)
	}
	if _, err := a.CreateAll(ctx, []personal.Owner{personal.Flow("01HZXFLOW00000000000000000")}); err == nil {
		t.Fatal("CreateAll made a flow's key (without its TTL)")
	}
}
