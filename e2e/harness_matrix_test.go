package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// compatPeer numbers the loopback addresses the tests' clients come from: the
// password-login limit is 3 a minute per address, so each client that logs
// in gets an address of its own unless it is testing that limit.
var compatPeer atomic.Int32

// matrixClient is an HTTP client speaking from one loopback address.
type matrixClient struct {
	base string
	c    *http.Client
}

func newMatrixClient(e *oauthEnv) *matrixClient {
	n := compatPeer.Add(1)
	ip := net.IPv4(127, 0, byte(1+n/250), byte(1+n%250))
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	return &matrixClient{base: e.issuer, c: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DialContext: dialer.DialContext},
	}}
}

// matrixReply is an answer: status, headers and the decoded JSON body.
type matrixReply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (m *matrixClient) do(t *testing.T, method, path, token, body string) matrixReply {
	t.Helper()
	req, err := http.NewRequest(method, m.base+strings.TrimPrefix(path, "/"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := m.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	r := matrixReply{status: resp.StatusCode, header: resp.Header, raw: readAll(resp.Body)}
	if r.raw != "" {
		if err := json.Unmarshal([]byte(r.raw), &r.body); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %q", method, path, r.status, r.raw)
		}
	}
	return r
}

func (m *matrixClient) post(t *testing.T, path, token string, body any) matrixReply {
	t.Helper()
	b, ok := body.(string)
	if !ok {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		b = string(raw)
	}
	return m.do(t, http.MethodPost, path, token, b)
}

// wantMatrixError checks a Matrix error answer.
func wantMatrixError(t *testing.T, what string, r matrixReply, status int, code string) {
	t.Helper()
	if r.status != status || r.body["errcode"] != code {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.raw, status, code)
	}
	if msg, _ := r.body["error"].(string); msg == "" {
		t.Fatalf("%s: no error message: %s", what, r.raw)
	}
}

// login logs in with a password from a fresh address and returns the answer.
func compatLogin(t *testing.T, e *oauthEnv, body map[string]any) map[string]any {
	t.Helper()
	r := newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", body)
	if r.status != http.StatusOK {
		t.Fatalf("login %v: %d %s", body, r.status, r.raw)
	}
	return r.body
}

func alicePassword(extra map[string]any) map[string]any {
	body := map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"},
		"password":   "alice's password",
	}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

// oauthAccessToken runs the authorization code flow for alice and returns
// the access token.
func oauthAccessToken(t *testing.T, e *oauthEnv) string {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, e.client, oauth2.S256ChallengeOption(verifier))
	tok, err := e.client.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}
