package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The route table is well formed, and every account page is for the
// signed-in user: a page added under /account without it fails here.
func TestRouteTable(t *testing.T) {
	e := newTestEnv(t)
	seen := map[string]bool{}
	userPages := map[string]bool{}
	for _, rt := range e.svc.routes() {
		if _, err := e.svc.handler(rt); err != nil {
			t.Errorf("%s %s: %v", rt.method, rt.path, err)
		}
		if key := rt.method + " " + rt.path; seen[key] {
			t.Errorf("%s is listed twice", key)
		} else {
			seen[key] = true
		}
		if rt.user != nil && rt.method == http.MethodGet {
			userPages["account"+strings.TrimPrefix(rt.path, "/account")] = true
		}
		if (rt.path == "/account" || strings.HasPrefix(rt.path, "/account/")) && rt.path != "/account/{$}" && rt.user == nil {
			t.Errorf("%s %s is an account page for anyone", rt.method, rt.path)
		}
	}
	// A form returns, after signing in, to a signed-in page that exists.
	for _, rt := range e.svc.routes() {
		if rt.back != "" && !userPages[rt.back] {
			t.Errorf("%s %s returns to %q, which is no signed-in page", rt.method, rt.path, rt.back)
		}
	}
}

// Malformed rows are refused when the table is registered.
func TestRouteTableRefusesMalformedRows(t *testing.T) {
	e := newTestEnv(t)
	page := func(http.ResponseWriter, *http.Request) {}
	userPage := func(http.ResponseWriter, *http.Request, *signedIn) {}
	for name, rt := range map[string]route{
		"no handler":                  {method: http.MethodGet, path: "/x"},
		"two handlers":                {method: http.MethodGet, path: "/x", anyone: page, user: userPage},
		"other method":                {method: http.MethodDelete, path: "/x", anyone: page},
		"signed-in form, no way back": {method: http.MethodPost, path: "/x", user: userPage},
		"signed-in page with back":    {method: http.MethodGet, path: "/x", user: userPage, back: "account"},
		"back on a page for anyone":   {method: http.MethodPost, path: "/x", anyone: page, back: "account"},
	} {
		if _, err := e.svc.handler(rt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Signed out, every page of the table for the signed-in user sends the
// browser to sign in and come back — a GET to itself, a form to the page it
// is on — and never runs its handler.
func TestSignedInPagesRequireSignIn(t *testing.T) {
	e := newTestEnv(t)
	c := e.client()
	_, body := get(t, c, e.srv.URL+"/login")
	token := csrfField.FindStringSubmatch(body)[1] // a valid pre-session token of another form
	n := 0
	for _, rt := range e.svc.routes() {
		if rt.user == nil {
			continue
		}
		n++
		var resp *http.Response
		want := rt.path
		if rt.method == http.MethodPost {
			resp, _ = post(t, c, e.srv.URL+rt.path, url.Values{"csrf": {token}})
			want = "/" + rt.back
		} else {
			resp, _ = get(t, c, e.srv.URL+rt.path)
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || loc.Path != "/login" || loc.Query().Get("next") != want {
			t.Errorf("%s %s signed out: %d %s, want /login?next=%s", rt.method, rt.path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	if n < 10 {
		t.Fatalf("only %d signed-in routes", n)
	}
	if e.accounts.verified != 0 {
		t.Error("a signed-in page checked a password signed out")
	}
}
