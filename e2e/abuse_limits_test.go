package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// compatFrom is a Matrix client connecting from ip.
func compatFrom(base string, ip net.IP) *matrixClient {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	return &matrixClient{base: base, c: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}}
}

// Successful sign-ins spend nothing: ten from one address within a minute
// all succeed, on the pages and through the compat login API. Failed ones
// are limited per address, the pages and the compat API sharing one budget
// (3, then one every 20 s): the fourth failure is refused with 429,
// Retry-After, and M_LIMIT_EXCEEDED with retry_after_ms on the Matrix API.
func TestOnlyFailedSignInsAreLimited(t *testing.T) {
	e := newOAuthEnv(t)
	ip := net.IPv4(127, 0, 200, 30)
	web := formFrom(t, e.issuer, ip)
	matrix := compatFrom(e.issuer, ip)
	for i := range 10 {
		f := formFrom(t, e.issuer, ip) // a new browser each time: one that is signed in is not asked again
		if got := signInWith(t, f, "alice", "alice's password", ""); got != http.StatusSeeOther {
			t.Fatalf("web sign-in %d with the right password: %d", i+1, got)
		}
		if r := matrix.post(t, "/_matrix/client/v3/login", "", alicePassword(nil)); r.status != http.StatusOK {
			t.Fatalf("compat login %d with the right password: %d %s", i+1, r.status, r.raw)
		}
	}
	wrong := alicePassword(map[string]any{"password": "a guess"})
	if got := signInWith(t, web, "alice", "a guess", ""); got != http.StatusUnauthorized {
		t.Fatalf("first failure: %d", got)
	}
	wantMatrixError(t, "second failure", matrix.post(t, "/_matrix/client/v3/login", "", wrong), http.StatusForbidden, "M_FORBIDDEN")
	if got := signInWith(t, web, "alice", "another guess", ""); got != http.StatusUnauthorized {
		t.Fatalf("third failure: %d", got)
	}
	r := matrix.post(t, "/_matrix/client/v3/login", "", wrong)
	wantMatrixError(t, "fourth failure", r, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	ms, _ := r.body["retry_after_ms"].(float64)
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || ms <= 0 || ms > 20_000 {
		t.Fatalf("Retry-After %q, retry_after_ms %v", r.header.Get("Retry-After"), ms)
	}
	if got := signInWith(t, web, "alice", "yet another", ""); got != http.StatusTooManyRequests {
		t.Fatalf("fifth failure, on the pages: %d", got)
	}
}

// Two processes running the web service (replicas behind one load balancer)
// share one budget of failed sign-ins per address: two failures on one and
// one on the other spend it, and both refuse the fourth. Right passwords on
// either spend nothing.
func TestWebReplicasShareOneLoginBudget(t *testing.T) {
	d := newSplitDeployment(t)
	a := d.process(t, "accounts,authorize,token,notify,web", nil, "")
	b := d.process(t, "web", a, "http://"+a.http+"/")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica A log:\n%s\nreplica B log:\n%s", tail(a.log.String()), tail(b.log.String()))
		}
	})
	if _, err := accountsv1.NewAccountsServiceClient(a.dial(t)).Register(context.Background(),
		&accountsv1.RegisterRequest{Username: "alice", Password: "alice's password"}); err != nil {
		t.Fatal(err)
	}
	ip := net.IPv4(127, 0, 200, 40)
	onA := func() *form { return formFrom(t, "http://"+a.http+"/", ip) }
	onB := func() *form { return formFrom(t, "http://"+b.http+"/", ip) }
	for i := range 6 {
		f := onA()
		if i%2 == 1 {
			f = onB()
		}
		if got := signInWith(t, f, "alice", "alice's password", ""); got != http.StatusSeeOther {
			t.Fatalf("right password %d: %d", i+1, got)
		}
	}
	for i, f := range []*form{onA(), onB(), onA()} {
		if got := signInWith(t, f, "alice", "a guess", ""); got != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, got)
		}
	}
	// Replica B saw one failure only; it still refuses: the budget is shared.
	if got := signInWith(t, onB(), "alice", "a guess", ""); got != http.StatusTooManyRequests {
		t.Fatalf("fourth failure on B: %d, want 429", got)
	}
	if got := signInWith(t, onA(), "alice", "a guess", ""); got != http.StatusTooManyRequests {
		t.Fatalf("fifth failure on A: %d, want 429", got)
	}
}

// untilRefused sends requests until one is refused and checks how many
// were allowed: the burst, plus what refilled (one every every) while they
// were sent, so that a slow machine does not fail the test.
func untilRefused(t *testing.T, what string, burst int, every time.Duration, send func() (refused bool)) {
	t.Helper()
	start := time.Now()
	for allowed := 0; ; allowed++ {
		if !send() {
			continue
		}
		refilled := int(time.Since(start) / every)
		if allowed < burst || allowed > burst+refilled {
			t.Fatalf("%s: refused after %d, want %d (+%d refilled meanwhile)", what, allowed, burst, refilled)
		}
		return
	}
}

// The anonymous OAuth endpoints are limited per address at their defaults:
// 10 client registrations, 10 device authorizations and 30 authorization
// requests at once, then 429 with Retry-After.
func TestAnonymousEndpointsAreLimited(t *testing.T) {
	e := newOAuthEnv(t,
		"GATEHOUSE_RATE_LIMIT_AUTHORIZATION_BURST=30",
		"GATEHOUSE_RATE_LIMIT_CLIENT_REGISTRATION_BURST=10",
		"GATEHOUSE_RATE_LIMIT_DEVICE_AUTHORIZATION_BURST=10")
	device := e.deviceClient(t) // newOAuthEnv registered one client, this is the second
	meta := map[string]any{
		"client_name": "Flood", "client_uri": "https://flood.example/", "redirect_uris": []string{"http://127.0.0.1/callback"},
		"application_type": "native", "token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
	}
	body, _ := json.Marshal(meta)
	do := func(req *http.Request, err error) *http.Response {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := plainHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	refused := func(resp *http.Response, otherwise ...int) bool {
		t.Helper()
		if resp.StatusCode != http.StatusTooManyRequests {
			if len(otherwise) > 0 && resp.StatusCode != otherwise[0] {
				t.Fatalf("%s answered %d, want %d", resp.Request.URL.Path, resp.StatusCode, otherwise[0])
			}
			return false
		}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 {
			t.Fatalf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
		}
		return true
	}
	untilRefused(t, "client registrations", 8, time.Minute, func() bool {
		req, err := http.NewRequest(http.MethodPost, e.issuer+"oauth2/registration", bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return refused(do(req, err), http.StatusCreated)
	})
	authorize := e.issuer + "authorize?" + url.Values{"client_id": {e.client.ClientID}, "response_type": {"code"}}.Encode()
	untilRefused(t, "authorization requests", 30, 2*time.Second, func() bool {
		return refused(do(http.NewRequest(http.MethodGet, authorize, nil)))
	})
	form := url.Values{"client_id": {device.ClientID}}.Encode()
	untilRefused(t, "device authorizations", 10, time.Minute, func() bool {
		req, err := http.NewRequest(http.MethodPost, e.issuer+"oauth2/device", strings.NewReader(form))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		return refused(do(req, err), http.StatusOK)
	})
}
