package accounts_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts"
)

func startSession(t *testing.T, c accountsv1.AccountsServiceClient, userID, ip string) *accountsv1.StartBrowserSessionResponse {
	t.Helper()
	resp, err := c.StartBrowserSession(context.Background(), &accountsv1.StartBrowserSessionRequest{UserId: userID, UserAgent: "Mozilla/5.0 (Test)", IpAddress: ip, AuthProof: proofFor(t, c, userID)})
	if err != nil {
		t.Fatalf("start session for %s: %v", userID, err)
	}
	return resp
}

func authenticate(c accountsv1.AccountsServiceClient, secret, ip string) (*accountsv1.AuthenticateBrowserSessionResponse, error) {
	return c.AuthenticateBrowserSession(context.Background(), &accountsv1.AuthenticateBrowserSessionRequest{Secret: secret, IpAddress: ip})
}

func sessionIDs(t *testing.T, c accountsv1.AccountsServiceClient, userID string, includeEnded bool) []string {
	t.Helper()
	resp, err := c.ListBrowserSessions(context.Background(), &accountsv1.ListBrowserSessionsRequest{UserId: userID, IncludeEnded: includeEnded})
	if err != nil {
		t.Fatalf("list sessions of %s: %v", userID, err)
	}
	var out []string
	for _, s := range resp.GetSessions() {
		out = append(out, s.GetSessionId())
	}
	return out
}

func TestBrowserSessionLifecycle(t *testing.T) {
	h := startHarness(t, nil)
	c, ctx := h.c, context.Background()
	u := register(t, c, "alice", "alice's password")

	started := startSession(t, c, u.GetId(), "192.0.2.10")
	s := started.GetSession()
	if len(started.GetSecret()) != 43 || s.GetSessionId() == "" || s.GetUserId() != u.GetId() || s.GetUserAgent() != "Mozilla/5.0 (Test)" ||
		s.GetIpAddress() != "192.0.2.10" || s.GetCreatedAt() == nil || s.GetAuthenticatedAt() == nil || s.GetLastActiveAt() == nil || s.GetEndedAt() != nil {
		t.Fatalf("started %v", started)
	}

	auth, err := authenticate(c, started.GetSecret(), "2001:db8::1")
	if err != nil {
		t.Fatal(err)
	}
	if auth.GetUser().GetId() != u.GetId() || auth.GetSession().GetSessionId() != s.GetSessionId() || auth.GetSession().GetIpAddress() != "2001:db8::1" {
		t.Fatalf("authenticated %v", auth)
	}
	second := startSession(t, c, u.GetId(), "")
	if got := sessionIDs(t, c, u.GetId(), false); !slices.Equal(got, []string{second.GetSession().GetSessionId(), s.GetSessionId()}) {
		t.Fatalf("live sessions = %v", got)
	}

	// Another user cannot end it; its owner can, more than once.
	other := register(t, c, "mallory", "mallory's password")
	_, err = c.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: s.GetSessionId(), UserId: other.GetId()})
	wantCode(t, err, codes.NotFound)
	for range 2 {
		if _, err := c.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: s.GetSessionId(), UserId: u.GetId()}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = authenticate(c, started.GetSecret(), "")
	wantCode(t, err, codes.Unauthenticated)
	if _, err := authenticate(c, second.GetSecret(), ""); err != nil {
		t.Fatalf("the other session: %v", err)
	}
	if got := sessionIDs(t, c, u.GetId(), false); !slices.Equal(got, []string{second.GetSession().GetSessionId()}) {
		t.Fatalf("live sessions after sign-out = %v", got)
	}
	all, err := c.ListBrowserSessions(ctx, &accountsv1.ListBrowserSessionsRequest{UserId: u.GetId(), IncludeEnded: true})
	if err != nil || len(all.GetSessions()) != 2 || all.GetSessions()[1].GetEndedAt() == nil || all.GetSessions()[0].GetEndedAt() != nil {
		t.Fatalf("all sessions = %v, %v", all, err)
	}

	// Without an owner (an administrator), any session can be ended.
	if _, err := c.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: second.GetSession().GetSessionId()}); err != nil {
		t.Fatal(err)
	}
	_, err = authenticate(c, second.GetSecret(), "")
	wantCode(t, err, codes.Unauthenticated)

	// The audit log records starts and ends, never a secret or its hash.
	eventually(t, "audit of sessions", func() error {
		audit, err := c.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: u.GetId()})
		if err != nil {
			return err
		}
		var got []string
		for _, e := range audit.GetEntries() {
			if strings.Contains(e.GetSummary(), "session") {
				got = append(got, e.GetSummary())
			}
			if strings.Contains(e.GetSummary(), started.GetSecret()) || strings.Contains(e.GetSummary(), second.GetSecret()) {
				t.Fatalf("audit shows a secret: %q", e.GetSummary())
			}
		}
		slices.Reverse(got)
		want := []string{
			fmt.Sprintf("browser session %s started from 192.0.2.10 (\"Mozilla/5.0 (Test)\")", s.GetSessionId()),
			fmt.Sprintf("browser session %s started (\"Mozilla/5.0 (Test)\")", second.GetSession().GetSessionId()),
			fmt.Sprintf("browser session %s ended: logout", s.GetSessionId()),
			fmt.Sprintf("browser session %s ended: ended", second.GetSession().GetSessionId()),
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("audit = %q", got)
		}
		return nil
	})
	var hashes int
	if err := h.pool.QueryRow(ctx, `SELECT count(*) FROM audit_entries a JOIN browser_sessions s ON strpos(a.summary, s.secret_hash) > 0`).Scan(&hashes); err != nil || hashes != 0 {
		t.Fatalf("audit entries with a secret hash: %d, %v", hashes, err)
	}
}

