package csrf

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"gatehouse.dev/services/web/internal/cookie"
)

// posted is a form posted with the cookies of a browser.
func posted(cookies []*http.Cookie, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return r
}

func TestTokens(t *testing.T) {
	jar := cookie.Jar{Secure: true}
	tokens := New([]byte("a key of 32 bytes for the tests!"), jar)

	// Before sign-in: the first token sets the pre-session cookie, and
	// later tokens of the same response are bound to it too.
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	login := tokens.Token(rec, r, "login")
	if tokens.Token(rec, r, "login") != login || len(rec.Result().Cookies()) != 1 {
		t.Fatalf("two tokens of one response differ, or set %d cookies", len(rec.Result().Cookies()))
	}
	browser := rec.Result().Cookies()
	if browser[0].Name != "__Host-"+cookie.PreSession {
		t.Fatalf("pre-session cookie %q", browser[0].Name)
	}
	if !tokens.Check(posted(browser, url.Values{"csrf": {login}}), "login") {
		t.Error("the form's own token was refused")
	}
	for name, r := range map[string]*http.Request{
		"another form's token": posted(browser, url.Values{"csrf": {tokens.Token(httptest.NewRecorder(), posted(browser, nil), "consent")}}),
		"no token":             posted(browser, nil),
		"no cookie":            posted(nil, url.Values{"csrf": {login}}),
		"another browser":      posted([]*http.Cookie{{Name: browser[0].Name, Value: "other"}}, url.Values{"csrf": {login}}),
		"another key":          posted(browser, url.Values{"csrf": {New([]byte("another key of 32 bytes, tests!!"), jar).Sign("login", "pre:"+browser[0].Value)}}),
	} {
		if tokens.Check(r, "login") {
			t.Errorf("%s: accepted", name)
		}
	}

	// Signed in, tokens are bound to the session: the pre-session token no
	// longer works, and no pre-session cookie is set.
	session := append(browser, &http.Cookie{Name: "__Host-" + cookie.Session, Value: "session secret"})
	if tokens.Check(posted(session, url.Values{"csrf": {login}}), "login") {
		t.Error("a pre-session token was accepted once signed in")
	}
	rec = httptest.NewRecorder()
	consent := tokens.Token(rec, posted(session, nil), "consent")
	if len(rec.Result().Cookies()) != 0 || !tokens.Check(posted(session, url.Values{"csrf": {consent}}), "consent") {
		t.Error("a signed-in token did not work, or set a cookie")
	}
	if consent != tokens.Sign("consent", "session:session secret") {
		t.Error("the token is not the form's MAC under the session binding")
	}
}
