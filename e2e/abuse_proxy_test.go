package e2e

import (
	"context"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// The addresses of these tests' clients and proxy, all on loopback, away
// from the ones the compat harness hands out (127.0.0.x, 127.0.1.x, …).
var (
	proxyAddr = net.IPv4(127, 0, 201, 1) // the reverse proxy's, the one trusted
	clientA   = net.IPv4(127, 0, 200, 10)
	clientB   = net.IPv4(127, 0, 200, 11)
	forger    = net.IPv4(127, 0, 200, 12)
	clientC   = net.IPv4(127, 0, 200, 13)
	signingIn = net.IPv4(127, 0, 200, 14)
)

// proxyStandIn is a reverse proxy in front of gatehouse serve, as
// deploy/README.md asks for: it connects from its own address and appends
// each client's address to X-Forwarded-For, as nginx's
// $proxy_add_x_forwarded_for does (net/http/httputil's ReverseProxy).
func proxyStandIn(t *testing.T, upstream string) string {
	t.Helper()
	target, _ := url.Parse("http://" + upstream)
	rp := httputil.NewSingleHostReverseProxy(target)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: proxyAddr}, Timeout: 10 * time.Second}
	rp.Transport = &http.Transport{DialContext: dialer.DialContext}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// formFrom is a browser without JavaScript connecting from ip to base.
func formFrom(t *testing.T, base string, ip net.IP) *form {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	return &form{base: base, c: &http.Client{Jar: jar, CheckRedirect: noRedirects, Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: dialer.DialContext}}}
}

// signInWith posts the sign-in form and returns the status; forwarded, when
// set, is an X-Forwarded-For the client adds itself.
func signInWith(t *testing.T, f *form, username, password, forwarded string) int {
	t.Helper()
	_, page := f.get(t, "login")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page:\n%s", page)
	}
	values := url.Values{"csrf": {m[1]}, "username": {username}, "password": {password}}
	req, _ := http.NewRequest(http.MethodPost, f.base+"login", strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", strings.TrimSuffix(f.base, "/"))
	if forwarded != "" {
		req.Header.Set("X-Forwarded-For", forwarded)
	}
	resp, err := f.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Behind a reverse proxy (trusted by http.trusted_proxies) each client has
// its own budget of failed sign-ins, keyed on the address the proxy
// forwards; a client that reaches the server directly, or sends its own
// X-Forwarded-For through the proxy, cannot choose its address; sessions
// record the client's address, not the proxy's.
func TestClientAddressesBehindAProxy(t *testing.T) {
	e := newOAuthEnv(t, "GATEHOUSE_HTTP_TRUSTED_PROXIES="+proxyAddr.String())
	viaProxy := proxyStandIn(t, e.s.http)
	direct := e.issuer

	wrong := func(f *form, forwarded string) int {
		return signInWith(t, f, "alice", "not alice's password", forwarded)
	}
	a, b := formFrom(t, viaProxy, clientA), formFrom(t, viaProxy, clientB)
	for i := range 3 {
		if got := wrong(a, ""); got != http.StatusUnauthorized {
			t.Fatalf("client A's failure %d through the proxy: %d", i+1, got)
		}
	}
	if got := wrong(a, ""); got != http.StatusTooManyRequests {
		t.Fatalf("client A's fourth failure: %d, want 429", got)
	}
	// B is behind the same proxy, with a budget of its own.
	if got := wrong(b, ""); got != http.StatusUnauthorized {
		t.Fatalf("client B after A was limited: %d", got)
	}

	// A client reaching the server directly is not a trusted proxy: the
	// X-Forwarded-For it sends is ignored, whatever it says.
	d := formFrom(t, direct, forger)
	for i, claimed := range []string{"198.51.100.1", "198.51.100.2", clientB.String()} {
		if got := wrong(d, claimed); got != http.StatusUnauthorized {
			t.Fatalf("direct failure %d claiming %s: %d", i+1, claimed, got)
		}
	}
	if got := wrong(d, "198.51.100.4"); got != http.StatusTooManyRequests {
		t.Fatalf("a fourth direct failure under yet another claimed address: %d, want 429", got)
	}
	// Nor through the proxy: the proxy appends the real address, which is
	// what counts. C claims to be B three times...
	c := formFrom(t, viaProxy, clientC)
	for range 3 {
		if got := wrong(c, clientB.String()); got != http.StatusUnauthorized {
			t.Fatalf("client C claiming B's address: %d", got)
		}
	}
	// ...and B, who failed once, still has two failures left, then none.
	for i := range 2 {
		if got := wrong(b, ""); got != http.StatusUnauthorized {
			t.Fatalf("client B's failure %d after C's forgeries: %d", i+2, got)
		}
	}
	if got := wrong(b, ""); got != http.StatusTooManyRequests {
		t.Fatalf("client B's fourth failure: %d, want 429", got)
	}

	// Sessions record the client's address behind the proxy: the browser's
	// and a compat login's.
	s := formFrom(t, viaProxy, signingIn)
	if got := signInWith(t, s, "alice", "alice's password", ""); got != http.StatusSeeOther {
		t.Fatalf("sign-in through the proxy: %d", got)
	}
	ctx := context.Background()
	browsers, err := accountsv1.NewAccountsServiceClient(e.conn).ListBrowserSessions(ctx, &accountsv1.ListBrowserSessionsRequest{UserId: e.user.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(browsers.GetSessions(), func(bs *accountsv1.BrowserSession) bool { return bs.GetIpAddress() == signingIn.String() }) {
		t.Fatalf("no browser session recorded from %s: %v", signingIn, browsers.GetSessions())
	}
	m := &matrixClient{base: viaProxy, c: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: signingIn}}).DialContext}}}
	if r := m.post(t, "/_matrix/client/v3/login", "", alicePassword(nil)); r.status != http.StatusOK {
		t.Fatalf("compat login through the proxy: %d %s", r.status, r.raw)
	}
	sessions, err := tokenv1.NewTokenServiceClient(e.conn).ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: e.user.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	var compat []string
	for _, ts := range sessions.GetSessions() {
		if ts.GetKind() == "compat" {
			compat = append(compat, ts.GetIpAddress())
		}
	}
	if !slices.Equal(compat, []string{signingIn.String()}) {
		t.Fatalf("compat sessions recorded from %v, want [%s]", compat, signingIn)
	}
}