// A locked user's sessions stop authenticating, and start again on unlock;
// no new session starts while locked.
func TestLockedUserSessions(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	u := register(t, c, "carol", "carol's password")
	s := startSession(t, c, u.GetId(), "")
	proof := proofFor(t, c, u.GetId())
	if _, err := c.LockUser(ctx, &accountsv1.LockUserRequest{UserId: u.GetId(), Reason: "abuse"}); err != nil {
		t.Fatal(err)
	}
	_, err := authenticate(c, s.GetSecret(), "")
	wantCode(t, err, codes.Unauthenticated)
	_, err = c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: u.GetId(), AuthProof: proof})
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := c.UnlockUser(ctx, &accountsv1.UnlockUserRequest{UserId: u.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(c, s.GetSecret(), ""); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

// Deactivation ends all of the user's sessions, for good, and no others.
func TestDeactivationEndsSessions(t *testing.T) {
	h := startHarness(t, nil)
	c := h.c
	ctx := context.Background() // as an administrator
	u := register(t, c, "dave", "dave's password")
	other := register(t, c, "erin", "erin's password")
	mine := []*accountsv1.StartBrowserSessionResponse{startSession(t, c, u.GetId(), ""), startSession(t, c, u.GetId(), ""), startSession(t, c, u.GetId(), "")}
	proof := proofFor(t, c, u.GetId())
	// One of them was signed out before.
	if _, err := c.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: mine[2].GetSession().GetSessionId(), UserId: u.GetId()}); err != nil {
		t.Fatal(err)
	}
	theirs := startSession(t, c, other.GetId(), "")

	if _, err := c.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: u.GetId()}); err != nil {
		t.Fatal(err)
	}
	// The sessions are ended in the read model by the time DeactivateUser answers.
	if live := sessionIDs(t, c, u.GetId(), false); len(live) != 0 {
		t.Fatalf("live sessions after deactivation: %v", live)
	}
	if _, err := c.ReactivateUser(ctx, &accountsv1.ReactivateUserRequest{UserId: u.GetId()}); err != nil {
		t.Fatal(err)
	}
	for _, s := range mine {
		_, err := authenticate(c, s.GetSecret(), "")
		wantCode(t, err, codes.Unauthenticated)
	}
	if _, err := authenticate(c, theirs.GetSecret(), ""); err != nil {
		t.Fatalf("another user's session: %v", err)
	}

	// One BrowserSessionEnded per live session, by the deactivating actor.
	var ended []string
	for _, rec := range h.events(t, "accounts.browser.*") {
		if ev, ok := rec.Event.(*eventsv1.BrowserSessionEnded); ok && ev.GetReason() == "deactivated" {
			if rec.Envelope.GetActor() != "admin:cli" || ev.GetUserId() != u.GetId() {
				t.Errorf("ended %v by %q", ev, rec.Envelope.GetActor())
			}
			ended = append(ended, ev.GetSessionId())
		}
	}
	slices.Sort(ended)
	want := []string{mine[0].GetSession().GetSessionId(), mine[1].GetSession().GetSessionId()}
	slices.Sort(want)
	if !slices.Equal(ended, want) {
		t.Fatalf("deactivation ended %v, want %v", ended, want)
	}

	// Deactivating again ends nothing more; a deactivated user cannot sign
	// in, even with a proof from before.
	if _, err := c.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: u.GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err := c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: u.GetId(), AuthProof: proof})
	wantCode(t, err, codes.FailedPrecondition)
}

