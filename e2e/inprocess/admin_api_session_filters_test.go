package inprocess

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The filters that join users and clients with the token service's
// sessions (MAS's filter[active-oauth2-client], filter[has-active-oauth2-
// session] and filter[has-active-compat-session] of users,
// filter[has-active-sessions] of clients): answered from read models that
// follow the token service's events, every way a session ends counted (an
// administrator finishing it, the user's erasure), pageable, every answer
// valid against the served document.
func TestAdminAPISessionFilters(t *testing.T) {
	e := newAdminEnv(t)
	st, tok := e.st, e.token
	alice, bob, carol, dave := st.user(t, "alice"), st.user(t, "bob"), st.user(t, "carol"), st.user(t, "dave")
	app, other, idle := st.publicClient(t), st.publicClient(t), st.publicClient(t)
	st.session(t, app, alice)
	st.session(t, other, bob)
	st.compatLogin(t, bob, false)
	st.session(t, app, carol)
	st.session(t, idle, dave)
	st.compatLogin(t, dave, false)

	users := func(t *testing.T, query string) []string {
		t.Helper()
		r := e.call(t, "GET", "/users?page[first]=100&"+query, tok, nil).want(t, query, http.StatusOK)
		var names []string
		for _, u := range r.list() {
			names = append(names, u["attributes"].(map[string]any)["username"].(string))
		}
		slices.Sort(names)
		return names
	}
	clients := func(t *testing.T, query string) []string {
		t.Helper()
		return e.call(t, "GET", "/oauth2-clients?page[first]=100&"+query, tok, nil).want(t, query, http.StatusOK).ids()
	}
	check := func(t *testing.T, what string, got, want []string) {
		t.Helper()
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	// dave's sessions end: his OAuth one finished by an administrator, his
	// compat one too.
	for _, kind := range []string{"oauth2-sessions", "compat-sessions"} {
		id := e.call(t, "GET", "/"+kind+"?filter[user]="+dave.GetId(), tok, nil).want(t, kind, http.StatusOK).ids()[0]
		e.call(t, "POST", "/"+kind+"/"+id+"/finish", tok, nil).want(t, "finish", http.StatusOK)
	}

	check(t, "a client's users", users(t, "filter[active-oauth2-client]="+app.id), []string{"alice", "carol"})
	check(t, "two clients' users", users(t, "filter[active-oauth2-client]="+app.id+"&filter[active-oauth2-client]="+other.id), []string{"alice", "bob", "carol"})
	check(t, "an idle client's users", users(t, "filter[active-oauth2-client]="+idle.id), nil)
	check(t, "with an OAuth session", users(t, "filter[has-active-oauth2-session]=true"), []string{"alice", "bob", "carol"})
	check(t, "without an OAuth session", users(t, "filter[has-active-oauth2-session]=false"), []string{"dave"})
	check(t, "with a compat session", users(t, "filter[has-active-compat-session]=true"), []string{"bob"})
	check(t, "with both", users(t, "filter[has-active-oauth2-session]=true&filter[has-active-compat-session]=false&filter[search]=a"), []string{"alice", "carol"})
	check(t, "clients with sessions", clients(t, "filter[has-active-sessions]=true"), sorted(adminClientID, app.id, other.id))
	check(t, "clients without", clients(t, "filter[has-active-sessions]=false"), []string{idle.id})

	// Pages of one, by the links.
	var paged []string
	for path := "/users?filter[has-active-oauth2-session]=true&page[first]=1"; path != ""; {
		r := e.call(t, "GET", path, tok, nil).want(t, "a page", http.StatusOK)
		if r.body["meta"].(map[string]any)["count"] != 3.0 {
			t.Fatalf("count: %s", r.raw)
		}
		for _, u := range r.list() {
			paged = append(paged, u["attributes"].(map[string]any)["username"].(string))
		}
		next, _ := r.body["links"].(map[string]any)["next"].(string)
		path = strings.TrimPrefix(next, "/api/admin/v1")
		if len(paged) > 3 {
			t.Fatalf("more than three pages: %v", paged)
		}
	}
	check(t, "paged", sorted(paged...), []string{"alice", "bob", "carol"})

	// Erasing carol ends her sessions (the token service's reactor): she
	// leaves the client's users.
	e.call(t, "POST", "/users/"+carol.GetId()+"/deactivate", tok, map[string]any{}).want(t, "erase", http.StatusOK)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := users(t, "filter[active-oauth2-client]="+app.id)
		if slices.Equal(got, []string{"alice"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after carol's erasure, the client's users: %v", got)
		}
	}

	// Refusals: an unknown client (MAS: 404), an empty one, too many.
	e.call(t, "GET", "/users?filter[active-oauth2-client]=nobody", tok, nil).want(t, "an unknown client", http.StatusNotFound)
	e.call(t, "GET", "/users?filter[active-oauth2-client]=", tok, nil).want(t, "an empty client", http.StatusBadRequest)
	many := url.Values{}
	for range 101 {
		many.Add("filter[active-oauth2-client]", app.id)
	}
	e.call(t, "GET", "/users?"+many.Encode(), tok, nil).want(t, "too many clients", http.StatusBadRequest)
	for _, bad := range []string{"/users?filter[has-active-oauth2-session]=yes", "/users?filter[has-active-compat-session]=1",
		"/oauth2-clients?filter[has-active-sessions]=maybe", "/users?filter[has-active-oauth2-session]=true&filter[has-active-oauth2-session]=false"} {
		e.call(t, "GET", bad, tok, nil).want(t, bad, http.StatusBadRequest)
	}
}

func sorted(s ...string) []string { s = slices.Clone(s); slices.Sort(s); return s }
