package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	"gatehouse.dev/services/web/internal/cookie"
	"gatehouse.dev/services/web/internal/i18n"
)

// fakeAccounts answers the calls the pages make of accounts: one user,
// alice, with the password "alice's password".
type fakeAccounts struct {
	accountsv1.AccountsServiceClient
	verified int
	sessions map[string]*accountsv1.User
}

var alice = &accountsv1.User{Id: "01HZZZZZZZZZZZZZZZZZZZZZZZ", Username: "alice"}

func (f *fakeAccounts) VerifyPassword(_ context.Context, req *accountsv1.VerifyPasswordRequest, _ ...grpc.CallOption) (*accountsv1.VerifyPasswordResponse, error) {
	f.verified++
	if req.GetUsername() == "alice" && req.GetPassword() == "alice's password" {
		return &accountsv1.VerifyPasswordResponse{User: alice, AuthProof: "proof of " + alice.GetId()}, nil
	}
	return nil, errs.Unauthenticated("wrong username or password")
}

// BeginPasskeySignIn: this stand-in has no passkeys (the sign-in page then offers none).
func (f *fakeAccounts) BeginPasskeySignIn(context.Context, *accountsv1.BeginPasskeySignInRequest, ...grpc.CallOption) (*accountsv1.BeginPasskeySignInResponse, error) {
	return nil, errs.FailedPrecondition("no passkeys in this stand-in")
}

func (f *fakeAccounts) StartBrowserSession(_ context.Context, req *accountsv1.StartBrowserSessionRequest, _ ...grpc.CallOption) (*accountsv1.StartBrowserSessionResponse, error) {
	if req.GetAuthProof() != "proof of "+req.GetUserId() {
		return nil, errs.PermissionDenied("no proof")
	}
	secret := randomToken(16)
	f.sessions[secret] = alice
	return &accountsv1.StartBrowserSessionResponse{Secret: secret, Session: &accountsv1.BrowserSession{SessionId: "S", UserId: req.GetUserId()}}, nil
}

func (f *fakeAccounts) AuthenticateBrowserSession(_ context.Context, req *accountsv1.AuthenticateBrowserSessionRequest, _ ...grpc.CallOption) (*accountsv1.AuthenticateBrowserSessionResponse, error) {
	u, ok := f.sessions[req.GetSecret()]
	if !ok {
		return nil, errs.Unauthenticated("no such session")
	}
	return &accountsv1.AuthenticateBrowserSessionResponse{User: u, Session: &accountsv1.BrowserSession{SessionId: "S", AuthenticatedAt: timestamppb.Now()}}, nil
}

// fakeAuthorize knows one pending grant.
type fakeAuthorize struct {
	authorizev1.AuthorizeServiceClient
	approved     bool
	deviceDenied bool
}

const grantID = "01HYYYYYYYYYYYYYYYYYYYYYYY"

func (f *fakeAuthorize) GetGrant(_ context.Context, req *authorizev1.GetGrantRequest, _ ...grpc.CallOption) (*authorizev1.GetGrantResponse, error) {
	if req.GetGrantId() != grantID {
		return nil, errs.NotFound("no such grant")
	}
	return &authorizev1.GetGrantResponse{Grant: &authorizev1.Grant{
		GrantId: grantID, Status: authorizev1.GrantStatus_GRANT_STATUS_PENDING, Scope: "openid urn:matrix:client:api:*",
		LoginHint: "mxid:@alice:example.org", ExpiresAt: timestamppb.New(time.Now().Add(time.Hour)),
		Client: &authorizev1.ClientInfo{ClientId: "c1", ClientName: "Element <script>", LogoUri: "http://insecure.example/logo.png", ClientUri: "javascript:alert(1)"},
	}}, nil
}

func (f *fakeAuthorize) ApproveGrant(context.Context, *authorizev1.ApproveGrantRequest, ...grpc.CallOption) (*authorizev1.ApproveGrantResponse, error) {
	f.approved = true
	return &authorizev1.ApproveGrantResponse{RedirectUri: "http://127.0.0.1:9/cb?code=x"}, nil
}

const userCode = "BCDF-GHJK"

