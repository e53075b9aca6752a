package web

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/grpcx"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/web/internal/keys"
	"gatehouse.dev/services/web/internal/ssostate"
)

// fakeToken hands out numbered login tokens to the person whose browser
// session comes with the call, as the token service does.
type fakeToken struct {
	tokenv1.TokenServiceClient
	accounts *fakeAccounts
	issued   int
}

func (f *fakeToken) CreateLoginToken(ctx context.Context, _ *tokenv1.CreateLoginTokenRequest, _ ...grpc.CallOption) (*tokenv1.CreateLoginTokenResponse, error) {
	md, _ := metadata.FromOutgoingContext(ctx)
	sessions := md.Get(grpcx.BrowserSessionHeader)
	if len(sessions) != 1 || f.accounts.sessions[sessions[0]] == nil {
		return nil, errs.PermissionDenied("needs a signed-in user")
	}
	f.issued++
	return &tokenv1.CreateLoginTokenResponse{LoginToken: fmt.Sprintf("lt%d-%s", f.issued, f.accounts.sessions[sessions[0]].GetUsername())}, nil
}

// Secrets of at least 32 bytes.
var (
	secretA = []byte("replica secret A, 32 bytes long!")
	secretB = []byte("replica secret B, 32 bytes long!")
)

// replica is one web.Service on its own server. Replicas of a test share
// the other services (so a browser session is valid on every one) and,
// through the cookie jar (cookies ignore ports), the browser's cookies.
type replica struct {
	srv *httptest.Server
	svc *Service
}

// backends are the other services, shared by the replicas of a test.
type backends struct {
	accounts *fakeAccounts
	authz    *fakeAuthorize
	token    *fakeToken
}

func newBackends() *backends {
	accounts := &fakeAccounts{sessions: map[string]*accountsv1.User{}}
	return &backends{accounts: accounts, authz: &fakeAuthorize{}, token: &fakeToken{accounts: accounts}}
}

