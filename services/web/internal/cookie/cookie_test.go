package cookie

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestJar(t *testing.T) {
	for _, tt := range []struct {
		secure bool
		name   string
	}{{true, "__Host-gatehouse-session"}, {false, "gatehouse-session"}} {
		j := Jar{Secure: tt.secure}
		rec := httptest.NewRecorder()
		j.Set(rec, Session, "v", 0)
		c := rec.Result().Cookies()[0]
		if c.Name != tt.name || c.Secure != tt.secure || !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteLaxMode || c.Domain != "" || c.MaxAge != 0 {
			t.Errorf("secure=%v: %+v", tt.secure, c)
		}
		rec = httptest.NewRecorder()
		j.Clear(rec, Session)
		if c := rec.Result().Cookies()[0]; c.Name != tt.name || c.MaxAge >= 0 {
			t.Errorf("secure=%v: cleared %+v", tt.secure, c)
		}

		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: tt.name, Value: "secret"})
		r.AddCookie(&http.Cookie{Name: j.Name(PreSession), Value: strings.Repeat("x", maxValue+1)})
		r.AddCookie(&http.Cookie{Name: "other", Value: "kept"})
		if j.Get(r, Session) != "secret" || j.Get(r, PreSession) != "" || j.Get(r, Registration) != "" {
			t.Errorf("secure=%v: Get %q %q", tt.secure, j.Get(r, Session), j.Get(r, PreSession))
		}
		j.Drop(r, Session)
		if j.Get(r, Session) != "" {
			t.Errorf("secure=%v: a dropped cookie is still read", tt.secure)
		}
		if c, err := r.Cookie("other"); err != nil || c.Value != "kept" {
			t.Errorf("secure=%v: Drop took another cookie", tt.secure)
		}
	}
	// Over https, a cookie without the prefix is not ours.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: Session, Value: "planted"})
	if got := (Jar{Secure: true}).Get(r, Session); got != "" {
		t.Errorf("an unprefixed cookie was read over https: %q", got)
	}
}
