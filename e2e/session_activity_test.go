package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

const activityUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

// postAs posts a body from the given loopback address with the test's User-Agent.
func postAs(t *testing.T, from net.IP, target, contentType, body string) map[string]any {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: from}, Timeout: 10 * time.Second}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", activityUA)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %v %v", target, resp.StatusCode, out, err)
	}
	return out
}

// TestSessionActivity: OAuth and compat sessions keep the sign-in's address
// and User-Agent, and when they were last used — noted in memory on
// introspection (HTTP and gRPC) and refresh, written in batches — survives a
// restart (the last batch is written on shutdown) and shows on the account page.
func TestSessionActivity(t *testing.T) {
	e := newOAuthEnv(t, "GATEHOUSE_ACTIVITY_FLUSH_INTERVAL=1s")
	ctx := context.Background()
	loopback := net.IPv4(127, 0, 0, 1)

	// An OAuth login: the code exchange from 127.0.0.1 with a User-Agent.
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, e.client, oauth2.S256ChallengeOption(verifier))
	tok := postAs(t, loopback, e.issuer+"oauth2/token", "application/x-www-form-urlencoded", url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {e.client.RedirectURL},
		"code_verifier": {verifier}, "client_id": {e.client.ClientID},
	}.Encode())
	oauthAccess, _ := tok["access_token"].(string)

	// A compat login with a refresh token, from the same address.
	body, _ := json.Marshal(alicePassword(map[string]any{"refresh_token": true}))
	login := postAs(t, loopback, e.issuer+"_matrix/client/v3/login", "application/json", string(body))
	compatAccess, _ := login["access_token"].(string)
	compatRefresh, _ := login["refresh_token"].(string)
	if oauthAccess == "" || compatAccess == "" || compatRefresh == "" {
		t.Fatalf("tokens: %v / %v", tok, login)
	}

	list := func() map[string]*tokenv1.Session {
		t.Helper()
		resp, err := tokenv1.NewTokenServiceClient(e.conn).ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: e.user.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*tokenv1.Session{}
		for _, s := range resp.GetSessions() {
			out[s.GetKind()] = s
		}
		return out
	}
	for kind, s := range list() {
		if s.GetIpAddress() != "127.0.0.1" || s.GetUserAgent() != activityUA || s.GetLastActiveAt() != nil {
			t.Fatalf("%s session after login: ip %q, ua %q, last active %v", kind, s.GetIpAddress(), s.GetUserAgent(), s.GetLastActiveAt())
		}
	}

	// Activity is kept in whole seconds: use the sessions a second later.
	time.Sleep(1100 * time.Millisecond)
	if got := e.introspect(t, oauthAccess); got["active"] != true {
		t.Fatalf("introspect: %v", got)
	}
	if got, err := tokenv1.NewTokenServiceClient(e.conn).Introspect(ctx, &tokenv1.IntrospectRequest{Token: compatAccess}); err != nil || !got.GetActive() {
		t.Fatalf("gRPC introspect: %v, %v", got, err)
	}
	// The homeserver's introspection records no address; a refresh from
	// another address does.
	refreshed := postAs(t, net.IPv4(127, 0, 0, 2), e.issuer+"_matrix/client/v3/refresh", "application/json", `{"refresh_token":"`+compatRefresh+`"}`)
	if refreshed["access_token"] == nil {
		t.Fatalf("refresh: %v", refreshed)
	}

	// Restart: what the last flush did not write is written on shutdown, and
	// the new process knows only the projection.
	time.Sleep(1500 * time.Millisecond)
	e.s.stop(t)
	startServeOn(t, e.s, append(os.Environ(),
		"GATEHOUSE_DATA_DIR="+e.s.dataDir, "GATEHOUSE_GRPC_ADDR="+e.s.grpc, "GATEHOUSE_HTTP_ADDR="+e.s.http,
		"GATEHOUSE_OPS_ADDR="+e.s.ops, "GATEHOUSE_PUBLIC_URL="+e.issuer, "GATEHOUSE_LOG_LEVEL=warn",
		"GATEHOUSE_MATRIX_SECRET="+homeserverSecret, "GATEHOUSE_MATRIX_SERVER_NAME=example.org",
		"GATEHOUSE_ACTIVITY_FLUSH_INTERVAL=1s"))
	sessions := list()
	for kind, wantIP := range map[string]string{"oauth": "127.0.0.1", "compat": "127.0.0.2"} {
		s := sessions[kind]
		if s == nil {
			t.Fatalf("no %s session: %v", kind, sessions)
		}
		if s.GetLastActiveAt() == nil || !s.GetLastActiveAt().AsTime().After(s.GetCreatedAt().AsTime()) {
			t.Errorf("%s session: last active %v, created %v", kind, s.GetLastActiveAt().AsTime(), s.GetCreatedAt().AsTime())
		}
		if s.GetIpAddress() != wantIP || s.GetUserAgent() != activityUA {
			t.Errorf("%s session: ip %q (want %s), ua %q", kind, s.GetIpAddress(), wantIP, s.GetUserAgent())
		}
	}

	// The account page shows them, for applications and for compat devices.
	b := newBrowser(t)
	b.open("account signed out", e.issuer+"account/sessions")
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	if status := b.submit("sign in", "button[type=submit]"); status != http.StatusOK || !strings.HasSuffix(b.location(), "/account/sessions") {
		t.Fatalf("sign-in led to %d %s\n%s", status, b.location(), b.pageText())
	}
	for section, wantIP := range map[string]string{"apps-heading": "127.0.0.1", "compat-heading": "127.0.0.2"} {
		text := b.text(`section[aria-labelledby="` + section + `"]`)
		for _, want := range []string{"Last active", "Signed in with", "Chrome on Linux", "IP address", wantIP, activityUA} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q:\n%s", section, want, text)
			}
		}
	}
}
