package accounts_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts"
	"gatehouse.dev/services/accounts/internal/password"
)

// deployment is NATS and PostgreSQL that accounts processes come and go on,
// each with the keyring it is configured with.
type deployment struct {
	js    jetstream.JetStream
	dbURL string
	logs  *lockedBuffer
}

// lockedBuffer is a log sink for several processes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// process starts an accounts service with ring; stop ends it.
func (d *deployment) process(t *testing.T, ring *sealed.Keyring) (c accountsv1.AccountsServiceClient, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(d.logs, nil))
	pool, err := pg.Connect(ctx, d.dbURL, accounts.Schema)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := accounts.New(ctx, accounts.Config{ServerName: "example.org", Passwords: cheap},
		accounts.Deps{Pool: pool, JetStream: d.js, Logger: logger, Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { svc.Run(ctx) })
	conn := testkit.ServeGRPC(t, svc.RegisterGRPC, testkit.GRPCOptions{Logger: logger}).DialAuto(t)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			pool.Close()
		})
	}
	t.Cleanup(stop)
	return accountsv1.NewAccountsServiceClient(conn), stop
}

// passwordEvents returns the password events of a user, oldest first.
func passwordEvents(t *testing.T, js jetstream.JetStream, userID string) []*eventsv1.PasswordChanged {
	t.Helper()
	h := &harness{js: js}
	var out []*eventsv1.PasswordChanged
	for _, rec := range h.events(t, "accounts.user."+userID) {
		if ev, ok := rec.Event.(*eventsv1.PasswordChanged); ok {
			out = append(out, ev)
		}
	}
	return out
}

func signsIn(t *testing.T, c accountsv1.AccountsServiceClient, username, pw string) error {
	t.Helper()
	_, err := c.VerifyPassword(context.Background(), &accountsv1.VerifyPasswordRequest{Username: username, Password: pw})
	return err
}

