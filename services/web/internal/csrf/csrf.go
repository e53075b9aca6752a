// Package csrf makes and checks the CSRF tokens of the pages' forms.
//
// Every form carries a hidden token that is the HMAC-SHA256, under the CSRF
// key, of the form's name and of the browser's binding: the session cookie
// when there is one, else the pre-session cookie (set with the first form). A
// cross-site attacker can read neither the cookies nor the key, so cannot make
// a token; a token of one form does not work in another, and signing in or
// out changes the binding. net/http's CrossOriginProtection (Sec-Fetch-Site,
// Origin) runs in front of this; the token also covers browsers that send
// neither header.
//
// The key is derived from web.secret (package keys), so every replica sharing
// the secret accepts the tokens of the others, also after a restart. Without
// the secret the key is random per process: tokens then do not survive a
// restart (the page says the form expired and shows it again) and are not
// accepted by another replica.
package csrf

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"

	"gatehouse.dev/services/web/internal/cookie"
)

// Tokens makes and checks the tokens of one key.
type Tokens struct {
	key     []byte
	cookies cookie.Jar
}

// New returns the tokens of a key, bound to the cookies of jar.
func New(key []byte, jar cookie.Jar) *Tokens { return &Tokens{key: key, cookies: jar} }

// Token returns the token of a form rendered in response to r. It sets a
// pre-session cookie if the browser has neither it nor a session cookie.
func (t *Tokens) Token(w http.ResponseWriter, r *http.Request, form string) string {
	return t.Sign(form, t.binding(w, r, true))
}

// Check reports whether the posted form carries a valid token for form.
func (t *Tokens) Check(r *http.Request, form string) bool {
	return t.valid(form, t.binding(nil, r, false), r.PostFormValue("csrf"))
}

// Sign is the token of a form for a binding. The add-email cookie uses it as
// the MAC of its contents, bound to the browser session.
func (t *Tokens) Sign(form, binding string) string {
	mac := hmac.New(sha256.New, t.key)
	mac.Write([]byte("gatehouse-csrf\x00" + form + "\x00" + binding))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (t *Tokens) valid(form, binding, token string) bool {
	if binding == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(t.Sign(form, binding)), []byte(token))
}

// binding returns the value a request's tokens are bound to. When issuing
// tokens (create), it sets a pre-session cookie if the browser has neither it
// nor a session cookie.
func (t *Tokens) binding(w http.ResponseWriter, r *http.Request, create bool) string {
	if v := t.cookies.Get(r, cookie.Session); v != "" {
		return "session:" + v
	}
	if v := t.cookies.Get(r, cookie.PreSession); v != "" {
		return "pre:" + v
	}
	if !create {
		return ""
	}
	v := randomToken(32)
	t.cookies.Set(w, cookie.PreSession, v, 0)
	// Later tokens of this response must see the new cookie.
	r.AddCookie(&http.Cookie{Name: t.cookies.Name(cookie.PreSession), Value: v})
	return "pre:" + v
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
