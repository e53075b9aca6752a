package web

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"

	"gatehouse.dev/platform/grpcx"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// Cookies. Over https they carry the __Host- prefix (Secure, Path=/, no
// Domain: only this host can set or read them); over plain http (local
// development) they cannot, and go without it. All are HttpOnly and
// SameSite=Lax.
const (
	// sessionCookie holds the browser session's secret from
	// accounts.StartBrowserSession. It lasts until the browser ends its
	// session; accounts decides how long the session itself is valid.
	sessionCookie = "gatehouse-session"
	// csrfCookie is a random value that binds the CSRF tokens of forms shown
	// before sign-in (the "pre-session").
	csrfCookie = "gatehouse-csrf"
	// registrationCookie names a pending registration (kept by the accounts
	// service) and its email verification: "<registration id>.<verification id>".
	registrationCookie = "gatehouse-registration"
)

// cookieName is the name of a cookie as this deployment sets it.
func (s *Service) cookieName(name string) string {
	if s.secure {
		return "__Host-" + name
	}
	return name
}

// setCookie sets a cookie on Path=/; maxAge 0 makes it last until the
// browser ends the session, a negative one deletes it.
func (s *Service) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func (s *Service) clearCookie(w http.ResponseWriter, name string) { s.setCookie(w, name, "", -1) }

// cookie returns a cookie's value, or "".
func (s *Service) cookie(r *http.Request, name string) string {
	c, err := r.Cookie(s.cookieName(name))
	if err != nil || len(c.Value) > 512 {
		return ""
	}
	return c.Value
}

// dropCookie removes a cookie from the request, so that the rest of its
// handling sees what the browser will send next time.
func dropCookie(r *http.Request, name string) {
	all := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range all {
		if c.Name != name {
			r.AddCookie(c)
		}
	}
}

// signedIn is the browser session of a request and its user.
type signedIn struct {
	session *accountsv1.BrowserSession
	user    *accountsv1.User
	secret  string // the cookie's value: the session's credential, sent along when acting for the user
}

// currentUser resolves the session cookie. It returns nil without error when
// nobody is signed in (no cookie, or a session that ended, expired or whose
// user may no longer sign in); a stale cookie is then cleared.
func (s *Service) currentUser(w http.ResponseWriter, r *http.Request) (*signedIn, error) {
	secret := s.cookie(r, sessionCookie)
	if secret == "" {
		return nil, nil
	}
	resp, err := s.accounts.AuthenticateBrowserSession(r.Context(), &accountsv1.AuthenticateBrowserSessionRequest{
		Secret: secret, IpAddress: clientIP(r),
	})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindUnauthenticated, errs.KindNotFound, errs.KindInvalid, errs.KindFailedPrecondition, errs.KindPermissionDenied:
			s.clearCookie(w, sessionCookie)
			dropCookie(r, s.cookieName(sessionCookie))
			return nil, nil
		}
		return nil, err
	}
	return &signedIn{session: resp.GetSession(), user: resp.GetUser(), secret: secret}, nil
}

// startSession signs the user in on this browser, with the proof accounts
// gave when the person proved who they are (a password, a completed
// registration).
func (s *Service) startSession(w http.ResponseWriter, r *http.Request, user *accountsv1.User, proof string) error {
	resp, err := s.accounts.StartBrowserSession(r.Context(), &accountsv1.StartBrowserSessionRequest{
		UserId: user.GetId(), UserAgent: truncate(r.UserAgent(), 512), IpAddress: clientIP(r), AuthProof: proof,
	})
	if err != nil {
		return err
	}
	s.setCookie(w, sessionCookie, resp.GetSecret(), 0)
	return nil
}

// asUser returns ctx whose calls act for the signed-in person: they carry
// the browser session, which the called service verifies, so a call can only
// ever concern the person whose browser made the request.
func (s *Service) asUser(ctx context.Context, who *signedIn) context.Context {
	return grpcx.WithBrowserSession(ctx, who.secret)
}

// CSRF tokens. Every form carries a hidden token that is the HMAC-SHA256,
// under the CSRF key, of the form's name and of the browser's binding: the
// session cookie when there is one, else the pre-session cookie (set with the
// first form). A cross-site attacker can read neither the cookies nor the key,
// so cannot make a token; a token of one form does not work in another, and
// signing in or out changes the binding. net/http's CrossOriginProtection
// (Sec-Fetch-Site, Origin) runs in front of this; the token also covers
// browsers that send neither header.
//
// The key is derived from web.secret (see deriveKey), so every replica
// sharing the secret accepts the tokens of the others, also after a restart.
// Without the secret the key is random per process: tokens then do not survive
// a restart (the page says the form expired and shows it again) and are not
// accepted by another replica.
type csrfKey struct{ key []byte }

// Labels of the keys derived from the service's secret, one per use.
const (
	csrfKeyLabel = "gatehouse web csrf"
	ssoKeyLabel  = "gatehouse web compat-sso"
)

// minSecretLen is the shortest secret New accepts (web.secret's minimum).
const minSecretLen = 32

// deriveKey derives the 32-byte key of one use (label) from the service's
// secret with HKDF-SHA256: keys of different labels are independent, and
// none reveals the secret or another key.
func deriveKey(secret []byte, label string) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, label, 32)
	if err != nil {
		return nil, fmt.Errorf("web: derive the %q key: %w", label, err)
	}
	return k, nil
}

func (k *csrfKey) token(form, binding string) string {
	mac := hmac.New(sha256.New, k.key)
	mac.Write([]byte("gatehouse-csrf\x00" + form + "\x00" + binding))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (k *csrfKey) valid(form, binding, token string) bool {
	if binding == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(k.token(form, binding)), []byte(token))
}

// csrfBinding returns the value a request's CSRF tokens are bound to. When
// issuing tokens (create), it sets a pre-session cookie if the browser has
// neither it nor a session cookie.
func (s *Service) csrfBinding(w http.ResponseWriter, r *http.Request, create bool) string {
	if v := s.cookie(r, sessionCookie); v != "" {
		return "session:" + v
	}
	if v := s.cookie(r, csrfCookie); v != "" {
		return "pre:" + v
	}
	if !create {
		return ""
	}
	v := randomToken(32)
	s.setCookie(w, csrfCookie, v, 0)
	// Later tokens of this response must see the new cookie.
	r.AddCookie(&http.Cookie{Name: s.cookieName(csrfCookie), Value: v})
	return "pre:" + v
}

// csrfToken returns the token for a form rendered in response to r.
func (s *Service) csrfToken(w http.ResponseWriter, r *http.Request, form string) string {
	return s.csrf.token(form, s.csrfBinding(w, r, true))
}

// checkCSRF reports whether the posted form carries a valid token for form.
func (s *Service) checkCSRF(r *http.Request, form string) bool {
	return s.csrf.valid(form, s.csrfBinding(nil, r, false), r.PostFormValue("csrf"))
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