func newKeyring(t *testing.T, keys ...*sealed.Key) *sealed.Keyring {
	t.Helper()
	r, err := sealed.NewKeyring(keys[0], keys[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newKEK(t *testing.T) *sealed.Key {
	t.Helper()
	k, _, err := sealed.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Rotating the key-encryption key, and upgrading hashes of earlier versions:
// alice, registered now, has her hash sealed under her personal key from
// the start; bob's hash was kept in clear and carol's sealed under the
// key-encryption key by earlier versions. Two processes starting together
// with a new key seal every personal key again under it, and bob's and
// carol's hashes under their own personal keys, once each; then, with the
// old key gone from the configuration, everyone still signs in. A process
// given neither key cannot open anything and says so.
func TestPasswordHashesAfterKeyRotation(t *testing.T) {
	ctx := context.Background()
	d := &deployment{js: testkit.NATS(t), dbURL: testkit.Postgres(t), logs: &lockedBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", d.logs.String())
		}
	})
	oldKEK, newKEK := newKEK(t), newKEK(t)

	c, stop := d.process(t, newKeyring(t, oldKEK))
	alice := register(t, c, "alice", "alice's long password")
	if err := signsIn(t, c, "alice", "alice's long password"); err != nil {
		t.Fatal(err)
	}
	if evs := passwordEvents(t, d.js, alice.GetId()); len(evs) != 0 {
		t.Fatalf("registration recorded password changes: %v", evs)
	}
	if got := personalKeyIDs(t, d.js); got["user."+alice.GetId()] != oldKEK.ID() {
		t.Fatalf("alice's personal key: %v", got)
	}
	// bob and carol, as earlier versions recorded them.
	log, err := eventlog.Open(ctx, d.js, eventlog.StreamConfig{Name: eventsv1.Accounts.Name, Prefix: "accounts", AllowTTL: true})
	if err != nil {
		t.Fatal(err)
	}
	bobID, carolID := ids.New(), ids.New()
	for _, u := range []struct{ id, name string }{{bobID, "bob"}, {carolID, "carol"}} {
		hash, err := password.New(cheap).Hash(u.name + "'s long password")
		if err != nil {
			t.Fatal(err)
		}
		ev := &eventsv1.UserRegistered{UserId: u.id, Username: u.name, PasswordHash: hash} // in clear, before sealing
		if u.name == "carol" {                                                             // under the KEK, before personal keys
			ev.PasswordHash = ""
			if ev.SealedPasswordHash, err = newKeyring(t, oldKEK).Seal([]byte(hash), "accounts.user."+u.id+"/password_hash"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
			Aggregate: eventlog.Ref{Type: "user", ID: u.id}, Actor: "admin", Payload: ev,
		}}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool { return signsIn(t, c, u.name, u.name+"'s long password") == nil })
	}
	stop()

	// The new key, the old one kept: two processes start together.
	rotating := newKeyring(t, newKEK, oldKEK)
	c1, stop1 := d.process(t, rotating)
	_, stop2 := d.process(t, rotating)
	resealed := func(userID string) bool {
		evs := passwordEvents(t, d.js, userID)
		return len(evs) > 0 && evs[len(evs)-1].GetReason() == eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RESEALED &&
			evs[len(evs)-1].GetSealedPasswordHash().GetPersonalKey() == "user."+userID
	}
	waitUntil(t, func() bool { return resealed(bobID) && resealed(carolID) })
	waitUntil(t, func() bool {
		return strings.Contains(d.logs.String(), `every personal key is sealed under the current key-encryption key" key_id=`+newKEK.ID()) &&
			strings.Contains(d.logs.String(), `every password hash is sealed under its user's personal key"`)
	})
	for id, want := range map[string]int{alice.GetId(): 0, bobID: 1, carolID: 1} {
		evs := passwordEvents(t, d.js, id)
		if len(evs) != want || want == 1 && evs[0].GetPasswordHash() != "" {
			t.Errorf("user %s: %d password events, want %d: %v", id, len(evs), want, evs)
		}
	}
	for owner, keyID := range personalKeyIDs(t, d.js) {
		if keyID != newKEK.ID() {
			t.Errorf("personal key %s is sealed under %s, not the new key", owner, keyID)
		}
	}
	for _, u := range [][2]string{{"alice", "alice's long password"}, {"bob", "bob's long password"}, {"carol", "carol's long password"}} {
		if err := signsIn(t, c1, u[0], u[1]); err != nil {
			t.Errorf("%s during the rotation: %v", u[0], err)
		}
	}
	// The read model, once it has applied the reseals, holds no hash in
	// clear, nor under a key-encryption key.
	pool, err := pg.Connect(ctx, d.dbURL, accounts.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var clear, other int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE password_hash <> ''), count(*) FILTER (WHERE NOT password_personal) FROM users`).
			Scan(&clear, &other)
		if err == nil && clear == 0 && other == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("users in clear: %d, under a key-encryption key: %d (%v)", clear, other, err)
		}
	}
	stop1()
	stop2()

	// The old key gone: everyone still signs in; a restart seals nothing again.
	c3, stop3 := d.process(t, newKeyring(t, newKEK))
	for _, u := range [][2]string{{"alice", "alice's long password"}, {"bob", "bob's long password"}, {"carol", "carol's long password"}} {
		if err := signsIn(t, c3, u[0], u[1]); err != nil {
			t.Errorf("%s after the old key was dropped: %v", u[0], err)
		}
	}
	if err := signsIn(t, c3, "alice", "not alice's password"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a wrong password: %v", err)
	}
	if _, err := c3.SetPassword(ctx, &accountsv1.SetPasswordRequest{UserId: alice.GetId(), NewPassword: "alice's new long password"}); err != nil {
		t.Fatalf("set password: %v", err)
	}
	if err := signsIn(t, c3, "alice", "alice's new long password"); err != nil {
		t.Errorf("the new password: %v", err)
	}
	stop3()
	if evs := passwordEvents(t, d.js, bobID); len(evs) != 1 {
		t.Errorf("bob has %d password events after restarts, want 1", len(evs))
	}

	// A process with the old key only cannot start: the service's own key
	// does not open, and the error names the key it needs.
	pool, err = pg.Connect(ctx, d.dbURL, accounts.Schema)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = accounts.New(ctx, accounts.Config{ServerName: "example.org", Passwords: cheap},
		accounts.Deps{Pool: pool, JetStream: d.js, Logger: slog.New(slog.DiscardHandler), Keyring: newKeyring(t, oldKEK)})
	if uk, ok := errors.AsType[*sealed.UnknownKeyError](err); !ok || uk.ID != newKEK.ID() {
		t.Fatalf("starting with only the old key: %v, want the new key %s named", err, newKEK.ID())
	}
}

// A pending registration's hash is sealed for the registration: copied into
// a user's event, it does not open.
func TestSealedHashBoundToItsPlace(t *testing.T) {
	ctx := context.Background()
	d := &deployment{js: testkit.NATS(t), dbURL: testkit.Postgres(t), logs: &lockedBuffer{}}
	ring := newKeyring(t, newKEK(t))
	c, _ := d.process(t, ring)
	alice := register(t, c, "alice", "alice's long password")
	reg, err := c.StartRegistration(ctx, &accountsv1.StartRegistrationRequest{Username: "mallory", Password: "mallory's long password", Email: "m@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{js: d.js}
	var stolen *eventsv1.SealedSecret
	for _, rec := range h.events(t, "accounts.registration."+reg.GetRegistration().GetRegistrationId()) {
		if ev, ok := rec.Event.(*eventsv1.RegistrationStarted); ok {
			stolen = ev.GetSealedPasswordHash()
		}
	}
	if stolen == nil {
		t.Fatal("no sealed hash in the registration")
	}
	// Whoever could write to the stream puts mallory's sealed hash on alice.
	log, err := eventlog.Open(ctx, d.js, eventlog.StreamConfig{Name: eventsv1.Accounts.Name, Prefix: "accounts", AllowTTL: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.Append(ctx, eventlog.Write{Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: "user", ID: alice.GetId()}, Actor: "mallory",
		Payload: &eventsv1.PasswordChanged{UserId: alice.GetId(), SealedPasswordHash: stolen,
			Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_USER},
	}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		return status.Code(signsIn(t, c, "alice", "alice's long password")) == codes.Unavailable
	})
	if err := signsIn(t, c, "alice", "mallory's long password"); err == nil {
		t.Fatal("mallory signs in as alice with a hash moved from her registration")
	}
}

// personalKeyIDs returns, for each personal key in the stream, the id of the
// key-encryption key that sealed it.
func personalKeyIDs(t *testing.T, js jetstream.JetStream) map[string]string {
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
	out := map[string]string{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		var sealedKey eventsv1.SealedSecret
		if err := proto.Unmarshal(m.Data, &sealedKey); err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(m.Subject, eventsv1.PersonalKeys.Prefix+".")] = sealedKey.GetKeyId()
	}
	return out
}

// waitUntil polls cond for up to 30 seconds.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
