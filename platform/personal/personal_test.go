package personal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

const (
	alice = "01HZXALICE0000000000000000"
	bob   = "01HZXBOB000000000000000000"
)

func open(t *testing.T, js jetstream.JetStream, ring *sealed.Keyring) *personal.Store {
	t.Helper()
	s, err := personal.Open(context.Background(), js, ring, personal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawKeys returns every message of the PERSONALKEYS stream by subject.
func rawKeys(t *testing.T, js jetstream.JetStream) map[string]*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, eventsv1.PersonalKeys.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*jetstream.RawStreamMsg{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		if m, err := st.GetMsg(ctx, seq); err == nil {
			out[m.Subject] = m
		}
	}
	return out
}

func TestKeysAreCreatedOnceAndDestroyedForGood(t *testing.T) {
	ctx := context.Background()
	js := testkit.NATS(t)
	ring := sealed.NewRandomKeyring()
	a, b := open(t, js, ring), open(t, js, ring)

	// Two processes creating alice's key at once get the same key.
	var (
		wg   sync.WaitGroup
		keys [8]*sealed.Key
		errs [8]error
	)
	for i := range keys {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() { keys[i], errs[i] = s.Create(ctx, personal.User(alice)) })
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if keys[i].ID() != keys[0].ID() {
			t.Fatalf("create %d got key %s, create 0 key %s", i, keys[i].ID(), keys[0].ID())
		}
	}
	if _, err := a.Create(ctx, personal.User(bob)); err != nil {
		t.Fatal(err)
	}
	raw := rawKeys(t, js)
	if len(raw) != 2 {
		t.Fatalf("the stream holds %d keys, want 2: %v", len(raw), raw)
	}
	wrapped := &eventsv1.SealedSecret{}
	if err := proto.Unmarshal(raw["personalkeys.user."+alice].Data, wrapped); err != nil || wrapped.GetKeyId() != ring.CurrentID() {
		t.Fatalf("alice's key is not sealed under the key-encryption key: %v %v", wrapped, err)
	}

	if err := b.Destroy(ctx, personal.User(alice)); err != nil {
		t.Fatal(err)
	}
	if err := b.Destroy(ctx, personal.User(alice)); err != nil {
		t.Fatalf("destroying a destroyed key: %v", err)
	}
	if _, err := b.Get(ctx, personal.User(alice)); !errors.Is(err, personal.ErrErased) {
		t.Fatalf("get a destroyed key: %v, want ErrErased", err)
	}
	if _, ok := rawKeys(t, js)["personalkeys.user."+alice]; ok {
		t.Fatal("the destroyed key is still in the stream")
	}
	if _, err := open(t, js, ring).Get(ctx, personal.User(bob)); err != nil {
		t.Fatalf("bob's key after alice's erasure: %v", err)
	}
	if _, err := a.Get(ctx, personal.User("no.such")); err == nil {
		t.Fatal("an owner with a dot was accepted")
	}
}

func TestFlowKeysExpire(t *testing.T) {
	ctx := context.Background()
	js := testkit.NATS(t)
	s := open(t, js, sealed.NewRandomKeyring())
	v, err := s.SealValue(ctx, personal.Flow("01HZXFLOW00000000000000000"), []byte("a@example.org"), "somewhere/email")
	if err != nil {
		t.Fatal(err)
	}
	if v.GetPersonalKey() != "flow.01HZXFLOW00000000000000000" {
		t.Fatalf("personal_key = %q", v.GetPersonalKey())
	}
	m := rawKeys(t, js)["personalkeys.flow.01HZXFLOW00000000000000000"]
	if m == nil || m.Header.Get("Nats-TTL") == "" {
		t.Fatalf("the flow's key has no TTL: %+v", m)
	}
	if _, err := s.SealValue(ctx, personal.User(alice), []byte("x"), "somewhere/else"); !errors.Is(err, personal.ErrErased) {
		t.Fatalf("sealing under a user's key that was never created: %v, want ErrErased", err)
	}
}