// Sessions expire 7 days after their last use and 30 days after they started.
func TestBrowserSessionExpiry(t *testing.T) {
	clock := newFakeClock()
	h := startHarness(t, func(cfg *accounts.Config) {
		cfg.Clock = clock.Now
		cfg.ActivityFlushInterval = 20 * time.Millisecond
	})
	c := h.c
	u := register(t, c, "frank", "frank's password")
	busy := startSession(t, c, u.GetId(), "")
	idle := startSession(t, c, u.GetId(), "")
	day := 24 * time.Hour

	// flushed waits until the read model has the busy session's last use.
	flushed := func(at time.Time) {
		t.Helper()
		eventually(t, "activity flushed", func() error {
			var last time.Time
			if err := h.pool.QueryRow(context.Background(), `SELECT last_active_at FROM browser_sessions WHERE session_id = $1`,
				busy.GetSession().GetSessionId()).Scan(&last); err != nil {
				return err
			}
			if !last.Equal(at) {
				return fmt.Errorf("last_active_at = %v, want %v", last, at)
			}
			return nil
		})
	}
	for _, step := range []time.Duration{6 * day, 6 * day, 6 * day, 6 * day} { // days 6, 12, 18, 24
		clock.Advance(step)
		if _, err := authenticate(c, busy.GetSecret(), ""); err != nil {
			t.Fatalf("busy session at %v: %v", clock.Now(), err)
		}
		flushed(clock.Now())
	}
	_, err := authenticate(c, idle.GetSecret(), "")
	wantCode(t, err, codes.Unauthenticated)
	if live := sessionIDs(t, c, u.GetId(), false); !slices.Equal(live, []string{busy.GetSession().GetSessionId()}) {
		t.Fatalf("live sessions = %v", live)
	}
	all, err := c.ListBrowserSessions(context.Background(), &accountsv1.ListBrowserSessionsRequest{UserId: u.GetId(), IncludeEnded: true})
	if err != nil || len(all.GetSessions()) != 2 {
		t.Fatalf("all sessions: %v, %v", all, err)
	}
	// The idle session shows when it expired.
	if got, want := all.GetSessions()[0].GetEndedAt().AsTime(), idle.GetSession().GetCreatedAt().AsTime().Add(7*day); !got.Equal(want) {
		t.Fatalf("idle session ended at %v, want %v", got, want)
	}

	clock.Advance(5 * day) // day 29
	if _, err := authenticate(c, busy.GetSecret(), ""); err != nil {
		t.Fatalf("busy session on day 29: %v", err)
	}
	clock.Advance(day) // day 30: too old, however busy
	_, err = authenticate(c, busy.GetSecret(), "")
	wantCode(t, err, codes.Unauthenticated)
}

