package web

import (
	"context"
	"net/http"
	"net/url"

	"google.golang.org/grpc/metadata"

	"gatehouse.dev/platform/errs"
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
}

// currentUser resolves the session cookie. It returns nil without error when
// nobody is signed in (no cookie, or a session that ended, expired or whose
// user may no longer sign in); a stale cookie is then cleared.
func (s *Service) currentUser(w http.ResponseWriter, r *http.Request) (*signedIn, error) {
	secret := s.cookies.Get(r, cookie.Session)
	if secret == "" {
		return nil, nil
	}
	resp, err := s.accounts.AuthenticateBrowserSession(s.asWeb(r.Context()), &accountsv1.AuthenticateBrowserSessionRequest{
		Secret: secret, IpAddress: clientIP(r),
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
	return &signedIn{session: resp.GetSession(), user: resp.GetUser()}, nil
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

// startSession signs the user in on this browser.
func (s *Service) startSession(w http.ResponseWriter, r *http.Request, user *accountsv1.User) error {
	resp, err := s.accounts.StartBrowserSession(s.asUser(r.Context(), user.GetId()), &accountsv1.StartBrowserSessionRequest{
		UserId: user.GetId(), UserAgent: truncate(r.UserAgent(), 512), IpAddress: clientIP(r),
	})
	if err != nil {
		return err
	}
	s.cookies.Set(w, cookie.Session, resp.GetSecret(), 0)
	return nil
}

// asWeb names the web service as the actor of calls made for nobody in particular.
func (s *Service) asWeb(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "gatehouse-actor", "web")
}

// asUser names a user as the actor of calls made on their behalf.
func (s *Service) asUser(ctx context.Context, userID string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "gatehouse-actor", "user:"+userID)
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