func (b *backends) replica(t *testing.T, secret []byte) *replica {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	svc, err := New(Config{PublicURL: srv.URL + "/", ServerName: "example.org", Secret: secret},
		Deps{Accounts: b.accounts, Authorize: b.authz, Token: b.token, Notify: fakeNotify{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	svc.RegisterHTTP(mux)
	return &replica{srv: srv, svc: svc}
}

// signIn signs the browser in as alice on a replica.
func (r *replica) signIn(t *testing.T, c *http.Client) {
	t.Helper()
	_, body := get(t, c, r.srv.URL+"/login")
	resp, _ := post(t, c, r.srv.URL+"/login", url.Values{"csrf": {csrfField.FindStringSubmatch(body)[1]}, "username": {"alice"}, "password": {"alice's password"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
}

// startSSO follows a client's SSO redirect on a replica and returns the
// confirmation's path, /complete-compat-sso/<id>.
func (r *replica) startSSO(t *testing.T, c *http.Client, redirect string) string {
	t.Helper()
	resp, body := get(t, c, r.srv.URL+"/_matrix/client/v3/login/sso/redirect?"+url.Values{"redirectUrl": {redirect}}.Encode())
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/complete-compat-sso/") {
		t.Fatalf("SSO redirect: %d %q\n%s", resp.StatusCode, loc, body)
	}
	return loc
}

// replicaSecrets are the secrets of two replicas, and whether they share keys.
var replicaSecrets = []struct {
	name       string
	a, b       []byte
	wantShared bool
}{
	{"same secret", secretA, secretA, true},
	{"other secret", secretA, secretB, false},
	{"no secret", nil, nil, false},
}

// Replicas with the same secret accept each other's forms; with another
// secret, or each with a random one, they do not.
func TestSharedSecretCSRF(t *testing.T) {
	tests := replicaSecrets
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newBackends()
			a, b := be.replica(t, tt.a), be.replica(t, tt.b)
			c := (&testEnv{}).client()
			_, body := get(t, c, a.srv.URL+"/login?grant="+grantID)
			token := csrfField.FindStringSubmatch(body)[1]
			resp, _ := post(t, c, b.srv.URL+"/login?grant="+grantID, url.Values{"csrf": {token}, "username": {"alice"}, "password": {"alice's password"}})
			switch {
			case tt.wantShared && (resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/consent?grant="+grantID):
				t.Fatalf("a form of replica A posted to B: %d %q, want the sign-in to go on", resp.StatusCode, resp.Header.Get("Location"))
			case !tt.wantShared && resp.StatusCode != http.StatusForbidden:
				t.Fatalf("a form of replica A posted to B: %d, want 403", resp.StatusCode)
			case !tt.wantShared && be.accounts.verified != 0:
				t.Fatal("B checked a password with A's CSRF token")
			}
			if !tt.wantShared {
				return
			}
			// Signed in through B: A accepts B's consent form (the session binding).
			_, body = get(t, c, b.srv.URL+"/consent?grant="+grantID)
			token = csrfField.FindStringSubmatch(body)[1]
			resp, _ = post(t, c, a.srv.URL+"/consent?grant="+grantID, url.Values{"csrf": {token}, "action": {"allow"}})
			if resp.StatusCode != http.StatusSeeOther || !be.authz.approved {
				t.Fatalf("B's consent form posted to A: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

// An SSO confirmation started on one replica is shown and answered by
// another with the same secret, and refused by one with another secret.
func TestSharedSecretSSO(t *testing.T) {
	tests := replicaSecrets
	const redirect = "https://app.example/cb?x=1"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newBackends()
			a, b := be.replica(t, tt.a), be.replica(t, tt.b)
			c := (&testEnv{}).client()
			a.signIn(t, c)
			confirm := a.startSSO(t, c, redirect)
			_, page := get(t, c, a.srv.URL+confirm)
			token := csrfField.FindStringSubmatch(page)[1]

			resp, body := get(t, c, b.srv.URL+confirm)
			if !tt.wantShared {
				if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not valid or has expired") {
					t.Fatalf("replica B showed A's confirmation: %d\n%s", resp.StatusCode, body)
				}
				resp, _ = post(t, c, b.srv.URL+confirm, url.Values{"csrf": {token}, "action": {"continue"}})
				if resp.StatusCode != http.StatusNotFound || be.token.issued != 0 {
					t.Fatalf("replica B answered A's confirmation: %d, %d tokens", resp.StatusCode, be.token.issued)
				}
				return
			}
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Continue to app.example?") {
				t.Fatalf("replica B on A's confirmation: %d\n%s", resp.StatusCode, body)
			}
			// A's page (id and CSRF token) answered by B.
			resp, _ = post(t, c, b.srv.URL+confirm, url.Values{"csrf": {token}, "action": {"continue"}})
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != redirect+"&loginToken=lt1-alice" {
				t.Fatalf("Continue on B: %d %q", resp.StatusCode, loc)
			}
			// Not single use (see sso.go): the same signed-in browser may
			// answer again until it expires, for another login token to the
			// same place.
			resp, _ = post(t, c, a.srv.URL+confirm, url.Values{"csrf": {token}, "action": {"continue"}})
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != redirect+"&loginToken=lt2-alice" {
				t.Fatalf("Continue again on A: %d %q", resp.StatusCode, loc)
			}
			// Another browser, not signed in, is sent to sign in first, and
			// cannot answer.
			other := (&testEnv{}).client()
			resp, _ = get(t, other, b.srv.URL+confirm)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/login?"+(url.Values{"next": {confirm}}).Encode() {
				t.Fatalf("another browser on the confirmation: %d %q", resp.StatusCode, loc)
			}
			resp, _ = post(t, other, b.srv.URL+confirm, url.Values{"csrf": {token}, "action": {"continue"}})
			if resp.StatusCode != http.StatusSeeOther || strings.Contains(resp.Header.Get("Location"), "loginToken") || be.token.issued != 2 {
				t.Fatalf("another browser answered: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

// An expired confirmation is refused; one a moment before its end is not.
func TestSSOExpired(t *testing.T) {
	be := newBackends()
	a := be.replica(t, secretA)
	c := (&testEnv{}).client()
	a.signIn(t, c)
	start := time.Now()
	confirm := a.startSSO(t, c, "https://app.example/cb")
	_, page := get(t, c, a.srv.URL+confirm)
	token := csrfField.FindStringSubmatch(page)[1]

	a.svc.now = func() time.Time { return start.Add(ssostate.TTL - 2*time.Second) }
	if resp, body := get(t, c, a.srv.URL+confirm); resp.StatusCode != http.StatusOK {
		t.Fatalf("just before it expires: %d\n%s", resp.StatusCode, body)
	}
	a.svc.now = func() time.Time { return start.Add(ssostate.TTL + time.Second) }
	resp, body := get(t, c, a.srv.URL+confirm)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not valid or has expired") {
		t.Fatalf("expired: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = post(t, c, a.srv.URL+confirm, url.Values{"csrf": {token}, "action": {"continue"}})
	if resp.StatusCode != http.StatusNotFound || be.token.issued != 0 {
		t.Fatalf("expired, Continue: %d, %d tokens", resp.StatusCode, be.token.issued)
	}
}

// Changed, cut, forged or malformed ids are refused with the "not valid or
// has expired" page.
func TestSSOTampered(t *testing.T) {
	be := newBackends()
	a := be.replica(t, secretA)
	c := (&testEnv{}).client()
	a.signIn(t, c)
	confirm := a.startSSO(t, c, "https://app.example/cb")
	id := strings.TrimPrefix(confirm, "/complete-compat-sso/")
	enc, mac, _ := strings.Cut(id, ".")
	other := strings.TrimPrefix(a.startSSO(t, c, "https://evil.example/cb"), "/complete-compat-sso/")
	otherEnc, otherMAC, _ := strings.Cut(other, ".")
	_, page := get(t, c, a.srv.URL+confirm)
	token := csrfField.FindStringSubmatch(page)[1]

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	ids := map[string]string{
		"payload changed":         flip(enc, 3),
		"url changed":             flip(enc, len(enc)-2),
		"mac changed":             flip(mac, 5),
		"other request's mac":     enc + "." + otherMAC,
		"other request's payload": otherEnc + "." + mac,
		"no mac":                  enc,
		"empty mac":               enc + ".",
		"empty payload":           "." + mac,
		"two dots":                id + ".x",
		"not base64":              "!!!." + mac,
		"padded base64":           enc + "=." + mac,
		"random":                  randomToken(16),
		"too long":                strings.Repeat("A", ssostate.MaxID+1) + "." + mac,
		"other secret":            ssostate.Sign(mustKey(t, secretB, keys.SSOLabel), "https://app.example/cb", false, time.Now().Add(time.Minute)),
		"csrf key":                ssostate.Sign(mustKey(t, secretA, keys.CSRFLabel), "https://app.example/cb", false, time.Now().Add(time.Minute)),
	}
	for name, bad := range ids {
		path := a.srv.URL + "/complete-compat-sso/" + url.PathEscape(bad)
		resp, body := get(t, c, path)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not valid or has expired") {
			t.Errorf("%s: GET %d\n%s", name, resp.StatusCode, body)
		}
		resp, _ = post(t, c, path, url.Values{"csrf": {token}, "action": {"continue"}})
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: POST %d", name, resp.StatusCode)
		}
	}
	if be.token.issued != 0 {
		t.Errorf("%d login tokens issued for tampered ids", be.token.issued)
	}
}

func mustKey(t *testing.T, secret []byte, label string) []byte {
	t.Helper()
	k, err := keys.Derive(secret, label)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A redirectUrl up to the bound gives an id that survives signing in; a
// longer one is refused like any bad redirectUrl, as is one whose id would
// not fit under a long public URL path.
func TestSSORedirectURLLength(t *testing.T) {
	be := newBackends()
	a := be.replica(t, secretA)
	long := "https://app.example/" + strings.Repeat("a", ssostate.MaxRedirectURL-len("https://app.example/"))
	confirm := a.startSSO(t, (&testEnv{}).client(), long)
	if safeNext(confirm) != confirm {
		t.Fatalf("the id of a %d-byte redirectUrl (%d bytes) does not fit in next", len(long), len(confirm))
	}
	c := (&testEnv{}).client()
	resp, _ := get(t, c, a.srv.URL+confirm)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/login?"+(url.Values{"next": {confirm}}).Encode() {
		t.Fatalf("not signed in, the confirmation of a long redirectUrl: %d %q", resp.StatusCode, loc)
	}
	a.signIn(t, c) // the sign-in page's own next is not used here
	resp, body := get(t, c, a.srv.URL+confirm)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Continue to app.example?") {
		t.Fatalf("signed in, the confirmation of a long redirectUrl: %d", resp.StatusCode)
	}

	resp, body = get(t, c, a.srv.URL+"/_matrix/client/v3/login/sso/redirect?"+url.Values{"redirectUrl": {long + "a"}}.Encode())
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "not valid") {
		t.Errorf("a %d-byte redirectUrl: %d %q", len(long)+1, resp.StatusCode, resp.Header.Get("Location"))
	}

	// Under a public URL with a long path, the id would not fit in next.
	svc, err := New(Config{PublicURL: "https://auth.example.org/" + strings.Repeat("p", 400) + "/", Secret: secretA},
		Deps{Accounts: be.accounts, Authorize: be.authz, Notify: fakeNotify{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.RegisterHTTP(mux)
	for raw, want := range map[string]int{"https://app.example/cb": http.StatusSeeOther, long: http.StatusBadRequest} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_matrix/client/v3/login/sso/redirect?"+url.Values{"redirectUrl": {raw}}.Encode(), nil))
		if rec.Code != want {
			t.Errorf("long public path, %d-byte redirectUrl: %d, want %d", len(raw), rec.Code, want)
		}
	}
}

// The keys come from the secret alone, one per use; without a secret each
// service has its own and says so once.
func TestDerivedKeys(t *testing.T) {
	var logs bytes.Buffer
	newSvc := func(secret []byte) *Service {
		t.Helper()
		svc, err := New(Config{PublicURL: "https://auth.example.org/", Secret: secret},
			Deps{Accounts: &fakeAccounts{}, Authorize: &fakeAuthorize{}, Notify: fakeNotify{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	a1, a2, b := newSvc(secretA), newSvc(bytes.Clone(secretA)), newSvc(secretB)
	if logs.Len() != 0 {
		t.Errorf("a configured secret logged:\n%s", &logs)
	}
	if !bytes.Equal(a1.keys.CSRF, a2.keys.CSRF) || !bytes.Equal(a1.keys.SSO, a2.keys.SSO) {
		t.Error("the same secret gave different keys")
	}
	if bytes.Equal(a1.keys.CSRF, a1.keys.SSO) || bytes.Equal(a1.keys.CSRF, b.keys.CSRF) || bytes.Equal(a1.keys.SSO, b.keys.SSO) {
		t.Error("keys of different uses or secrets are equal")
	}
	if bytes.Contains(a1.keys.CSRF, secretA) || a1.cfg.Secret != nil {
		t.Error("the service keeps the secret")
	}
	r1, r2 := newSvc(nil), newSvc(nil)
	if bytes.Equal(r1.keys.CSRF, r2.keys.CSRF) || bytes.Equal(r1.keys.SSO, r2.keys.SSO) || bytes.Equal(r1.keys.CSRF, r1.keys.SSO) {
		t.Error("services without a secret share keys")
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 || !strings.Contains(logs.String(), "set web.secret when running several web replicas") {
		t.Errorf("want one warning per service without a secret, got:\n%s", &logs)
	}
	if _, err := New(Config{PublicURL: "https://auth.example.org/", Secret: secretA[1:]},
		Deps{Accounts: &fakeAccounts{}, Authorize: &fakeAuthorize{}, Notify: fakeNotify{}}); err == nil || !strings.Contains(err.Error(), "31 bytes, want at least 32") {
		t.Errorf("a 31-byte secret: %v", err)
	}
}