func TestSealAndUnsealEvents(t *testing.T) {
	ctx := context.Background()
	js := testkit.NATS(t)
	ring := sealed.NewRandomKeyring()
	s := open(t, js, ring)
	for _, u := range []string{alice, bob} {
		if _, err := s.Create(ctx, personal.User(u)); err != nil {
			t.Fatal(err)
		}
	}
	const subject = "accounts.user." + alice
	registered := &eventsv1.UserRegistered{UserId: alice, Username: "alice", Email: "alice@example.org", DisplayName: "Alice Liddell",
		PasswordHash: "not opened by the walker"}
	got, err := s.Seal(ctx, registered, subject, personal.NoOwner)
	if err != nil {
		t.Fatal(err)
	}
	ev := got.(*eventsv1.UserRegistered)
	if ev.GetEmail() != "" || ev.GetDisplayName() != "" || ev.GetSealedEmail() == nil || ev.GetSealedDisplayName() == nil {
		t.Fatalf("sealed event = %v", ev)
	}
	if ev.GetSealedEmail().GetPersonalKey() != "user."+alice || ev.GetUsername() != "alice" || ev.GetPasswordHash() == "" {
		t.Fatalf("sealed event = %v", ev)
	}
	if registered.GetEmail() == "" {
		t.Fatal("Seal changed its input")
	}
	raw, _ := proto.Marshal(ev)
	for _, secret := range []string{"alice@example.org", "Alice Liddell"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the sealed event holds %q", secret)
		}
	}

	// A batch of activity: each entry under its own user's key; a client of
	// nobody's stays in clear.
	active, err := s.Seal(ctx, &eventsv1.BrowserSessionsActive{Entries: []*eventsv1.BrowserSessionsActive_Entry{
		{SessionId: "s1", UserId: alice, IpAddress: "192.0.2.1"},
		{SessionId: "s2", UserId: bob, IpAddress: "2001:db8::1"},
		{SessionId: "s3", IpAddress: "198.51.100.7"},
	}}, "accounts.activity.b1", personal.NoOwner)
	if err != nil {
		t.Fatal(err)
	}
	entries := active.(*eventsv1.BrowserSessionsActive).GetEntries()
	if entries[0].GetSealedIpAddress().GetPersonalKey() != "user."+alice || entries[1].GetSealedIpAddress().GetPersonalKey() != "user."+bob ||
		entries[2].GetIpAddress() != "198.51.100.7" || entries[2].GetSealedIpAddress() != nil {
		t.Fatalf("sealed entries = %v", entries)
	}

	// Another process opens them.
	other := open(t, js, ring)
	opened := proto.Clone(ev)
	if err := other.Unseal(ctx, opened, subject); err != nil {
		t.Fatal(err)
	}
	if o := opened.(*eventsv1.UserRegistered); o.GetEmail() != "alice@example.org" || o.GetDisplayName() != "Alice Liddell" {
		t.Fatalf("unsealed = %v", o)
	}

	// A sealed value does not open at another place (another user's subject).
	moved := proto.Clone(ev)
	if err := other.Unseal(ctx, moved, "accounts.user."+bob); err == nil {
		t.Fatal("a value sealed for alice's subject opened at bob's")
	}

	// After alice's erasure, her fields open as empty in every process, bob's still open.
	if err := s.Destroy(ctx, personal.User(alice)); err != nil {
		t.Fatal(err)
	}
	fresh := open(t, js, ring)
	for name, st := range map[string]*personal.Store{"destroyer": s, "another process": fresh} {
		erased := proto.Clone(ev).(*eventsv1.UserRegistered)
		if err := st.Unseal(ctx, erased, subject); err != nil {
			t.Fatalf("%s: unseal an erased user's event: %v", name, err)
		}
		if erased.GetEmail() != "" || erased.GetDisplayName() != "" || !personal.Erased(erased.GetEmail(), erased.GetSealedEmail()) {
			t.Fatalf("%s: erased event = %v", name, erased)
		}
		batch := proto.Clone(active).(*eventsv1.BrowserSessionsActive)
		if err := st.Unseal(ctx, batch, "accounts.activity.b1"); err != nil {
			t.Fatal(err)
		}
		if e := batch.GetEntries(); e[0].GetIpAddress() != "" || e[1].GetIpAddress() != "2001:db8::1" || e[2].GetIpAddress() != "198.51.100.7" {
			t.Fatalf("%s: entries after alice's erasure = %v", name, e)
		}
	}
}

