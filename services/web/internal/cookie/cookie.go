// Package cookie sets and reads the web service's cookies. All are HttpOnly,
// SameSite=Lax and on Path=/. Over https they carry the __Host- prefix
// (Secure, no Domain: only this host can set or read them); over plain http
// (local development) they cannot, and go without it.
package cookie

import "net/http"

// The cookies the pages set, by their names without the prefix.
const (
	// Session holds the browser session's secret from
	// accounts.StartBrowserSession. It lasts until the browser ends its
	// session; accounts decides how long the session itself is valid.
	Session = "gatehouse-session"
	// PreSession is a random value that binds the CSRF tokens of forms shown
	// before sign-in (see package csrf).
	PreSession = "gatehouse-csrf"
	// Registration names a pending registration (kept by the accounts
	// service) and its email verification: "<registration id>.<verification id>".
	Registration = "gatehouse-registration"
	// AddEmail remembers the address being added on the account page and its
	// verification between the form and the code: "<verification id>.<address,
	// base64url>.<MAC>", the MAC (under the CSRF key) binding both to the
	// browser session. It only says what to show and which verification to
	// check: the address added is the one notify's CheckCode confirms for this
	// very user.
	AddEmail = "gatehouse-add-email"
	// Upstream is a sign-in with an upstream identity provider under way:
	// the provider, the state, nonce and PKCE verifier bound to this browser,
	// and where the sign-in was going, sealed under a key derived from
	// web.secret (package upstreamstate). It lives 15 minutes.
	Upstream = "gatehouse-upstream"
	// UpstreamTicket is the accounts service's ticket of a first sign-in with
	// an upstream identity (sealed by accounts; opaque here), kept until the
	// person creates an account or links an existing one (30 minutes).
	UpstreamTicket = "gatehouse-upstream-ticket"
	// SecondFactor is a sign-in waiting for its second factor: the accounts
	// service's proof of the first (opaque here; it starts no session by
	// itself). It lives 10 minutes, as the proof does.
	SecondFactor = "gatehouse-second-factor"
	// Passkey is a WebAuthn ceremony under way (sealed by accounts; opaque
	// here), bound to this browser: its answer is accepted only with it.
	Passkey = "gatehouse-passkey"
)

// maxValue is the longest cookie value read; a longer one counts as absent.
// An upstream ticket may be longer (maxTicket): it carries what the provider
// said about the person.
const (
	maxValue  = 512
	maxTicket = 3600
)

// Jar sets and reads cookies as this deployment names them.
type Jar struct {
	// Secure is set when the public URL is https: cookies are then Secure and
	// __Host- prefixed.
	Secure bool
}

// Name is the name of a cookie as this deployment sets it.
func (j Jar) Name(name string) string {
	if j.Secure {
		return "__Host-" + name
	}
	return name
}

// Set sets a cookie; maxAge 0 makes it last until the browser ends the
// session, a negative one deletes it.
func (j Jar) Set(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: j.Name(name), Value: value, Path: "/", MaxAge: maxAge,
		Secure: j.Secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// Clear deletes a cookie from the browser.
func (j Jar) Clear(w http.ResponseWriter, name string) { j.Set(w, name, "", -1) }

// Get returns a cookie's value, or "".
func (j Jar) Get(r *http.Request, name string) string {
	c, err := r.Cookie(j.Name(name))
	limit := maxValue
	if name == UpstreamTicket || name == Passkey {
		limit = maxTicket
	}
	if err != nil || len(c.Value) > limit {
		return ""
	}
	return c.Value
}

// Drop removes a cookie from the request, so that the rest of its handling
// sees what the browser will send next time.
func (j Jar) Drop(r *http.Request, name string) {
	name = j.Name(name)
	all := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range all {
		if c.Name != name {
			r.AddCookie(c)
		}
	}
}
