package web

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/grpcx"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/web/internal/cookie"
)

// The browser session: who is signed in on this browser (the session cookie,
// checked by accounts on every request), the one guard of signed-in pages
// (requireUser), and the actor named in calls to the other services.

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
	secret := s.cookies.Get(r, cookie.Session)
	if secret == "" {
		return nil, nil
	}
	resp, err := s.accounts.AuthenticateBrowserSession(r.Context(), &accountsv1.AuthenticateBrowserSessionRequest{
		Secret: secret, IpAddress: clientaddr.String(r),
	})
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindUnauthenticated, errs.KindNotFound, errs.KindInvalid, errs.KindFailedPrecondition, errs.KindPermissionDenied:
			s.cookies.Clear(w, cookie.Session)
			s.cookies.Drop(r, cookie.Session)
			return nil, nil
		}
		return nil, err
	}
	return &signedIn{session: resp.GetSession(), user: resp.GetUser(), secret: secret}, nil
}

// requireUser is the one guard of signed-in pages: it returns the user
// signed in on this browser, or sends the browser to sign in — to page
// ("login" or "register") with back, the query that brings it back afterwards
// — and reports false. It shows the failure page when the session cannot be
// checked. The route table runs it before every page marked for a signed-in
// user; the pages of a flow (consent, device link, compat SSO) run it
// themselves once they have checked what they are asked.
func (s *Service) requireUser(w http.ResponseWriter, r *http.Request, page string, back url.Values) (*signedIn, bool) {
	who, err := s.currentUser(w, r)
	if err != nil {
		s.failure(w, r, "authenticate browser session", err)
		return nil, false
	}
	if who == nil {
		s.redirect(w, r, page, back)
		return nil, false
	}
	return who, true
}

// startSession signs the user in on this browser, with the proof accounts
// gave when the person proved who they are (a password, a completed
// registration). When the person must also give a second factor, the proof
// waits in a cookie and errSecondFactor says to send the browser to the
// second step (sessionFailed).
func (s *Service) startSession(w http.ResponseWriter, r *http.Request, user *accountsv1.User, proof string) error {
	resp, err := s.accounts.StartBrowserSession(r.Context(), &accountsv1.StartBrowserSessionRequest{
		UserId: user.GetId(), UserAgent: truncate(r.UserAgent(), 512), IpAddress: clientaddr.String(r), AuthProof: proof,
	})
	if err != nil {
		if v, _ := errs.FactOf(err, errs.FactSecondFactor); v == "needed" || v == "enrol" {
			// The second step takes the proof on (login_second_factor.go).
			s.cookies.Set(w, cookie.SecondFactor, proof, int(secondFactorLife/time.Second))
			return errSecondFactor
		}
		return err
	}
	s.cookies.Set(w, cookie.Session, resp.GetSecret(), 0)
	return nil
}

// asUser returns ctx whose calls act for the signed-in person: they carry
// the browser session, which the called service verifies, so a call can only
// ever concern the person whose browser made the request.
func (s *Service) asUser(ctx context.Context, who *signedIn) context.Context {
	return grpcx.WithBrowserSession(ctx, who.secret)
}

// owns reports whether a user id is the signed-in user's.
func (who *signedIn) owns(userID string) bool { return userID != "" && userID == who.user.GetId() }

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