func TestResealAfterARotationOfTheKeyEncryptionKey(t *testing.T) {
	ctx := context.Background()
	js := testkit.NATS(t)
	oldKey, _, _ := sealed.GenerateKey()
	newKey, _, _ := sealed.GenerateKey()
	oldRing, _ := sealed.NewKeyring(oldKey)
	s := open(t, js, oldRing)
	v, err := s.SealValue(ctx, personal.Flow("f1"), []byte("flow data"), "p/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, personal.User(alice)); err != nil {
		t.Fatal(err)
	}
	w, err := s.SealValue(ctx, personal.User(alice), []byte("alice data"), "p/y")
	if err != nil {
		t.Fatal(err)
	}

	for i := range 300 { // more than one fetch
		if _, err := s.Create(ctx, personal.User(fmt.Sprintf("u%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	rotating, _ := sealed.NewKeyring(newKey, oldKey)
	n, err := open(t, js, rotating).Reseal(ctx)
	if err != nil || n != 302 {
		t.Fatalf("reseal = %d, %v; want 302", n, err)
	}
	if n, err := open(t, js, rotating).Reseal(ctx); err != nil || n != 0 {
		t.Fatalf("second reseal = %d, %v; want 0", n, err)
	}
	newOnly, _ := sealed.NewKeyring(newKey)
	after := open(t, js, newOnly)
	for where, sv := range map[string]*eventsv1.SealedSecret{"p/x": v, "p/y": w} {
		if _, err := after.OpenValue(ctx, sv, where); err != nil {
			t.Errorf("open %s with the new key alone: %v", where, err)
		}
	}
	if m := rawKeys(t, js)["personalkeys.flow.f1"]; m == nil || m.Header.Get("Nats-TTL") == "" {
		t.Fatalf("the resealed flow key lost its TTL: %+v", m)
	}
}

func TestSealWithFallback(t *testing.T) {
	ctx := context.Background()
	s := open(t, testkit.NATS(t), sealed.NewRandomKeyring())
	flow := personal.Flow("01HZXVERIFICATION000000000")
	got, err := s.SealWithFallback(ctx, &eventsv1.VerificationStarted{VerificationId: "v", UserId: alice, Email: "a@example.org"}, "notify.verification.v", flow)
	if err != nil {
		t.Fatal(err)
	}
	ev := got.(*eventsv1.VerificationStarted)
	if ev.GetUserId() != alice || ev.GetEmail() != "" || ev.GetSealedEmail().GetPersonalKey() != string(flow) {
		t.Fatalf("a user without a key: %v", ev)
	}
	if _, err := s.Create(ctx, personal.User(alice)); err != nil {
		t.Fatal(err)
	}
	got, err = s.SealWithFallback(ctx, &eventsv1.VerificationStarted{VerificationId: "v", UserId: alice, Email: "a@example.org"}, "notify.verification.v", flow)
	if err != nil {
		t.Fatal(err)
	}
	if k := got.(*eventsv1.VerificationStarted).GetSealedEmail().GetPersonalKey(); k != "user."+alice {
		t.Fatalf("a user with a key: sealed under %q", k)
	}
	if err := s.Unseal(ctx, got, "notify.verification.v"); err != nil || got.(*eventsv1.VerificationStarted).GetEmail() != "a@example.org" {
		t.Fatalf("unseal = %v, %v", got, err)
	}
}

// Holds tells the event types that can carry personal data, directly or in
// a message they hold, from those that cannot.
func TestHoldsPersonalData(t *testing.T) {
	for _, tc := range []struct {
		event proto.Message
		want  bool
	}{
		{&eventsv1.EmailReserved{}, true},     // email, sealed_email
		{&eventsv1.UserImported{}, true},      // display_name; emails and links hold more
		{&eventsv1.UsernameReserved{}, false}, // a username is no personal field
		{&eventsv1.AdminSet{}, false},
		{nil, false},
	} {
		if got := personal.Holds(tc.event); got != tc.want {
			t.Errorf("Holds(%T) = %v, want %v", tc.event, got, tc.want)
		}
	}
}
