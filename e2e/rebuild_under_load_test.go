package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Rebuild under load (issue 17): 3,000 valid and 100 revoked tokens are
// introspected throughout a rebuild of token.sessions and for
// postRebuildPolling after it swapped in, on a running `gatehouse serve`:
// not one wrong answer. Then the same after a crash and restart, with the
// rebuild asked for as soon as the process answers. Before, a rebuild
// emptied the tables (1,926 of 3,000 valid tokens read inactive) and
// replayed them (100 of 100 revoked tokens came back for a minute).
const (
	validTokens   = 3000
	revokedTokens = 100
	// postRebuildPolling is how long introspection is polled after the
	// rebuilt read model swapped in: the issue asks for two minutes.
	postRebuildPolling = 2 * time.Minute
	// pollRoundEvery paces the rounds after the swap (every token once per
	// round, in parallel batches); during the rebuild rounds follow each other.
	pollRoundEvery = 5 * time.Second
	// rebuildRate slows the rebuild down (gatehouse projections rebuild
	// --max-rate) so that it lasts several rounds.
	rebuildRate = "600"
)

func TestRebuildUnderLoad(t *testing.T) {
	t.Parallel() // mostly waiting: its two minutes of polling overlap the other long tests
	t.Run("rebuild", func(t *testing.T) {
		t.Parallel()
		rebuildUnderLoad(t, false)
	})
	t.Run("rebuild after a restart", func(t *testing.T) {
		t.Parallel()
		rebuildUnderLoad(t, true)
	})
}

func rebuildUnderLoad(t *testing.T, restart bool) {
	s := startServe(t, dataDir(t), "GATEHOUSE_MATRIX_SECRET="+homeserverSecret, "GATEHOUSE_ACCESS_TOKEN_TTL=1h")
	base := "http://" + s.http + "/"
	id, secret := registerCCClient(t, base)
	tokens := issueCCTokens(t, base, id, secret, validTokens+revokedTokens)
	want := make([]bool, len(tokens))
	for i := range tokens {
		want[i] = i < validTokens
	}
	for _, tok := range tokens[validTokens:] {
		revokeCC(t, base, id, secret, tok)
	}
	if restart {
		s = s.restart(t)
	}

	p := &poller{base: base, tokens: tokens, want: want}
	p.start(4)
	defer p.stop()
	began := time.Now()
	out := mustCLI(t, s, "projections", "rebuild", "token.sessions", "--max-rate", rebuildRate)
	roundsDuring := p.rounds.Load()
	took := time.Since(began)
	if !regexp.MustCompile(`building token\.sessions: v\d+ rebuild`).MatchString(out) || !strings.Contains(out, "rebuilt token.sessions up to event") {
		t.Errorf("the rebuild's output shows no progress:\n%s", out)
	}
	t.Logf("rebuild took %v, %d polling rounds meanwhile:\n%s", took.Round(time.Millisecond), roundsDuring, out)
	if roundsDuring < 1 {
		t.Errorf("not one round of polling completed during the rebuild")
	}
	p.pace(pollRoundEvery)
	time.Sleep(postRebuildPolling)
	p.stop()
	polls, wrong := p.polls.Load(), p.wrong.Load()
	t.Logf("%d introspections in %d rounds, %d wrong", polls, p.rounds.Load(), wrong)
	if wrong > 0 {
		t.Fatalf("%d of %d introspections were wrong; first: %v", wrong, polls, p.first.Load())
	}
	if p.rounds.Load() < 2 {
		t.Fatalf("only %d polling rounds", p.rounds.Load())
	}
}

// issueCCTokens asks for n client_credentials tokens, 8 at a time.
func issueCCTokens(t *testing.T, base, id, secret string, n int) []string {
	t.Helper()
	tokens := make([]string, n)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Value
	)
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				tok, err := ccToken(base, id, secret)
				if err != nil {
					fail.CompareAndSwap(nil, err.Error())
					return
				}
				tokens[i] = tok
			}
		})
	}
	wg.Wait()
	if f := fail.Load(); f != nil {
		t.Fatalf("issuing tokens: %v", f)
	}
	return tokens
}

// ccToken is one client_credentials token request.
func ccToken(base, id, secret string) (string, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body map[string]any
	raw := readAll(resp.Body)
	json.Unmarshal([]byte(raw), &body)
	tok, _ := body["access_token"].(string)
	if resp.StatusCode != http.StatusOK || tok == "" {
		return "", &httpError{status: resp.StatusCode, body: raw, retryAfter: resp.Header.Get("Retry-After")}
	}
	return tok, nil
}

// httpError is an unexpected HTTP answer.
type httpError struct {
	status     int
	body       string
	retryAfter string
}

func (e *httpError) Error() string { return http.StatusText(e.status) + ": " + e.body }

// revokeCC revokes a token as the client it was issued to (RFC 7009).
func revokeCC(t *testing.T, base, id, secret, token string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"oauth2/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if introspectAt(t, base, token)["active"] != false {
		t.Fatal("a revoked token is active")
	}
}

// poller introspects every token round after round, as a homeserver would,
// and counts the answers that are not what they must be (an error or a
// non-200 answer counts as wrong too).
type poller struct {
	base   string
	tokens []string
	want   []bool

	every  atomic.Int64 // pause between rounds (ns); 0: none
	polls  atomic.Int64
	wrong  atomic.Int64
	rounds atomic.Int64
	first  atomic.Value

	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// start polls with workers in parallel until stop.
func (p *poller) start(workers int) {
	p.done = make(chan struct{})
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	p.wg.Go(func() {
		for {
			began := time.Now()
			var next atomic.Int64
			var round sync.WaitGroup
			for range workers {
				round.Go(func() {
					for i := int(next.Add(1)) - 1; i < len(p.tokens); i = int(next.Add(1)) - 1 {
						select {
						case <-p.done:
							return
						default:
						}
						p.check(client, i)
					}
				})
			}
			round.Wait()
			select {
			case <-p.done:
				return
			default:
			}
			p.rounds.Add(1)
			if pause := time.Duration(p.every.Load()) - time.Since(began); pause > 0 {
				select {
				case <-p.done:
					return
				case <-time.After(pause):
				}
			}
		}
	})
}

// pace makes rounds start every d from now on.
func (p *poller) pace(d time.Duration) { p.every.Store(int64(d)) }

// stop ends the polling and waits for it.
func (p *poller) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}

// check introspects token i once.
func (p *poller) check(client *http.Client, i int) {
	req, _ := http.NewRequest(http.MethodPost, p.base+"oauth2/introspect", strings.NewReader(url.Values{"token": {p.tokens[i]}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+homeserverSecret)
	resp, err := client.Do(req)
	p.polls.Add(1)
	if err != nil {
		p.miss(i, "error: "+err.Error())
		return
	}
	defer resp.Body.Close()
	var body struct {
		Active bool `json:"active"`
	}
	raw := readAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(raw), &body) != nil {
		p.miss(i, resp.Status+": "+raw)
		return
	}
	if body.Active != p.want[i] {
		p.miss(i, raw)
	}
}

func (p *poller) miss(i int, answer string) {
	p.wrong.Add(1)
	what := "a revoked token"
	if p.want[i] {
		what = "a valid token"
	}
	p.first.CompareAndSwap(nil, what+" answered "+answer+" at "+time.Now().Format(time.RFC3339Nano))
}
