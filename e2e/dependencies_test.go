package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/platform/testkit"
)

// With an external PostgreSQL and NATS, `gatehouse serve` outlives either
// going away (issue 17): readiness turns false while one is down and true
// again once it is back, by itself, while liveness stays true; requests made meanwhile fail within the
// configured deadline instead of hanging; introspection of tokens already
// known keeps answering from memory; and once the dependency is back the
// process issues and introspects tokens again, without a restart.
func TestExternalDependenciesGoAwayAndComeBack(t *testing.T) {
	const deadline = 3 * time.Second
	db := testkit.StartPostgres(t)
	ns := testkit.StartNATS(t)
	secret, kek := make([]byte, 32), make([]byte, 32)
	rand.Read(secret)
	rand.Read(kek)
	s := startServe(t, dataDir(t),
		"GATEHOUSE_DATABASE_URL="+db.URL(), "GATEHOUSE_NATS_URL="+ns.ClientURL(),
		"GATEHOUSE_INTERNAL_SECRET="+hex.EncodeToString(secret), "GATEHOUSE_SECRETS_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(kek),
		"GATEHOUSE_MATRIX_SECRET="+homeserverSecret, "GATEHOUSE_REQUEST_TIMEOUT="+deadline.String())
	base := "http://" + s.http + "/"
	waitReady(t, s, true, "", 30*time.Second)
	id, clientSecret := registerCCClient(t, base)
	known := issueWhenBack(t, base, id, clientSecret)
	mustCLI(t, s, "user", "add", "--username", "alice", "--password", "correct horse battery staple")

	for _, dep := range []struct {
		name  string
		check string // the /ready check that must fail while it is away
		stop  func()
		start func()
		// issues says whether client_credentials still issues tokens: a
		// client's own session needs only the event log (waitsForReadModel).
		issues bool
	}{
		{"PostgreSQL", "postgres", func() { db.Stop(t) }, func() { db.Start(t) }, true},
		{"NATS", "nats", ns.Stop, func() { ns.Start(t) }, false},
	} {
		t.Run(dep.name, func(t *testing.T) {
			dep.stop()
			wentAway := time.Now()
			waitReady(t, s, false, dep.check, 15*time.Second)
			t.Logf("not ready %v after %s went away", time.Since(wentAway).Round(10*time.Millisecond), dep.name)
			if resp, err := http.Get("http://" + s.ops + "/live"); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("/live while %s is away: %v %v, want 200 (a liveness probe must not restart the process)", dep.name, resp, err)
			} else {
				resp.Body.Close()
			}

			began := time.Now()
			issued, err := ccToken(base, id, clientSecret)
			took := time.Since(began)
			var he *httpError
			switch {
			case dep.issues && err != nil:
				t.Errorf("a client_credentials request while %s is away: %v, want a token (it needs only the event log)", dep.name, err)
			case dep.issues:
				if got := introspectAt(t, base, issued); got["active"] != true {
					t.Errorf("a token issued while %s is away is not active: %v", dep.name, got)
				}
			case !errors.As(err, &he) || he.status != http.StatusServiceUnavailable || !strings.Contains(he.body, `"temporarily_unavailable"`) || he.retryAfter == "":
				t.Errorf("a token request while %s is away: %v (Retry-After %q), want 503 temporarily_unavailable with Retry-After", dep.name, err, retryAfterOf(he))
			}
			if took > deadline+2*time.Second {
				t.Errorf("a token request while %s is away took %v, more than the %v deadline", dep.name, took, deadline)
			}
			began = time.Now()
			status, errcode, retryAfter := compatPasswordLogin(t, base, "alice", "correct horse battery staple")
			if status != http.StatusServiceUnavailable || errcode != "M_UNKNOWN" || retryAfter == "" {
				t.Errorf("a Matrix login while %s is away: %d %s (Retry-After %q), want 503 M_UNKNOWN with Retry-After", dep.name, status, errcode, retryAfter)
			}
			if took := time.Since(began); took > deadline+2*time.Second {
				t.Errorf("a Matrix login while %s is away took %v, more than the %v deadline", dep.name, took, deadline)
			}
			if got := introspectAt(t, base, known); got["active"] != true {
				t.Errorf("a known token is not active while %s is away: %v", dep.name, got)
			}

			dep.start()
			back := time.Now()
			waitReady(t, s, true, "", 30*time.Second)
			t.Logf("ready %v after %s came back", time.Since(back).Round(10*time.Millisecond), dep.name)
			tok := issueWhenBack(t, base, id, clientSecret)
			if got := introspectAt(t, base, tok); got["active"] != true {
				t.Fatalf("a token issued after %s came back is not active: %v", dep.name, got)
			}
			select {
			case <-s.exited:
				t.Fatalf("gatehouse serve exited:\n%s", tail(s.log.String()))
			default:
			}
		})
	}
}

// waitReady waits until /ready answers ready (200) or not (503 naming the
// failing check).
func waitReady(t *testing.T, s *server, ready bool, failing string, within time.Duration) {
	t.Helper()
	var last string
	err := waitFor(within, func() (bool, error) {
		resp, err := http.Get("http://" + s.ops + "/ready")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		body := readAll(resp.Body)
		resp.Body.Close()
		last = resp.Status + " " + body
		if ready {
			return resp.StatusCode == http.StatusOK, nil
		}
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, failing), nil
	})
	if err != nil {
		t.Fatalf("/ready not %v within %v; last answer: %s\n%s", map[bool]string{true: "ready", false: "unready"}[ready], within, last, tail(s.log.String()))
	}
}

// issueWhenBack asks for a client_credentials token until one is issued (a
// process that just got a dependency back may still be reconnecting).
func issueWhenBack(t *testing.T, base, id, secret string) string {
	t.Helper()
	var (
		tok  string
		last error
	)
	if err := waitFor(30*time.Second, func() (bool, error) {
		tok, last = ccToken(base, id, secret)
		return last == nil, nil
	}); err != nil {
		t.Fatalf("no token issued: %v", last)
	}
	return tok
}

func retryAfterOf(he *httpError) string {
	if he == nil {
		return ""
	}
	return he.retryAfter
}

// compatPasswordLogin logs in through the Matrix compatibility API and
// returns the status, the errcode (if any) and Retry-After.
func compatPasswordLogin(t *testing.T, base, username, password string) (int, string, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"type": "m.login.password", "password": password,
		"identifier": map[string]any{"type": "m.id.user", "user": username}})
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Post(base+"_matrix/client/v3/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply struct {
		Errcode string `json:"errcode"`
	}
	json.NewDecoder(resp.Body).Decode(&reply)
	return resp.StatusCode, reply.Errcode, resp.Header.Get("Retry-After")
}
