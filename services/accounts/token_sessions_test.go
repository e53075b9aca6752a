package accounts_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
	"gatehouse.dev/services/accounts"
)

// The users list's session filters answer from the token service's session
// events (followed on TOKEN, written here as the token service writes them),
// every way a session ends counted, and page like every list. A session the
// token service ended a moment ago is already gone from the answer.
func TestListUsersBySessions(t *testing.T) {
	h := startHarness(t, nil)
	ctx := context.Background()
	token, err := eventlog.Open(ctx, h.js, eventlog.StreamOf(eventsv1.Token, 1))
	if err != nil {
		t.Fatal(err)
	}
	alice, bob, carol, dave, erin := register(t, h.c, "alice", "alice's secret"), register(t, h.c, "bob", "bob's secret"),
		register(t, h.c, "carol", "carol's secret"), register(t, h.c, "dave", "dave's secret"), register(t, h.c, "erin", "erin's secret")
	put := func(id string, ev proto.Message) {
		t.Helper()
		if _, err := token.Append(ctx, eventlog.Write{Event: eventlog.Event{
			Aggregate: eventlog.Ref{Type: eventsv1.TokenSession.Type, ID: id}, Actor: "system:token", Payload: ev}}); err != nil {
			t.Fatal(err)
		}
	}
	start := func(kind, client string, u *accountsv1.User) string {
		id := ids.New()
		put(id, &eventsv1.SessionStarted{SessionId: id, Kind: kind, ClientId: client, UserId: u.GetId(), Username: u.GetUsername(),
			Tokens: &eventsv1.TokensIssued{SessionId: id, AccessHash: ids.New()}})
		return id
	}
	end := func(id, reason string) { put(id, &eventsv1.SessionEnded{SessionId: id, Reason: reason}) }

	// alice: a live session of "app", renamed and rotated.
	a := start("oauth", "app", alice)
	put(a, &eventsv1.TokensIssued{SessionId: a, AccessHash: ids.New(), RefreshHash: ids.New()})
	put(a, &eventsv1.SessionRenamed{SessionId: a, DeviceDisplayName: "phone"})
	// bob: his session of "app" revoked; a live compat session.
	end(start("oauth", "app", bob), "revoked")
	start("compat", "legacy", bob)
	// carol: a live session of "other", one of "app" ended by her
	// deactivation (the token service's reactor), an imported device.
	start("oauth", "other", carol)
	end(start("oauth", "app", carol), "user_deactivated")
	imported := ids.New()
	put(imported, &eventsv1.SessionImported{Source: "synapse", Session: &eventsv1.SessionStarted{
		SessionId: imported, Kind: "compat", ClientId: "legacy", UserId: carol.GetId(), Username: "carol", DeviceId: "ABC"}})
	// dave: a personal token only, which is no OAuth 2.0 session; a client
	// acting for itself has no user.
	start("personal", "", dave)
	cc := ids.New()
	put(cc, &eventsv1.SessionStarted{SessionId: cc, Kind: "client_credentials", ClientId: "app"})
	// erin: her compat session ended at logout, her session of "app" when
	// she recovered her password.
	end(start("compat", "legacy", erin), "logout")
	end(start("oauth", "app", erin), "password_recovered")

	yes, no := proto.Bool(true), proto.Bool(false)
	tests := []struct {
		name string
		req  *accountsv1.ListUsersRequest
		want []string
	}{
		{"a client", &accountsv1.ListUsersRequest{ActiveOauth2Clients: []string{"app"}}, []string{"alice"}},
		{"any of two clients", &accountsv1.ListUsersRequest{ActiveOauth2Clients: []string{"app", "other"}}, []string{"alice", "carol"}},
		{"a client without sessions", &accountsv1.ListUsersRequest{ActiveOauth2Clients: []string{"nobody's"}}, nil},
		{"with an OAuth session", &accountsv1.ListUsersRequest{HasActiveOauth2Session: yes}, []string{"alice", "carol"}},
		{"without an OAuth session", &accountsv1.ListUsersRequest{HasActiveOauth2Session: no}, []string{"bob", "dave", "erin"}},
		{"with a compat session", &accountsv1.ListUsersRequest{HasActiveCompatSession: yes}, []string{"bob", "carol"}},
		{"without a compat session", &accountsv1.ListUsersRequest{HasActiveCompatSession: no}, []string{"alice", "dave", "erin"}},
		{"both kinds", &accountsv1.ListUsersRequest{HasActiveOauth2Session: yes, HasActiveCompatSession: yes}, []string{"carol"}},
		{"neither kind", &accountsv1.ListUsersRequest{HasActiveOauth2Session: no, HasActiveCompatSession: no}, []string{"dave", "erin"}},
		{"with other filters", &accountsv1.ListUsersRequest{HasActiveOauth2Session: yes, Search: "CAR"}, []string{"carol"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Page = &pagingv1.PageRequest{First: 10, Count: pagingv1.Count_COUNT_INCLUDE}
			resp, err := h.c.ListUsers(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := usernames(resp.GetUsers()); !slices.Equal(got, tt.want) {
				t.Errorf("users %v, want %v", got, tt.want)
			}
			if resp.GetPage().GetTotal() != int64(len(tt.want)) {
				t.Errorf("total %d, want %d", resp.GetPage().GetTotal(), len(tt.want))
			}
		})
	}

	t.Run("pages", func(t *testing.T) {
		var got []string
		after := ""
		for range 5 {
			resp, err := h.c.ListUsers(ctx, &accountsv1.ListUsersRequest{HasActiveOauth2Session: no,
				Page: &pagingv1.PageRequest{First: 1, After: after, Count: pagingv1.Count_COUNT_INCLUDE}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetPage().GetTotal() != 3 {
				t.Fatalf("total %d, want 3", resp.GetPage().GetTotal())
			}
			got = append(got, usernames(resp.GetUsers())...)
			if !resp.GetPage().GetHasNextPage() {
				break
			}
			after = resp.GetUsers()[0].GetId()
		}
		if want := []string{"bob", "dave", "erin"}; !slices.Equal(got, want) {
			t.Fatalf("pages gave %v, want %v", got, want)
		}
	})

	t.Run("an end just appended is seen at once", func(t *testing.T) {
		end(a, "admin")
		resp, err := h.c.ListUsers(ctx, &accountsv1.ListUsersRequest{ActiveOauth2Clients: []string{"app"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := usernames(resp.GetUsers()); len(got) != 0 {
			t.Fatalf("users with a live session of app after its end: %v", got)
		}
		b := start("oauth", "app", bob)
		resp, err = h.c.ListUsers(ctx, &accountsv1.ListUsersRequest{ActiveOauth2Clients: []string{"app"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := usernames(resp.GetUsers()); !slices.Equal(got, []string{"bob"}) {
			t.Fatalf("users with a live session of app after bob's start (%s): %v", b, got)
		}
	})

	t.Run("too many clients", func(t *testing.T) {
		many := make([]string, 101)
		for i := range many {
			many[i] = fmt.Sprintf("client-%d", i)
		}
		_, err := h.c.ListUsers(ctx, &accountsv1.ListUsersRequest{ActiveOauth2Clients: many})
		wantCode(t, err, codes.InvalidArgument)
	})

	// A compacted TOKEN stream (oauth.compact_sessions) keeps only each
	// session's last event, whose state says how it started.
	t.Run("sessions known by their last event only", func(t *testing.T) {
		state := func(kind, client string, u *accountsv1.User, ended bool) *eventsv1.SessionSnapshot {
			return &eventsv1.SessionSnapshot{Ended: ended, Session: &eventsv1.SessionStarted{Kind: kind, ClientId: client, UserId: u.GetId()}}
		}
		of := func(client string) []string {
			t.Helper()
			resp, err := h.c.ListUsers(ctx, &accountsv1.ListUsersRequest{ActiveOauth2Clients: []string{client}})
			if err != nil {
				t.Fatal(err)
			}
			return usernames(resp.GetUsers())
		}
		rotated, snapshotted, ended := ids.New(), ids.New(), ids.New()
		put(rotated, &eventsv1.TokensIssued{SessionId: rotated, AccessHash: ids.New(), State: state("oauth", "compacted", dave, false)})
		put(snapshotted, &eventsv1.SessionSnapshotted{SessionId: snapshotted, State: state("oauth", "compacted", erin, false)})
		put(ended, &eventsv1.SessionSnapshotted{SessionId: ended, State: state("oauth", "compacted-ended", bob, true)})
		if got := of("compacted"); !slices.Equal(got, []string{"dave", "erin"}) {
			t.Errorf("users with a live session known by its last event: %v, want [dave erin]", got)
		}
		if got := of("compacted-ended"); len(got) != 0 {
			t.Errorf("a session whose last event says it ended is live: %v", got)
		}
	})
}

// The rows of ended sessions go once TOKEN no longer keeps them (the
// retention after their end, with compact_sessions); the live ones stay.
func TestEndedTokenSessionsLeave(t *testing.T) {
	const retention = 48 * time.Hour
	h := startHarness(t, func(c *accounts.Config) { c.EndedTokenSessionRetention = retention })
	ctx := context.Background()
	token, err := eventlog.Open(ctx, h.js, eventlog.StreamOf(eventsv1.Token, 1))
	if err != nil {
		t.Fatal(err)
	}
	alice := register(t, h.c, "alice", "alice's secret")
	var last uint64
	put := func(id string, ev proto.Message) {
		t.Helper()
		a, err := token.Append(ctx, eventlog.Write{Event: eventlog.Event{
			Aggregate: eventlog.Ref{Type: eventsv1.TokenSession.Type, ID: id}, Actor: "system:token", Payload: ev}})
		if err != nil {
			t.Fatal(err)
		}
		last = a.Last()
	}
	live, ended := ids.New(), ids.New()
	for _, id := range []string{live, ended} {
		put(id, &eventsv1.SessionStarted{SessionId: id, Kind: "oauth", ClientId: "app", UserId: alice.GetId(),
			Tokens: &eventsv1.TokensIssued{SessionId: id, AccessHash: ids.New(), RefreshHash: ids.New()}})
	}
	put(ended, &eventsv1.SessionEnded{SessionId: ended, Reason: "revoked"})
	if err := h.svc.Projections().WaitFor(ctx, "user_token_sessions", last); err != nil {
		t.Fatal(err)
	}
	for _, sweep := range []struct {
		at      time.Time
		dropped int64
	}{{time.Now(), 0}, {time.Now().Add(retention - time.Hour), 0}, {time.Now().Add(retention + time.Hour), 1}} {
		if n, err := h.svc.DropEndedTokenSessions(ctx, sweep.at); err != nil || n != sweep.dropped {
			t.Fatalf("sweep at %s: %d dropped, %v; want %d", sweep.at, n, err, sweep.dropped)
		}
	}
	var left []string
	rows, err := h.pool.Query(ctx, `SELECT session_id FROM user_token_sessions ORDER BY session_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	if rows.Err() != nil || !slices.Equal(left, []string{live}) {
		t.Fatalf("rows left: %v (%v), want only the live session's", left, rows.Err())
	}
}

func usernames(users []*accountsv1.User) []string {
	var out []string
	for _, u := range users {
		out = append(out, u.GetUsername())
	}
	return out
}
