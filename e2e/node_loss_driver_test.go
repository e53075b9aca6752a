package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// The steady mix of the node loss drill and the record of every answer.

// Classes of answers.
const (
	classOK         = "ok"          // the answer the step expects
	classUnexpected = "unexpected"  // another 2xx or 3xx
	class4xx        = "4xx"         // a client error
	class503        = "503"         // unavailable: the clear failure
	class5xx        = "5xx"         // a server error other than 503: a bug
	classFront      = "front-502"   // the replica died during the request
	classHang       = "no answer"   // nothing before the client gave up
	classConn       = "front error" // the front could not be reached
)

// answer is one request and how it ended.
type answer struct {
	op         string
	start, end time.Time
	class      string
	status     int
	body       string
}

// tokenState is what introspection must say of a token at the end.
type tokenState int

const (
	expectActive tokenState = iota
	expectInactive
	uncertain // a request about it failed: it may or may not have happened
)

// codeSession is a session from the code flow and its current tokens.
type codeSession struct {
	access, refresh string
	done            bool // a refresh failed: left alone
}

// faultMark is a moment of the drill: a fault or a recovery.
type faultMark struct {
	what string
	at   time.Time
}

// driver runs the mix against the HTTP front.
type driver struct {
	t        *testing.T
	dep      *scaled
	base     string
	deadline time.Duration
	client   *http.Client

	publicID       string
	ccID, ccSecret string
	users          []string

	mu       sync.Mutex
	answers  []answer
	tokens   map[string]tokenState
	origin   map[string]string // how and when each token was issued
	order    []string          // tokens in the order they were issued
	sessions []*codeSession
	ccLive   []string // client_credentials tokens not yet revoked
	pairs    int      // token responses answered 200
	marks    []faultMark
	began    time.Time

	stopCh chan struct{}
	wg     sync.WaitGroup
}

// callback is the public client's redirect URI.
const callback = "http://127.0.0.1/callback"

func newDriver(t *testing.T, dep *scaled, deadline time.Duration) *driver {
	t.Helper()
	d := &driver{t: t, dep: dep, base: dep.front.base(), deadline: deadline, tokens: map[string]tokenState{}, origin: map[string]string{}, stopCh: make(chan struct{}),
		client: &http.Client{Timeout: deadline + 5*time.Second, CheckRedirect: noRedirects,
			Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	e := &oauthEnv{issuer: d.base}
	reg := e.register(t, map[string]any{
		"client_uri": "https://client.example.com/", "redirect_uris": []string{callback},
		"application_type": "native", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	}, http.StatusCreated)
	d.publicID = reg["client_id"].(string)
	d.ccID, d.ccSecret = registerCCClient(t, d.base)
	conn := testkit.DialAutoTo(t, dep.grpc["accounts"].addr(), []byte(dep.secret))
	for i := range 3 {
		name := fmt.Sprintf("drill%d", i)
		if _, err := accountsv1.NewAccountsServiceClient(conn).Register(context.Background(),
			&accountsv1.RegisterRequest{Username: name, Password: name + "'s password"}); err != nil {
			dep.logProjections(t)
			t.Fatalf("register %s: %v", name, err)
		}
		d.users = append(d.users, name)
	}
	return d
}

// start runs the workers: one signing in through the pages, one refreshing,
// two asking for client_credentials tokens, two introspecting, one revoking.
func (d *driver) start() {
	d.began = time.Now()
	d.loop(20*time.Millisecond, d.signInFlow)
	d.loop(50*time.Millisecond, d.refresh)
	d.loop(30*time.Millisecond, d.clientCredentials)
	d.loop(30*time.Millisecond, d.clientCredentials)
	d.loop(10*time.Millisecond, d.introspect)
	d.loop(10*time.Millisecond, d.introspect)
	d.loop(150*time.Millisecond, d.revoke)
}

func (d *driver) loop(pause time.Duration, step func(i int)) {
	d.wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-d.stopCh:
				return
			default:
			}
			step(i)
			if pause > 0 {
				time.Sleep(pause)
			}
		}
	})
}

// stop ends the mix and waits for the last requests.
func (d *driver) stop() {
	close(d.stopCh)
	d.wg.Wait()
}

// fault notes a moment of the drill.
func (d *driver) fault(what string, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.marks = append(d.marks, faultMark{what, at})
	d.t.Logf("+%5.1fs %s", at.Sub(d.began).Seconds(), what)
}

