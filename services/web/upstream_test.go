package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// upstreamAccounts is fakeAccounts with a provider "idp": it hands out a
// fixed state, nonce and verifier, and answers the code with next.
type upstreamAccounts struct {
	*fakeAccounts
	completed []*accountsv1.CompleteUpstreamSignInRequest
	next      func() (*accountsv1.CompleteUpstreamSignInResponse, error)
}

func (f *upstreamAccounts) StartUpstreamSignIn(_ context.Context, req *accountsv1.StartUpstreamSignInRequest, _ ...grpc.CallOption) (*accountsv1.StartUpstreamSignInResponse, error) {
	if req.GetProviderId() != "idp" {
		return nil, errs.NotFound("no such provider")
	}
	return &accountsv1.StartUpstreamSignInResponse{AuthorizationUrl: "https://idp.example/authorize?state=the-state",
		State: "the-state", Nonce: "the-nonce", CodeVerifier: "the-verifier"}, nil
}

func (f *upstreamAccounts) CompleteUpstreamSignIn(_ context.Context, req *accountsv1.CompleteUpstreamSignInRequest, _ ...grpc.CallOption) (*accountsv1.CompleteUpstreamSignInResponse, error) {
	f.completed = append(f.completed, req)
	return f.next()
}

func newUpstreamTestEnv(t *testing.T) (*httptest.Server, *upstreamAccounts) {
	t.Helper()
	fa := &upstreamAccounts{fakeAccounts: &fakeAccounts{sessions: map[string]*accountsv1.User{}}}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	svc, err := New(Config{PublicURL: srv.URL + "/", ServerName: "example.org", Upstream: []upstreamProvider{{ID: "idp", HumanName: "The IdP"}}},
		Deps{Accounts: fa, Authorize: &fakeAuthorize{}, Notify: fakeNotify{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	svc.RegisterHTTP(mux)
	return srv, fa
}

// The browser's side of an upstream sign-in: the redirect binds the state,
// nonce and verifier to the browser; the callback is accepted once, only in
// that browser, only with that state, and passes the nonce and verifier on;
// every refusal is a page, with nothing asked of accounts.
func TestUpstreamCallbackIsBoundToTheBrowser(t *testing.T) {
	srv, fa := newUpstreamTestEnv(t)
	alice := &accountsv1.User{Id: alice.GetId(), Username: "alice"}
	fa.next = func() (*accountsv1.CompleteUpstreamSignInResponse, error) {
		return &accountsv1.CompleteUpstreamSignInResponse{User: alice, AuthProof: "proof of " + alice.GetId()}, nil
	}
	browser := (&testEnv{srv: srv}).client()
	callback := srv.URL + "/upstream/callback/idp?"

	// The login page shows the button, carrying the flow.
	if resp, body := get(t, browser, srv.URL+"/login?grant="+grantID); resp.StatusCode != http.StatusOK ||
		!strings.Contains(body, `href="/upstream/authorize/idp?grant=`+grantID+`"`) || !strings.Contains(body, "Continue with The IdP") {
		t.Fatalf("login page: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := get(t, browser, srv.URL+"/upstream/authorize/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown provider: %d", resp.StatusCode)
	}
	// A callback nobody started here.
	if resp, body := get(t, browser, callback+"code=c&state=the-state"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired") {
		t.Errorf("a callback without an attempt: %d", resp.StatusCode)
	}
	resp, _ := get(t, browser, srv.URL+"/upstream/authorize/idp?grant="+grantID)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://idp.example/authorize?state=the-state" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Another browser, or another state: refused.
	other := (&testEnv{srv: srv}).client()
	if resp, _ := get(t, other, callback+"code=c&state=the-state"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("another browser's callback: %d", resp.StatusCode)
	}
	if resp, _ := get(t, browser, callback+"code=c&state=another-state"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("another state: %d", resp.StatusCode)
	}
	// (A wrong state spends nothing: the attempt is still there.)
	resp, _ = get(t, browser, callback+"code=c&state=the-state")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/consent?grant="+grantID) {
		t.Fatalf("the callback: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(fa.completed) != 1 || fa.completed[0].GetNonce() != "the-nonce" || fa.completed[0].GetCodeVerifier() != "the-verifier" || fa.completed[0].GetCode() != "c" {
		t.Fatalf("accounts was asked %v", fa.completed)
	}
	u, _ := url.Parse(srv.URL)
	signedIn := false
	for _, c := range browser.Jar.Cookies(u) {
		signedIn = signedIn || c.Name == "gatehouse-session"
	}
	if !signedIn {
		t.Error("no session after the callback")
	}
	// Spent: the same callback again is refused.
	if resp, _ := get(t, browser, callback+"code=c&state=the-state"); resp.StatusCode != http.StatusBadRequest || len(fa.completed) != 1 {
		t.Errorf("a replayed callback: %d", resp.StatusCode)
	}

	// Accounts' refusals, and the provider's own errors, are pages.
	for _, tc := range []struct {
		name   string
		query  string
		err    error
		status int
		want   string
	}{
		{"cancelled at the provider", "error=access_denied&state=the-state", nil, http.StatusForbidden, "cancelled at The IdP"},
		{"another provider error", "error=server_error%3Cscript%3E&state=the-state", nil, http.StatusBadGateway, "(server_errorscript)"},
		{"provider down", "code=c&state=the-state", errs.Unavailable("down"), http.StatusServiceUnavailable, "cannot be reached"},
		{"not verified", "code=c&state=the-state", errs.PermissionDenied("nonce"), http.StatusForbidden, "could not be verified"},
		{"code expired", "code=c&state=the-state", errs.InvalidField("code", "expired"), http.StatusBadRequest, "expired"},
		{"claim missing", "code=c&state=the-state", func() error {
			e := errs.FailedPrecondition("no localpart")
			e.Facts = map[string]string{"claim": "localpart"}
			return e
		}(), http.StatusForbidden, "did not give your username"},
		{"account locked", "code=c&state=the-state", errs.FailedPrecondition("locked"), http.StatusForbidden, "locked or deactivated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fa.next = func() (*accountsv1.CompleteUpstreamSignInResponse, error) { return nil, tc.err }
			b := (&testEnv{srv: srv}).client()
			get(t, b, srv.URL+"/upstream/authorize/idp")
			resp, body := get(t, b, callback+tc.query)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%d, want %d with %q:\n%s", resp.StatusCode, tc.status, tc.want, body)
			}
		})
	}
}
