package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestPostgresCrashUnderLoad kills the private PostgreSQL under a running
// `gatehouse serve` while clients keep asking for tokens: the process starts
// it again by itself and is ready within 10 s, no request waits longer than
// the configured deadline, requests made while the database was down fail
// with 503 and nothing worse, and every token that was answered 200 still
// introspects active afterwards, while no session is left whose tokens no
// client got (a request that failed after recording its session ends it).
func TestPostgresCrashUnderLoad(t *testing.T) {
	const deadline = 3 * time.Second
	natsAddr := freeAddr(t)
	s := startServe(t, dataDir(t), "GATEHOUSE_MATRIX_SECRET="+homeserverSecret, "GATEHOUSE_REQUEST_TIMEOUT="+deadline.String(),
		"GATEHOUSE_NATS_LISTEN="+natsAddr)
	base := "http://" + s.http + "/"
	id, secret := registerCCClient(t, base)

	type answer struct {
		status  int
		token   string
		elapsed time.Duration
		body    string
	}
	var (
		mu      sync.Mutex
		answers []answer
		wg      sync.WaitGroup
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: time.Minute}
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, base+"oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(id, secret)
				start := time.Now()
				resp, err := client.Do(req)
				a := answer{elapsed: time.Since(start)}
				if err != nil {
					a.body = err.Error()
				} else {
					var body map[string]any
					raw := readAll(resp.Body)
					resp.Body.Close()
					json.Unmarshal([]byte(raw), &body)
					a.status, a.body = resp.StatusCode, raw
					a.token, _ = body["access_token"].(string)
				}
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}

	time.Sleep(time.Second)
	pid := postmasterPID(t, s.dataDir)
	killedAt := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Ready again by itself, with a new server.
	var sawUnready bool
	if err := waitFor(10*time.Second, func() (bool, error) {
		resp, err := http.Get("http://" + s.ops + "/ready")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			sawUnready = true
			return false, nil
		}
		return sawUnready && postmasterPID(t, s.dataDir) != pid, nil
	}); err != nil {
		t.Fatalf("not ready again within 10 s of the crash (unready seen: %v):\n%s", sawUnready, tail(s.log.String()))
	}
	t.Logf("ready again %v after the crash", time.Since(killedAt).Round(10*time.Millisecond))
	time.Sleep(2 * time.Second) // and serving again
	close(stop)
	wg.Wait()

	var ok, unavailable int
	for _, a := range answers {
		if a.elapsed > deadline+2*time.Second {
			t.Errorf("a request took %v, more than the %v deadline: %d %s", a.elapsed, deadline, a.status, a.body)
		}
		switch {
		case a.status == http.StatusOK && a.token != "":
			ok++
		case a.status == http.StatusServiceUnavailable:
			unavailable++
		default:
			t.Errorf("a request during the crash got %d: %s", a.status, a.body)
		}
	}
	t.Logf("%d tokens issued, %d requests answered 503", ok, unavailable)
	if ok == 0 {
		t.Fatal("no token was issued")
	}
	var delivered []string
	for _, a := range answers {
		if a.status == http.StatusOK {
			if got := introspectAt(t, base, a.token); got["active"] != true {
				t.Fatalf("a token answered 200 is not active after the crash: %v", got)
			}
			delivered = append(delivered, a.token)
		}
	}
	orphans, sessions := orphanSessions(t, s.dataDir, natsAddr, id, delivered)
	t.Logf("%d sessions recorded for %d tokens delivered; %d orphans", sessions, len(delivered), orphans)
	if orphans > 0 {
		t.Fatalf("%d sessions are left alive whose tokens no client got", orphans)
	}
}

// postmasterPID reads the pid of the private cluster's postmaster.
func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// registerCCClient registers a confidential client for client_credentials.
func registerCCClient(t *testing.T, base string) (id, secret string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"client_uri": "https://load.example.com/", "application_type": "web",
		"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"},
	})
	resp, err := http.Post(base+"oauth2/registration", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reg map[string]any
	json.NewDecoder(resp.Body).Decode(&reg)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %v", resp.StatusCode, reg)
	}
	return reg["client_id"].(string), reg["client_secret"].(string)
}