// send makes one request, records its answer and returns it; ok tells
// whether the status is the one the step expects.
func (d *driver) send(c *http.Client, op string, req *http.Request, want int) (*http.Response, string, bool) {
	a := answer{op: op, start: time.Now()}
	resp, err := c.Do(req)
	a.end = time.Now()
	var body string
	switch {
	case err != nil && strings.Contains(err.Error(), "Client.Timeout"):
		a.class, a.body = classHang, err.Error()
	case err != nil:
		a.class, a.body = classConn, err.Error()
	default:
		body = readAll(resp.Body)
		resp.Body.Close()
		a.status, a.body = resp.StatusCode, body
		switch {
		case resp.Header.Get(frontErrorHeader) != "":
			a.class, a.body = classFront, resp.Header.Get(frontErrorHeader)
		case resp.StatusCode == want:
			a.class = classOK
		case resp.StatusCode == http.StatusServiceUnavailable:
			a.class = class503
		case resp.StatusCode >= 500:
			a.class = class5xx
		case resp.StatusCode >= 400:
			a.class = class4xx
		default:
			a.class = classUnexpected
		}
	}
	if len(a.body) > 300 {
		a.body = a.body[:300]
	}
	d.mu.Lock()
	d.answers = append(d.answers, a)
	d.mu.Unlock()
	return resp, body, a.class == classOK
}

