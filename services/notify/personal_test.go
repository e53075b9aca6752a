package notify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/prototext"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	"gatehouse.dev/services/notify/internal/smtptest"
)

// Addresses are never in clear in the NOTIFY_PENDING stream or the read model: a
// verification for a user with a personal key seals the address under it; a
// registration's (nobody's yet), and a user's who has no key, under the
// verification's own key, which expires. The codes still reach the
// addresses, and erasing the user leaves nothing that opens.
func TestAddressesAreSealed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, smtptest.Options{})
	n := e.start(t)
	keys, err := personal.Open(ctx, e.js, e.keyring, personal.Config{}) // the accounts service's
	if err != nil {
		t.Fatal(err)
	}
	withKey, withoutKey := ids.New(), ids.New()
	if _, err := keys.Create(ctx, personal.User(withKey)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		email, user string
		purpose     notifyv1.Purpose
		owner       func(verificationID string) personal.Owner
	}{
		{"stranger@example.org", "", registration, personal.Flow},
		{"holder@example.org", withKey, addEmail, func(string) personal.Owner { return personal.User(withKey) }},
		{"without.key@example.org", withoutKey, addEmail, personal.Flow},
	}
	for i, c := range cases {
		id := verify(t, n.client, &notifyv1.StartVerificationRequest{Email: c.email, Purpose: c.purpose, UserId: c.user, ClientIp: "192.0.2.7"}).GetVerificationId()
		m := e.mails(t, i+1)[i]
		if len(m.raw.To) != 1 || m.raw.To[0] != c.email {
			t.Fatalf("the code went to %v, not %s", m.raw.To, c.email)
		}
		if _, err := n.client.CheckCode(ctx, &notifyv1.CheckCodeRequest{VerificationId: id, Code: m.code(t)}); err != nil {
			t.Fatalf("%s: %v", c.email, err)
		}
		for _, rec := range notifyEvents(t, e.js, id) {
			var sealedEmail *eventsv1.SealedSecret
			switch ev := rec.Event.(type) {
			case *eventsv1.VerificationStarted:
				sealedEmail = ev.GetSealedEmail()
			case *eventsv1.VerificationConfirmed:
				sealedEmail = ev.GetSealedEmail()
			}
			if strings.Contains(prototext.Format(rec.Event), c.email) {
				t.Errorf("%s: %s holds the address in clear", c.email, rec.Type())
			}
			if sealedEmail != nil && sealedEmail.GetPersonalKey() != string(c.owner(id)) {
				t.Errorf("%s: %s sealed under %q, want %q", c.email, rec.Type(), sealedEmail.GetPersonalKey(), c.owner(id))
			}
		}
		var row string
		if err := n.pool.QueryRow(ctx, `SELECT v::text FROM verifications v WHERE id = $1`, id).Scan(&row); err != nil || strings.Contains(row, c.email) {
			t.Errorf("%s: read model row %q (%v)", c.email, row, err)
		}
	}
	// The keyed user erased: the address opens no more.
	if err := keys.Destroy(ctx, personal.User(withKey)); err != nil {
		t.Fatal(err)
	}
	for _, rec := range notifyEvents(t, e.js, "") {
		if err := keys.UnsealRecord(ctx, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Event != nil && strings.Contains(prototext.Format(rec.Event), "holder@example.org") {
			t.Errorf("%s still opens to the erased user's address", rec.Type())
		}
	}
}

// notifyEvents returns the events of one verification (every one: id ""),
// oldest first.
func notifyEvents(t *testing.T, js jetstream.JetStream, id string) []eventlog.Record {
	t.Helper()
	subject := "notify.verification.*"
	if id != "" {
		subject = "notify.verification." + id
	}
	ctx := context.Background()
	c, err := js.OrderedConsumer(ctx, "NOTIFY_PENDING", jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventlog.Record
	for len(out) < int(info.NumPending) {
		batch, err := c.Fetch(int(info.NumPending)-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			rec, err := eventlog.DecodeMsg(m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
			got++
		}
		if got == 0 {
			t.Fatal("no events fetched")
		}
	}
	return out
}
