package authorize

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
)

// The clients list's filter on live sessions answers from the token
// service's session events (followed on TOKEN, written here as the token
// service writes them), every way a session ends counted, and pages like
// every list. A session the token service ended a moment ago is already
// gone from the answer.
func TestListClientsBySessions(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool, err := pg.Connect(ctx, testkit.Postgres(t), Schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	js := testkit.NATS(t)
	static := func(id string, grants ...string) StaticClient {
		return StaticClient{ID: id, Secret: "secret", AuthMethod: "client_secret_basic", Name: id,
			RedirectURIs: []string{"https://" + id + ".example.org/cb"}, GrantTypes: grants}
	}
	const retention, clientRetention = 48 * time.Hour, 25 * time.Hour
	svc, err := New(ctx, Config{Issuer: "https://auth.example.org/", EndedSessionRetention: retention, EndedClientSessionRetention: clientRetention, StaticClients: []StaticClient{
		static("app", "authorization_code", "refresh_token"), static("bot", "client_credentials"),
		static("idle", "authorization_code"), static("web", "authorization_code"),
	}}, Deps{Pool: pool, JetStream: js, Logger: slog.New(slog.DiscardHandler), Keyring: sealed.NewRandomKeyring()})
	if err != nil {
		t.Fatal(err)
	}
	go svc.Run(ctx)
	g := &grpcServer{svc: svc}
	list := func(t *testing.T, has *bool, page *pagingv1.PageRequest) *authorizev1.ListClientsResponse {
		t.Helper()
		resp, err := g.ListClients(ctx, &authorizev1.ListClientsRequest{HasActiveSessions: has, Page: page})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for deadline := time.Now().Add(30 * time.Second); len(list(t, nil, nil).GetClients()) < 4; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the static clients were not listed in time")
		}
	}

	token, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Token, 1))
	if err != nil {
		t.Fatal(err)
	}
	put := func(id string, ev proto.Message) {
		t.Helper()
		if _, err := token.Append(ctx, eventlog.Write{Event: eventlog.Event{
			Aggregate: eventlog.Ref{Type: eventsv1.TokenSession.Type, ID: id}, Actor: "system:token", Payload: ev}}); err != nil {
			t.Fatal(err)
		}
	}
	start := func(kind, client, user string) string {
		id := ids.New()
		put(id, &eventsv1.SessionStarted{SessionId: id, Kind: kind, ClientId: client, UserId: user,
			Tokens: &eventsv1.TokensIssued{SessionId: id, AccessHash: ids.New()}})
		return id
	}
	end := func(id, reason string) { put(id, &eventsv1.SessionEnded{SessionId: id, Reason: reason}) }
	alice := ids.New()
	// app: a person's live session (rotated, renamed), another ended.
	a := start("oauth", "app", alice)
	put(a, &eventsv1.TokensIssued{SessionId: a, AccessHash: ids.New(), RefreshHash: ids.New()})
	put(a, &eventsv1.SessionRenamed{SessionId: a, DeviceDisplayName: "phone"})
	end(start("oauth", "app", alice), "user_deactivated")
	// bot: its own session.
	b := start("client_credentials", "bot", "")
	// idle: its only session revoked; a personal token it made is no
	// OAuth 2.0 session.
	end(start("oauth", "idle", alice), "revoked")
	start("personal", "idle", alice)
	// web: nothing.

	yes, no := proto.Bool(true), proto.Bool(false)
	clientIDs := func(r *authorizev1.ListClientsResponse) []string {
		var out []string
		for _, c := range r.GetClients() {
			out = append(out, c.GetClientId())
		}
		return out
	}
	count := &pagingv1.PageRequest{First: 10, Count: pagingv1.Count_COUNT_INCLUDE}
	for _, tt := range []struct {
		has  *bool
		want []string
	}{{yes, []string{"app", "bot"}}, {no, []string{"idle", "web"}}, {nil, []string{"app", "bot", "idle", "web"}}} {
		r := list(t, tt.has, count)
		if got := clientIDs(r); !slices.Equal(got, tt.want) || r.GetPage().GetTotal() != int64(len(tt.want)) {
			t.Errorf("has_active_sessions %v: %v (total %d), want %v", tt.has, got, r.GetPage().GetTotal(), tt.want)
		}
	}

	// Pages of one.
	first := list(t, yes, &pagingv1.PageRequest{First: 1})
	second := list(t, yes, &pagingv1.PageRequest{First: 1, After: "app"})
	if got := append(clientIDs(first), clientIDs(second)...); !slices.Equal(got, []string{"app", "bot"}) || !first.GetPage().GetHasNextPage() || second.GetPage().GetHasNextPage() {
		t.Errorf("pages of one: %v (next %v, %v)", got, first.GetPage().GetHasNextPage(), second.GetPage().GetHasNextPage())
	}

	// An end just appended is seen at once.
	end(b, "admin")
	if got := clientIDs(list(t, yes, nil)); !slices.Equal(got, []string{"app"}) {
		t.Errorf("after bot's session ended: %v, want [app]", got)
	}

	// The ended sessions' rows go once TOKEN no longer keeps them (the
	// retention after their end; a client's own, bot's, sooner); the live
	// ones stay.
	for _, sweep := range []struct {
		at      time.Time
		dropped int64
	}{
		{time.Now(), 0}, {time.Now().Add(clientRetention - time.Hour), 0}, {time.Now().Add(clientRetention + time.Hour), 1},
		{time.Now().Add(retention - time.Hour), 0}, {time.Now().Add(retention + time.Hour), 2},
	} {
		if n, err := svc.dropEndedTokenSessions(ctx, sweep.at); err != nil || n != sweep.dropped {
			t.Fatalf("sweep at %s: %d dropped, %v; want %d", sweep.at, n, err, sweep.dropped)
		}
	}
	if got := clientIDs(list(t, nil, count)); !slices.Equal(got, []string{"app", "bot", "idle", "web"}) {
		t.Errorf("clients after the sweep: %v", got)
	}
	if got := clientIDs(list(t, yes, nil)); !slices.Equal(got, []string{"app"}) {
		t.Errorf("clients with live sessions after the sweep: %v, want [app]", got)
	}
}