// Many uses of many sessions between two flushes are written as one event.
func TestActivityIsWrittenInOneEvent(t *testing.T) {
	h := startHarness(t, func(cfg *accounts.Config) { cfg.ActivityFlushInterval = time.Hour })
	c := h.c
	const n = 5
	secrets := map[string]string{} // session id → secret
	for i := range n {
		u := register(t, c, fmt.Sprintf("user%d", i), "a long enough password")
		s := startSession(t, c, u.GetId(), "")
		secrets[s.GetSession().GetSessionId()] = s.GetSecret()
	}
	for round := range 4 {
		for _, secret := range secrets {
			if _, err := authenticate(c, secret, fmt.Sprintf("198.51.100.%d", round)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := h.events(t, "accounts.activity.*"); len(got) != 0 {
		t.Fatalf("%d activity events before the flush", len(got))
	}

	h.stopRun() // the last flush
	events := h.events(t, "accounts.activity.*")
	if len(events) != 1 {
		t.Fatalf("%d activity events, want 1", len(events))
	}
	ev, ok := events[0].Event.(*eventsv1.BrowserSessionsActive)
	if !ok || len(ev.GetEntries()) != n {
		t.Fatalf("activity event = %v", events[0].Event)
	}
	for _, e := range ev.GetEntries() {
		// The address is sealed under the session's user's personal key.
		if _, ok := secrets[e.GetSessionId()]; !ok || e.GetIpAddress() != "" || e.GetLastActiveUnix() == 0 ||
			e.GetUserId() == "" || e.GetSealedIpAddress().GetPersonalKey() != "user."+e.GetUserId() {
			t.Errorf("entry %v", e)
		}
	}
	if err := h.personal(t).Unseal(context.Background(), ev, events[0].Subject); err != nil {
		t.Fatal(err)
	}
	for _, e := range ev.GetEntries() {
		if e.GetIpAddress() != "198.51.100.3" {
			t.Errorf("opened entry %v", e)
		}
	}
}

// A flush reaches the read model: last activity and address.
func TestActivityReachesTheReadModel(t *testing.T) {
	clock := newFakeClock()
	h := startHarness(t, func(cfg *accounts.Config) {
		cfg.Clock = clock.Now
		cfg.ActivityFlushInterval = 50 * time.Millisecond
	})
	c := h.c
	u := register(t, c, "grace", "grace's password")
	s := startSession(t, c, u.GetId(), "192.0.2.1")
	clock.Advance(time.Hour)
	if _, err := authenticate(c, s.GetSecret(), "::ffff:203.0.113.9"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "activity in the read model", func() error {
		var (
			last time.Time
			ip   string
		)
		if err := h.pool.QueryRow(context.Background(), `SELECT last_active_at, ip_address FROM browser_sessions WHERE session_id = $1`,
			s.GetSession().GetSessionId()).Scan(&last, &ip); err != nil {
			return err
		}
		if !last.Equal(clock.Now()) || ip != "203.0.113.9" {
			return fmt.Errorf("last_active_at %v, ip %q", last, ip)
		}
		return nil
	})
	// Nothing more to write: no more events.
	time.Sleep(200 * time.Millisecond)
	if got := h.events(t, "accounts.activity.*"); len(got) != 1 {
		t.Fatalf("%d activity events, want 1", len(got))
	}
	list, err := c.ListBrowserSessions(context.Background(), &accountsv1.ListBrowserSessionsRequest{UserId: u.GetId()})
	if err != nil || len(list.GetSessions()) != 1 || list.GetSessions()[0].GetIpAddress() != "203.0.113.9" || !list.GetSessions()[0].GetLastActiveAt().AsTime().Equal(clock.Now()) {
		t.Fatalf("sessions = %v, %v", list, err)
	}
}
