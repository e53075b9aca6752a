package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const secret = "a-shared-secret-for-tests"

// call is one request the test server received.
type call struct {
	method, path, query string
	body                map[string]any
}

// recorder is a real HTTP server answering like Synapse's /_synapse/mas/
// API: it checks the secret, records every call and answers with the status
// the test chose for the path (200 otherwise).
type recorder struct {
	mu     sync.Mutex
	calls  []call
	status map[string]int
	body   map[string]string
}

func newRecorder(t *testing.T) (*recorder, *Client) {
	t.Helper()
	r := &recorder{status: map[string]int{}, body: map[string]string{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/base", secret, WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get("Authorization") != "Bearer "+secret {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errcode":"M_FORBIDDEN","error":"This endpoint must only be called by MAS"}`)
		return
	}
	c := call{method: req.Method, path: req.URL.Path, query: req.URL.RawQuery}
	if req.Method == http.MethodPost {
		if req.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		json.NewDecoder(req.Body).Decode(&c.body)
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	status, ok := r.status[req.URL.Path]
	body := r.body[req.URL.Path]
	r.mu.Unlock()
	if !ok {
		status = http.StatusOK
	}
	if body == "" {
		body = "{}"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func (r *recorder) last(t *testing.T) call {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		t.Fatal("no call reached the server")
	}
	return r.calls[len(r.calls)-1]
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// Every method sends the body Synapse's /_synapse/mas/ resources expect, to
// the path under the configured base URL, with the secret.
func TestHomeserverClientRequests(t *testing.T) {
	r, c := newRecorder(t)
	ctx := context.Background()
	tests := []struct {
		name     string
		do       func() error
		path     string
		wantBody string
	}{
		{"provision everything", func() error {
			_, err := c.ProvisionUser(ctx, ProvisionRequest{Localpart: "alice", DisplayName: Some("Alice"), Emails: Some([]string{"a@example.com"}), Locked: Some(false)})
			return err
		}, "/base/_synapse/mas/provision_user", `{"localpart":"alice","locked":false,"set_displayname":"Alice","set_emails":["a@example.com"]}`},
		{"provision unsets", func() error {
			_, err := c.ProvisionUser(ctx, ProvisionRequest{Localpart: "alice", DisplayName: Some(""), Emails: Some([]string(nil))})
			return err
		}, "/base/_synapse/mas/provision_user", `{"localpart":"alice","unset_displayname":true,"unset_emails":true}`},
		{"provision bare", func() error {
			_, err := c.ProvisionUser(ctx, ProvisionRequest{Localpart: "alice"})
			return err
		}, "/base/_synapse/mas/provision_user", `{"localpart":"alice"}`},
		{"delete user", func() error { return c.DeleteUser(ctx, "alice", true) }, "/base/_synapse/mas/delete_user", `{"erase":true,"localpart":"alice"}`},
		{"reactivate", func() error { return c.ReactivateUser(ctx, "alice") }, "/base/_synapse/mas/reactivate_user", `{"localpart":"alice"}`},
		{"upsert device", func() error { return c.UpsertDevice(ctx, "alice", "DEV", "Phone") }, "/base/_synapse/mas/upsert_device", `{"device_id":"DEV","display_name":"Phone","localpart":"alice"}`},
		{"upsert device unnamed", func() error { return c.UpsertDevice(ctx, "alice", "DEV", "") }, "/base/_synapse/mas/upsert_device", `{"device_id":"DEV","localpart":"alice"}`},
		{"rename device", func() error { return c.UpdateDeviceDisplayName(ctx, "alice", "DEV", "Tablet") }, "/base/_synapse/mas/update_device_display_name", `{"device_id":"DEV","display_name":"Tablet","localpart":"alice"}`},
		{"delete device", func() error { return c.DeleteDevice(ctx, "alice", "DEV") }, "/base/_synapse/mas/delete_device", `{"device_id":"DEV","localpart":"alice"}`},
		{"sync devices", func() error { return c.SyncDevices(ctx, "alice", []string{"A", "B"}) }, "/base/_synapse/mas/sync_devices", `{"devices":["A","B"],"localpart":"alice"}`},
		{"sync no devices", func() error { return c.SyncDevices(ctx, "alice", nil) }, "/base/_synapse/mas/sync_devices", `{"devices":[],"localpart":"alice"}`},
		{"cross-signing reset", func() error { return c.AllowCrossSigningReset(ctx, "alice") }, "/base/_synapse/mas/allow_cross_signing_reset", `{"localpart":"alice"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); err != nil {
				t.Fatal(err)
			}
			got := r.last(t)
			if got.method != http.MethodPost || got.path != tt.path || jsonOf(got.body) != tt.wantBody {
				t.Fatalf("got %s %s %s, want POST %s %s", got.method, got.path, jsonOf(got.body), tt.path, tt.wantBody)
			}
		})
	}
}