func (f *fakeAuthorize) GetDeviceGrant(_ context.Context, req *authorizev1.GetDeviceGrantRequest, _ ...grpc.CallOption) (*authorizev1.GetDeviceGrantResponse, error) {
	if strings.ReplaceAll(strings.ToUpper(req.GetUserCode()), "-", "") != "BCDFGHJK" {
		return nil, errs.NotFound("no such code")
	}
	status := authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_PENDING
	if f.deviceDenied {
		status = authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_DENIED
	}
	return &authorizev1.GetDeviceGrantResponse{DeviceGrant: &authorizev1.DeviceGrant{
		UserCode: userCode, Status: status, Scope: "urn:matrix:client:api:*",
		Client: &authorizev1.ClientInfo{ClientId: "tv", ClientName: "Living Room TV"},
	}}, nil
}

func (f *fakeAuthorize) DenyDeviceGrant(context.Context, *authorizev1.DenyDeviceGrantRequest, ...grpc.CallOption) (*authorizev1.DenyDeviceGrantResponse, error) {
	f.deviceDenied = true
	return &authorizev1.DenyDeviceGrantResponse{}, nil
}

type fakeNotify struct{ notifyv1.NotifyServiceClient }

type testEnv struct {
	srv      *httptest.Server
	accounts *fakeAccounts
	authz    *fakeAuthorize
	svc      *Service
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{accounts: &fakeAccounts{sessions: map[string]*accountsv1.User{}}, authz: &fakeAuthorize{}}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	svc, err := New(Config{PublicURL: e.srv.URL + "/", ServerName: "example.org"},
		Deps{Accounts: e.accounts, Authorize: e.authz, Notify: fakeNotify{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	svc.RegisterHTTP(mux)
	return e
}

// client is a browser without JavaScript: cookies, no redirects followed.
func (e *testEnv) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// newLocalizer gives the texts of a language as the service's pages get them.
func newLocalizer(lang string) i18n.Localizer {
	texts, err := i18n.NewSet(i18n.Catalogs()...)
	if err != nil {
		panic(err)
	}
	return texts.Localizer(lang)
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestLoginConsentWithoutJavaScript(t *testing.T) {
	e := newTestEnv(t)
	c := e.client()
	login := e.srv.URL + "/login?grant=" + grantID
	resp, body := get(t, c, login)
	if resp.StatusCode != 200 || !strings.Contains(body, `value="alice"`) || !strings.Contains(body, "Element &lt;script&gt;") {
		t.Fatalf("login page: %d\n%s", resp.StatusCode, body)
	}
	token := csrfField.FindStringSubmatch(body)[1]

	// A token of another form, or none, is refused; nothing is verified.
	for _, tok := range []string{"", e.svc.csrf.Sign("consent", "pre:x"), token + "x"} {
		resp, _ = post(t, c, login, url.Values{"csrf": {tok}, "username": {"alice"}, "password": {"alice's password"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("token %q: status %d", tok, resp.StatusCode)
		}
	}
	if e.accounts.verified != 0 {
		t.Fatal("a password was checked without a valid CSRF token")
	}

	resp, body = post(t, c, login, url.Values{"csrf": {token}, "username": {"@Alice:example.org"}, "password": {"wrong"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `id="password-error" role="alert"`) || !strings.Contains(body, `value="@Alice:example.org"`) {
		t.Fatalf("wrong password: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = post(t, c, login, url.Values{"csrf": {token}, "username": {"@Alice:example.org"}, "password": {"alice's password"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/consent?grant="+grantID {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Signed in, the sign-in page sends the browser on.
	resp, _ = get(t, c, login)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("signed in, /login answered %d", resp.StatusCode)
	}
	resp, body = get(t, c, e.srv.URL+"/consent?grant="+grantID)
	if resp.StatusCode != 200 || strings.Contains(resp.Header.Get("Content-Security-Policy"), "form-action") {
		t.Fatalf("consent: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	if strings.Contains(body, "insecure.example") || strings.Contains(body, "javascript:") {
		t.Error("the consent page shows an http logo or a javascript: link")
	}
	// The pre-session token no longer works once signed in.
	resp, _ = post(t, c, e.srv.URL+"/consent?grant="+grantID, url.Values{"csrf": {token}, "action": {"allow"}})
	if resp.StatusCode != http.StatusSeeOther || e.authz.approved || !strings.HasPrefix(resp.Header.Get("Location"), "/consent") {
		t.Fatalf("consent with a stale token: %d %s approved=%v", resp.StatusCode, resp.Header.Get("Location"), e.authz.approved)
	}
	token = csrfField.FindStringSubmatch(body)[1]
	resp, _ = post(t, c, e.srv.URL+"/consent?grant="+grantID, url.Values{"csrf": {token}, "action": {"allow"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "http://127.0.0.1:9/cb?code=x" || !e.authz.approved {
		t.Fatalf("consent: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// The device link through sign-in: ?code= survives signing in, and a refusal
// ends on the "access denied" page.
func TestDeviceLinkThroughSignIn(t *testing.T) {
	e := newTestEnv(t)
	c := e.client()
	resp, _ := get(t, c, e.srv.URL+"/link?code=bcdf-ghjk")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?device=BCDF-GHJK" {
		t.Fatalf("not signed in, /link?code= answered %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body := get(t, c, e.srv.URL+resp.Header.Get("Location"))
	if !strings.Contains(body, "to connect your device") || !strings.Contains(body, `action="/login?device=BCDF-GHJK"`) {
		t.Fatalf("sign-in page for a device:\n%s", body)
	}
	token := csrfField.FindStringSubmatch(body)[1]
	resp, _ = post(t, c, e.srv.URL+"/login?device=BCDF-GHJK", url.Values{"csrf": {token}, "username": {"alice"}, "password": {"alice's password"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/link?code=BCDF-GHJK" {
		t.Fatalf("after sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = get(t, c, e.srv.URL+"/link?code=BCDF-GHJK")
	if !strings.Contains(body, "Living Room TV on another device") || !strings.Contains(body, userCode) {
		t.Fatalf("device consent:\n%s", body)
	}
	token = csrfField.FindStringSubmatch(body)[1]
	resp, _ = post(t, c, e.srv.URL+"/link?code=BCDF-GHJK", url.Values{"csrf": {token}, "action": {"deny"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/link/done?code=BCDF-GHJK" || !e.authz.deviceDenied {
		t.Fatalf("deny: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = get(t, c, e.srv.URL+"/link/done?code=BCDF-GHJK")
	if !strings.Contains(body, "Access denied") || !strings.Contains(body, "Living Room TV will not be connected") {
		t.Fatalf("after denying:\n%s", body)
	}
	_, body = get(t, c, e.srv.URL+"/link?code=XXXX-XXXX")
	if !strings.Contains(body, "This code is not valid") || !strings.Contains(body, `value="XXXX-XXXX"`) {
		t.Errorf("unknown code:\n%s", body)
	}
}

func TestLoginRateLimits(t *testing.T) {
	e := newTestEnv(t)
	c := e.client()
	_, body := get(t, c, e.srv.URL+"/login")
	token := csrfField.FindStringSubmatch(body)[1]
	for i := range 4 {
		resp, body := post(t, c, e.srv.URL+"/login", url.Values{"csrf": {token}, "username": {"bob"}, "password": {"guess"}})
		want := http.StatusUnauthorized
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Fatalf("attempt %d: %d, want %d", i+1, resp.StatusCode, want)
		}
		if want == http.StatusTooManyRequests && (resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many sign-in attempts")) {
			t.Errorf("429 without Retry-After or message")
		}
	}
	if e.accounts.verified != 3 {
		t.Errorf("verified %d passwords, want 3", e.accounts.verified)
	}
}

func TestCrossOriginPostIsRefused(t *testing.T) {
	e := newTestEnv(t)
	for _, path := range []string{"/login", "/register", "/register/verify", "/register/resend", "/consent?grant=" + grantID, "/link?code=BCDF", "/logout"} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader("a=b"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "Request refused") {
			t.Errorf("POST %s from another origin: %d", path, resp.StatusCode)
		}
	}
}

func TestPages(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		path   string
		status int
		want   string
	}{
		{"/", 200, "You are not signed in"},
		{"/register", 200, `autocomplete="new-password"`},
		{"/link", 200, `name="code"`},
		{"/link?code=" + url.QueryEscape("<x>"), 400, "This code is not valid"},
		{"/login?grant=nonsense", 400, "not valid or has expired"},
		{"/login?grant=01HXXXXXXXXXXXXXXXXXXXXXXX", 404, "not valid or has expired"},
		{"/register/verify", 400, "Your sign-up has expired"},
		{"/nothing/here", 404, "Page not found"},
		{"/static/nothing.css", 404, "Page not found"},
	}
	for _, tt := range tests {
		resp, body := get(t, e.client(), e.srv.URL+tt.path)
		if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s: %d, want %d with %q\n%s", tt.path, resp.StatusCode, tt.status, tt.want, body)
		}
		if resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s: headers %v", tt.path, resp.Header)
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/login", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("DELETE /login: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, body := get(t, e.client(), e.srv.URL+"/")
	css := regexp.MustCompile(`href="(/static/gatehouse\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(body)
	if css == nil {
		t.Fatal("no stylesheet link")
	}
	resp, _ = get(t, e.client(), e.srv.URL+css[1])
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestCookiesOverHTTPS(t *testing.T) {
	svc, err := New(Config{PublicURL: "https://auth.example.org/"},
		Deps{Accounts: &fakeAccounts{}, Authorize: &fakeAuthorize{}, Notify: fakeNotify{}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	svc.cookies.Set(rec, cookie.Session, "v", 0)
	c := rec.Result().Cookies()[0]
	if c.Name != "__Host-gatehouse-session" || !c.Secure || !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteLaxMode || c.Domain != "" {
		t.Errorf("cookie over https: %+v", c)
	}
}

func TestDescribeScopes(t *testing.T) {
	l := newLocalizer("en")
	lines, admin := describeScopes(l, "openid urn:matrix:org.matrix.msc2967.client:api:* urn:matrix:org.matrix.msc2967.client:device:ABCDEFGHIJ urn:synapse:admin:* custom")
	var got []string
	for _, x := range lines {
		got = append(got, x.Text)
	}
	want := []string{l.T(i18n.ScopeOpenID), l.T(i18n.ScopeAPI), l.T(i18n.ScopeDevice, "ABCDEFGHIJ"), l.T(i18n.ScopeSynapseAdmin), l.T(i18n.ScopeOther, "custom")}
	if strings.Join(got, "|") != strings.Join(want, "|") || !admin {
		t.Errorf("describeScopes: %q admin=%v", got, admin)
	}
}

// Every text id the templates name exists in every catalog, and every
// catalog has the same ids as English.
func TestMessageCatalog(t *testing.T) {
	texts, err := i18n.NewSet(i18n.Catalogs()...)
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`\{\{-?\s*t "([^"]+)"`)
	err = fs.WalkDir(files, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(files, path)
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			for _, lang := range texts.Languages() {
				if !texts.Localizer(lang).Has(i18n.ID(m[1])) {
					t.Errorf("%s uses %q, missing from %s", path, m[1], lang)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range i18n.Catalogs() {
		if c.Lang != i18n.DefaultLanguage {
			continue
		}
		for _, group := range c.Groups {
			for id := range group {
				for _, lang := range texts.Languages() {
					if !texts.Localizer(lang).Has(id) {
						t.Errorf("%s lacks %q", lang, id)
					}
				}
			}
		}
	}
}

// The strength minimum comes from configuration: a password good enough by
// default is refused under a stricter minimum.
func TestConfiguredPasswordStrength(t *testing.T) {
	const pw = "Tr0ub4dor"
	for bits, want := range map[int]i18n.ID{0: "", 80: i18n.RegisterPasswordWeak} {
		svc, err := New(Config{PublicURL: "https://auth.example.org/", MinPasswordBits: bits},
			Deps{Accounts: &fakeAccounts{}, Authorize: &fakeAuthorize{}, Notify: fakeNotify{}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if got := svc.passwords.Check(pw, ""); got != want {
			t.Errorf("min_strength_bits %d: %q gives %q, want %q", bits, pw, got, want)
		}
	}
}
