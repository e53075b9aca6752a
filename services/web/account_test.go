package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestAccountSafeNext(t *testing.T) {
	for next, ok := range map[string]bool{
		"/account":                              true,
		"/account?action=org.matrix.profile":    true,
		"/account/sessions/end?device_id=ABC":   true,
		"":                                      false,
		"account":                               false,
		"//evil.example/":                       false,
		"/\\evil.example":                       false,
		"https://evil.example/account":          false,
		"/account\r\nLocation: x":               false,
		"/../etc":                               false,
		"/account/../../x":                      false,
		"javascript:alert(1)":                   false,
		"/%2F%2Fevil.example":                   false, // decodes to //evil.example: refused to be safe
		"/" + strings.Repeat("a", 3000):         false,
		"/account?next=https://evil.example/xx": true,
	} {
		if got := safeNext(next) != ""; got != ok {
			t.Errorf("safeNext(%q) accepted = %v, want %v", next, got, ok)
		}
	}
}

func TestAccountActions(t *testing.T) {
	for _, tt := range []struct{ action, device, page, deviceOut string }{
		{"", "", "", ""},
		{"org.matrix.profile", "", "", ""},
		{"something.else", "", "", ""},
		{"org.matrix.devices_list", "", "account/sessions", ""},
		{"org.matrix.sessions_list", "", "account/sessions", ""},
		{"org.matrix.device_view", "ABCDEF", "account/sessions/device", "ABCDEF"},
		{"org.matrix.session_view", "ABCDEF", "account/sessions/device", "ABCDEF"},
		{"org.matrix.device_view", "", "account/sessions", ""},
		{"org.matrix.device_delete", "ABCDEF", "account/sessions/end", "ABCDEF"},
		{"org.matrix.session_end", "ABCDEF", "account/sessions/end", "ABCDEF"},
		{"org.matrix.device_delete", "bad\ndevice", "account/sessions", ""},
		{"org.matrix.account_deactivate", "", "account/deactivate", ""},
		{"org.matrix.cross_signing_reset", "", "account/cross-signing-reset", ""},
	} {
		page, q := accountAction(tt.action, tt.device)
		if page != tt.page || q.Get("device_id") != tt.deviceOut {
			t.Errorf("accountAction(%q, %q) = %q %v, want %q device %q", tt.action, tt.device, page, q, tt.page, tt.deviceOut)
		}
	}
}

// Signed out, every account page sends the browser to sign in and come
// back; the sign-in page returns there afterwards, and never off the site.
func TestAccountRequiresSignIn(t *testing.T) {
	e := newTestEnv(t)
	c := e.client()
	for _, path := range []string{"/account", "/account?action=org.matrix.device_delete&device_id=DEV1", "/account/sessions", "/account/password"} {
		resp, _ := get(t, c, e.srv.URL+path)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || loc.Path != "/login" || loc.Query().Get("next") != path {
			t.Errorf("GET %s signed out: %d %s", path, resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", path, resp.Header.Get("Cache-Control"))
		}
	}
	// A form posted signed out goes to sign in too, never acts.
	resp, _ := post(t, c, e.srv.URL+"/account/profile", url.Values{"display_name": {"x"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=%2Faccount") {
		t.Errorf("POST /account/profile signed out: %d %s", resp.StatusCode, loc)
	}

	// Several sign-ins from one address: right passwords do not spend its budget.
	signIn := func(next string) string {
		c := e.client()
		_, body := get(t, c, e.srv.URL+"/login?next="+url.QueryEscape(next))
		m := csrfField.FindStringSubmatch(body)
		if m == nil {
			t.Fatal("no CSRF token")
		}
		if safeNext(next) != "" && !strings.Contains(body, "next="+url.QueryEscape(next)) {
			t.Errorf("the sign-in form does not carry next=%s", next)
		}
		resp, _ := post(t, c, e.srv.URL+"/login?next="+url.QueryEscape(next), url.Values{"csrf": {m[1]}, "username": {"alice"}, "password": {"alice's password"}})
		return resp.Header.Get("Location")
	}
	if got := signIn("/account?action=org.matrix.devices_list"); got != "/account?action=org.matrix.devices_list" {
		t.Errorf("after signing in with next: %q", got)
	}
	for _, evil := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		if got := signIn(evil); got != "/" {
			t.Errorf("after signing in with next=%s: %q, want /", evil, got)
		}
	}
}
