package notify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/notify/internal/smtptest"
)

// A change of someone's sign-in methods, recorded by the accounts service
// with the address sealed under the person's key, is emailed to them in
// their language; uses and stale changes (a replay) send nothing.
func TestSecurityNotices(t *testing.T) {
	e := newEnv(t, smtptest.Options{})
	e.start(t)
	ctx := context.Background()
	keys, err := personal.Open(ctx, e.js, e.keyring, personal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	alice := ids.New()
	if _, err := keys.Create(ctx, personal.User(alice)); err != nil {
		t.Fatal(err)
	}
	accounts, err := eventlog.Open(ctx, e.js, eventlog.StreamOf(eventsv1.Accounts, 1))
	if err != nil {
		t.Fatal(err)
	}
	// A log whose events happened two hours ago: too old to be told.
	stale, err := eventlog.Open(ctx, e.js, eventlog.StreamOf(eventsv1.Accounts, 1), eventlog.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	appendAs := func(log *eventlog.Log, user string, ev proto.Message) {
		t.Helper()
		ref := eventlog.Ref{Type: eventsv1.AccountsFactors.Type, ID: user}
		sealed, err := keys.Seal(ctx, ev, eventsv1.Accounts.Prefix+"."+ref.Type+"."+ref.ID, personal.NoOwner)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectAny(), Event: eventlog.Event{Aggregate: ref, Actor: "user:" + user, Payload: sealed}}); err != nil {
			t.Fatal(err)
		}
	}

	appendAs(stale, alice, &eventsv1.TOTPDisabled{UserId: alice, NoticeEmail: "alice@example.org"})
	appendAs(accounts, alice, &eventsv1.TOTPEnabled{UserId: alice, Secret: "JBSWY3DPEHPK3PXP", Step: 1, NoticeEmail: "alice@example.org", NoticeLocale: "fr"})
	appendAs(accounts, alice, &eventsv1.TOTPUsed{UserId: alice, Step: 2})
	appendAs(accounts, alice, &eventsv1.PasskeyRemoved{UserId: alice, PasskeyId: ids.New(), NoticeEmail: "alice@example.org"})
	appendAs(accounts, alice, &eventsv1.RecoveryCodeUsed{UserId: alice, Index: 2, NoticeEmail: "alice@example.org", NoticeLocale: "en"})

	mails := e.mails(t, 3)
	e.settle(t, 3)
	want := []struct{ subject, says string }{
		{"Un moyen de connexion de votre compte Example Auth a changé", "Une application d’authentification a été configurée"},
		{"A sign-in method of your Example Auth account changed", "A passkey was removed"},
		{"A sign-in method of your Example Auth account changed", "One of your recovery codes was used"},
	}
	for i, m := range mails {
		if m.subject != want[i].subject || !strings.Contains(m.text, want[i].says) || !strings.Contains(m.html, want[i].says) {
			t.Errorf("notice %d: %q\n%s", i, m.subject, m.text)
		}
		if len(m.raw.To) != 1 || m.raw.To[0] != "alice@example.org" {
			t.Errorf("notice %d went to %v", i, m.raw.To)
		}
		if strings.Contains(string(m.raw.Data), "JBSWY3DPEHPK3PXP") {
			t.Error("a notice holds the TOTP secret")
		}
	}
}