func formRequest(method, u string, v url.Values) *http.Request {
	req, _ := http.NewRequest(method, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// resolve makes a Location absolute against the front.
func (d *driver) resolve(loc string) string {
	b, _ := url.Parse(d.base)
	u, err := b.Parse(loc)
	if err != nil {
		return d.base
	}
	return u.String()
}

// signInFlow is a person signing in through the pages and approving the
// client, and the client exchanging the code.
func (d *driver) signInFlow(i int) {
	user := d.users[i%len(d.users)]
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: noRedirects, Timeout: d.client.Timeout, Transport: d.client.Transport}
	verifier := oauth2.GenerateVerifier()
	q := url.Values{"response_type": {"code"}, "client_id": {d.publicID}, "redirect_uri": {callback},
		"scope": {"openid urn:matrix:client:api:*"}, "state": {"drill"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	req, _ := http.NewRequest(http.MethodGet, d.base+"authorize?"+q.Encode(), nil)
	resp, _, ok := d.send(c, "sign-in: authorize", req, http.StatusSeeOther)
	if !ok || d.failedBack("sign-in: authorize", resp.Header.Get("Location")) {
		return
	}
	login := d.resolve(resp.Header.Get("Location"))
	next, ok := d.postPage(c, "sign-in: login", login, url.Values{"username": {user}, "password": {user + "'s password"}})
	if !ok || d.failedBack("sign-in: login", next) {
		return
	}
	back, ok := d.postPage(c, "sign-in: consent", d.resolve(next), url.Values{"action": {"allow"}})
	if !ok || d.failedBack("sign-in: consent", back) {
		return
	}
	u, err := url.Parse(back)
	if err != nil || u.Query().Get("code") == "" {
		d.record("sign-in: consent", classUnexpected, "no code in "+back)
		return
	}
	_, body, ok := d.send(d.client, "sign-in: token", formRequest(http.MethodPost, d.base+"oauth2/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")}, "redirect_uri": {callback},
		"client_id": {d.publicID}, "code_verifier": {verifier}}), http.StatusOK)
	if !ok {
		return
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal([]byte(body), &tok)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pairs++
	d.track(tok.AccessToken, expectActive)
	d.sessions = append(d.sessions, &codeSession{access: tok.AccessToken, refresh: tok.RefreshToken})
}

// failedBack reports whether a step sent the browser back to the client
// with an error instead of on to the next page, and records it: the
// authorization server's way to say 503 to the client is the error
// temporarily_unavailable (RFC 6749 §4.1.2.1).
func (d *driver) failedBack(op, loc string) bool {
	if !strings.HasPrefix(loc, callback) {
		return false
	}
	u, _ := url.Parse(loc)
	switch e := u.Query().Get("error"); e {
	case "":
		return false
	case "temporarily_unavailable":
		d.record(op, class503, loc)
	default:
		d.record(op, class4xx, loc)
	}
	return true
}

// postPage loads a page, posts its form back and returns where it leads.
func (d *driver) postPage(c *http.Client, op, page string, values url.Values) (string, bool) {
	req, _ := http.NewRequest(http.MethodGet, page, nil)
	_, body, ok := d.send(c, op+" page", req, http.StatusOK)
	if !ok {
		return "", false
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		d.record(op, classUnexpected, "no CSRF token on "+page)
		return "", false
	}
	values.Set("csrf", m[1])
	post := formRequest(http.MethodPost, page, values)
	post.Header.Set("Origin", strings.TrimSuffix(d.base, "/"))
	resp, _, ok := d.send(c, op, post, http.StatusSeeOther)
	if !ok {
		return "", false
	}
	return resp.Header.Get("Location"), true
}

// record notes an answer judged without a request of its own.
func (d *driver) record(op, class, body string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	d.answers = append(d.answers, answer{op: op, start: now, end: now, class: class, body: body})
}

// track notes an access token; the caller holds mu. (Refresh tokens are
// never active to the homeserver; their fate shows in the refreshes.)
func (d *driver) track(token string, st tokenState) {
	if token == "" {
		return
	}
	if _, ok := d.tokens[token]; !ok {
		d.order = append(d.order, token)
		d.origin[token] = fmt.Sprintf("issued at +%.1fs", time.Since(d.began).Seconds())
	}
	d.tokens[token] = st
}

// refresh rotates the tokens of the code flow's sessions in turn.
func (d *driver) refresh(i int) {
	d.mu.Lock()
	var s *codeSession
	for k := range d.sessions {
		if c := d.sessions[(i+k)%len(d.sessions)]; !c.done {
			s = c
			break
		}
	}
	if s != nil {
		s.done = true // while in flight
	}
	d.mu.Unlock()
	if s == nil {
		time.Sleep(100 * time.Millisecond)
		return
	}
	_, body, ok := d.send(d.client, "refresh", formRequest(http.MethodPost, d.base+"oauth2/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {s.refresh}, "client_id": {d.publicID}}), http.StatusOK)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !ok {
		d.track(s.access, uncertain)
		return
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal([]byte(body), &tok)
	d.pairs++
	d.track(s.access, expectInactive) // rotated out
	s.access, s.refresh, s.done = tok.AccessToken, tok.RefreshToken, false
	d.track(s.access, expectActive)
}

// clientCredentials asks for a token as the confidential client.
func (d *driver) clientCredentials(int) {
	req := formRequest(http.MethodPost, d.base+"oauth2/token", url.Values{"grant_type": {"client_credentials"}})
	req.SetBasicAuth(d.ccID, d.ccSecret)
	_, body, ok := d.send(d.client, "client_credentials", req, http.StatusOK)
	if !ok {
		return
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal([]byte(body), &tok)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pairs++
	d.track(tok.AccessToken, expectActive)
	d.ccLive = append(d.ccLive, tok.AccessToken)
}

// introspect asks about a known token as the homeserver does.
func (d *driver) introspect(int) {
	d.mu.Lock()
	if len(d.order) == 0 {
		d.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		return
	}
	token := d.order[rand.IntN(len(d.order))]
	d.mu.Unlock()
	req := formRequest(http.MethodPost, d.base+"oauth2/introspect", url.Values{"token": {token}})
	req.Header.Set("Authorization", "Bearer "+homeserverSecret)
	d.send(d.client, "introspection", req, http.StatusOK)
}

// revoke revokes the oldest client_credentials token still live.
func (d *driver) revoke(int) {
	d.mu.Lock()
	if len(d.ccLive) < 10 {
		d.mu.Unlock()
		return
	}
	token := d.ccLive[0]
	d.ccLive = d.ccLive[1:]
	d.mu.Unlock()
	req := formRequest(http.MethodPost, d.base+"oauth2/revoke", url.Values{"token": {token}})
	req.SetBasicAuth(d.ccID, d.ccSecret)
	_, _, ok := d.send(d.client, "revocation", req, http.StatusOK)
	d.mu.Lock()
	defer d.mu.Unlock()
	if ok {
		d.track(token, expectInactive)
	} else {
		d.track(token, uncertain)
	}
}

// issuedPairs is how many token responses were answered 200.
func (d *driver) issuedPairs() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pairs
}

// report prints, for each moment of the drill, the throughput before and
// after it and the window in which requests failed.
func (d *driver) report() {
	t := d.t
	d.mu.Lock()
	defer d.mu.Unlock()
	end := time.Now()
	okRate := func(from, to time.Time) float64 {
		n := 0
		for _, a := range d.answers {
			if a.class == classOK && !a.end.Before(from) && a.end.Before(to) {
				n++
			}
		}
		return float64(n) / to.Sub(from).Seconds()
	}
	counts := map[string]int{}
	for _, a := range d.answers {
		counts[a.class]++
	}
	t.Logf("%d requests in %v: %v; %d token pairs issued, %d tokens tracked", len(d.answers), end.Sub(d.began).Round(time.Second), counts, d.pairs, len(d.tokens))
	const span = 3 * time.Second
	for i, m := range d.marks {
		next := end
		if i+1 < len(d.marks) {
			next = d.marks[i+1].at
		}
		var failed []answer
		for _, a := range d.answers {
			if a.class != classOK && !a.start.Before(m.at) && a.start.Before(next) {
				failed = append(failed, a)
			}
		}
		window := "no request failed"
		if len(failed) > 0 {
			first, last := failed[0].start, failed[0].end
			byClass := map[string]int{}
			for _, a := range failed {
				if a.start.Before(first) {
					first = a.start
				}
				if a.end.After(last) {
					last = a.end
				}
				byClass[a.op+" "+a.class]++
			}
			window = fmt.Sprintf("%d failed %v, from +%.1fs to +%.1fs", len(failed), byClass, first.Sub(m.at).Seconds(), last.Sub(m.at).Seconds())
		}
		t.Logf("%s: ok/s %.0f in the %v before, %.0f in the %v after, %.0f at the end of the %v window; %s",
			m.what, okRate(m.at.Add(-span), m.at), span, okRate(m.at, m.at.Add(span)), span,
			okRate(next.Add(-span), next), next.Sub(m.at).Round(100*time.Millisecond), window)
	}
	var line strings.Builder
	for s := d.began; s.Before(end); s = s.Add(time.Second) {
		for _, m := range d.marks {
			if !m.at.Before(s) && m.at.Before(s.Add(time.Second)) {
				line.WriteString("| ")
			}
		}
		fmt.Fprintf(&line, "%.0f ", okRate(s, s.Add(time.Second)))
	}
	t.Logf("ok/s each second (| marks a fault or recovery): %s", line.String())
}

// checkAnswers fails on any answer that is not a success, a 503, or a 502
// of the front for a request in flight on the killed replica, and on any
// request that took longer than the deadline.
func (d *driver) checkAnswers() {
	t := d.t
	d.mu.Lock()
	defer d.mu.Unlock()
	grace := d.deadline + 1500*time.Millisecond
	bad := map[string][]answer{}
	succeeded := map[string]int{}
	for _, a := range d.answers {
		if a.class == classOK {
			succeeded[a.op]++
		}
		switch {
		case a.end.Sub(a.start) > grace:
			bad["slower than the deadline"] = append(bad["slower than the deadline"], a)
		case a.class == classOK, a.class == class503, a.class == classFront:
		default:
			bad[a.class] = append(bad[a.class], a)
		}
	}
	for _, op := range []string{"sign-in: token", "refresh", "client_credentials", "introspection", "revocation"} {
		if succeeded[op] == 0 {
			t.Errorf("no %s succeeded: the mix did not run", op)
		}
	}
	for what, as := range bad {
		sort.Slice(as, func(i, j int) bool { return as[i].start.Before(as[j].start) })
		for k, a := range as {
			if k == 5 {
				t.Errorf("... and %d more %s", len(as)-5, what)
				break
			}
			t.Errorf("%s: %s at +%.1fs took %v: %d %s", what, a.op, a.start.Sub(d.began).Seconds(), a.end.Sub(a.start).Round(time.Millisecond), a.status, a.body)
		}
	}
}

// checkTokens introspects every token whose fate is known on every token
// replica: active unless revoked or rotated out.
func (d *driver) checkTokens() {
	t := d.t
	d.mu.Lock()
	type want struct {
		token  string
		active bool
	}
	var wants []want
	unsure := 0
	for _, tok := range d.order {
		switch d.tokens[tok] {
		case expectActive:
			wants = append(wants, want{tok, true})
		case expectInactive:
			wants = append(wants, want{tok, false})
		default:
			unsure++
		}
	}
	d.mu.Unlock()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wrong []string
	)
	active := 0
	for _, w := range wants {
		if w.active {
			active++
		}
	}
	for _, r := range d.dep.replicas["token"] {
		base := "http://" + r.http + "/"
		next := make(chan want)
		for range 4 {
			wg.Go(func() {
				for w := range next {
					req := formRequest(http.MethodPost, base+"oauth2/introspect", url.Values{"token": {w.token}})
					req.Header.Set("Authorization", "Bearer "+homeserverSecret)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						mu.Lock()
						wrong = append(wrong, err.Error())
						mu.Unlock()
						continue
					}
					var out struct {
						Active bool `json:"active"`
					}
					raw := readAll(resp.Body)
					resp.Body.Close()
					if json.Unmarshal([]byte(raw), &out) != nil || resp.StatusCode != http.StatusOK || out.Active != w.active {
						mu.Lock()
						wrong = append(wrong, fmt.Sprintf("%s: %s… (%s): want active=%v, got %d %s", base, w.token[:8], d.origin[w.token], w.active, resp.StatusCode, raw))
						mu.Unlock()
					}
				}
			})
		}
		for _, w := range wants {
			next <- w
		}
		close(next)
		wg.Wait()
	}
	t.Logf("introspected %d tokens on each token replica (%d must be active, %d revoked or rotated out); %d left out whose last request failed",
		len(wants), active, len(wants)-active, unsure)
	if len(wrong) > 0 {
		sort.Strings(wrong)
		t.Errorf("%d wrong introspections:\n%s", len(wrong), strings.Join(wrong[:min(len(wrong), 40)], "\n"))
	}
	if active == 0 {
		t.Error("no token to check")
	}
}