func TestHomeserverClientAnswers(t *testing.T) {
	r, c := newRecorder(t)
	ctx := context.Background()

	r.status["/base/_synapse/mas/provision_user"] = http.StatusCreated
	if created, err := c.ProvisionUser(ctx, ProvisionRequest{Localpart: "bob"}); err != nil || !created {
		t.Fatalf("201: created %v, err %v", created, err)
	}
	r.status["/base/_synapse/mas/provision_user"] = http.StatusOK
	if created, err := c.ProvisionUser(ctx, ProvisionRequest{Localpart: "bob"}); err != nil || created {
		t.Fatalf("200: created %v, err %v", created, err)
	}

	r.body["/base/_synapse/mas/query_user"] = `{"user_id":"@bob:example.org","display_name":"Bob","avatar_url":null,"is_suspended":false,"is_deactivated":true}`
	u, err := c.QueryUser(ctx, "bob/x")
	if err != nil || u.UserID != "@bob:example.org" || u.DisplayName != "Bob" || !u.IsDeactivated {
		t.Fatalf("query_user: %+v, %v", u, err)
	}
	if got := r.last(t); got.method != http.MethodGet || got.query != "localpart=bob%2Fx" {
		t.Fatalf("query_user sent %s ?%s", got.method, got.query)
	}

	for _, tt := range []struct {
		status  int
		body    string
		avail   bool
		wantErr bool
	}{
		{200, `{}`, true, false},
		{400, `{"errcode":"M_USER_IN_USE","error":"User ID already taken."}`, false, false},
		{400, `{"errcode":"M_INVALID_USERNAME","error":"bad"}`, false, false},
		{400, `{"errcode":"M_EXCLUSIVE","error":"appservice"}`, false, false},
		{400, `{"errcode":"M_MISSING_PARAM","error":"Missing localpart"}`, false, true},
		{502, `bad gateway`, false, true},
	} {
		r.status["/base/_synapse/mas/is_localpart_available"] = tt.status
		r.body["/base/_synapse/mas/is_localpart_available"] = tt.body
		avail, err := c.IsLocalpartAvailable(ctx, "carol")
		if avail != tt.avail || (err != nil) != tt.wantErr {
			t.Errorf("is_localpart_available %d %s: available %v, err %v", tt.status, tt.body, avail, err)
		}
	}
}

// Failures name the call and say whether repeating it may help: no answer,
// 5xx and 429 may; any other 4xx will not.
func TestHomeserverClientErrors(t *testing.T) {
	r, c := newRecorder(t)
	ctx := context.Background()
	for _, tt := range []struct {
		status    int
		body      string
		retryable bool
		notFound  bool
		want      string
	}{
		{500, `{"errcode":"M_UNKNOWN","error":"Internal server error"}`, true, false, "homeserver upsert_device: HTTP 500 (M_UNKNOWN: Internal server error) [retryable]"},
		{503, ``, true, false, "homeserver upsert_device: HTTP 503 [retryable]"},
		{429, `{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests"}`, true, false, "HTTP 429 (M_LIMIT_EXCEEDED: Too Many Requests) [retryable]"},
		{404, `{"errcode":"M_NOT_FOUND","error":"User not found"}`, false, true, "homeserver upsert_device: HTTP 404 (M_NOT_FOUND: User not found) [permanent]"},
		{400, `{"errcode":"M_BAD_JSON","error":"bad"}`, false, false, "HTTP 400 (M_BAD_JSON: bad) [permanent]"},
		{302, ``, false, false, "HTTP 302 [permanent]"},
	} {
		r.status["/base/_synapse/mas/upsert_device"] = tt.status
		r.body["/base/_synapse/mas/upsert_device"] = tt.body
		err := c.UpsertDevice(ctx, "alice", "DEV", "")
		var e *Error
		if !errors.As(err, &e) || e.Op != "upsert_device" || e.Status != tt.status {
			t.Errorf("%d: err %v", tt.status, err)
			continue
		}
		if IsRetryable(err) != tt.retryable || IsPermanent(err) == tt.retryable || IsNotFound(err) != tt.notFound || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%d: %q retryable=%v notFound=%v; want %q retryable=%v", tt.status, err, IsRetryable(err), IsNotFound(err), tt.want, tt.retryable)
		}
	}

	// The wrong secret is refused for good.
	bad, _ := New(strings.TrimSuffix(c.base.String(), "/base/"), "the-wrong-secret-entirely")
	if err := bad.ReactivateUser(ctx, "alice"); !IsPermanent(err) || !strings.Contains(err.Error(), "HTTP 403 (M_FORBIDDEN") {
		t.Errorf("wrong secret: %v", err)
	}
}

// A homeserver that is not there, or too slow, is a retryable failure that
// never leaks the secret; a cancelled context stops the call at once.
func TestHomeserverClientNoAnswer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	down, _ := New("http://"+addr+"/", secret)
	err = down.DeleteDevice(context.Background(), "alice", "DEV")
	if !IsRetryable(err) || !strings.HasPrefix(err.Error(), "homeserver delete_device: no answer:") || strings.Contains(err.Error(), secret) {
		t.Fatalf("refused connection: %v", err)
	}

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer slow.Close()
	defer close(release)
	c, _ := New(slow.URL, secret, WithTimeout(200*time.Millisecond))
	start := time.Now()
	err = c.SyncDevices(context.Background(), "alice", nil)
	if !IsRetryable(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("slow homeserver: %v after %s", err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.SyncDevices(ctx, "alice", nil); err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestHomeserverClientNew(t *testing.T) {
	for _, tt := range []struct{ url, secret string }{
		{"synapse:8008", secret}, {"ftp://synapse/", secret}, {"http:///x", secret}, {"http://synapse:8008/", ""},
	} {
		if _, err := New(tt.url, tt.secret); err == nil {
			t.Errorf("New(%q, %q) accepted", tt.url, tt.secret)
		}
	}
	c, err := New("https://matrix.example.org/prefix?x=1", secret)
	if err != nil || c.base.String() != "https://matrix.example.org/prefix/" {
		t.Fatalf("base %v, %v", c.base, err)
	}
}
