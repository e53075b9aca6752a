package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// Issue 14: a tool written for MAS's admin API works against Gatehouse
// unchanged. masClient knows only MAS's published contract (the operations a
// moderation script uses, in testdata/mas_admin_v1_moderation.json): it finds
// each operation by its MAS operationId, and checks every answer against
// MAS's shapes, not Gatehouse's own document.
type masClient struct {
	base, token string
	ops         map[string][2]string // operationId → method, path template
	v           validator.Validator
	mu          sync.Mutex
}

func newMASClient(t *testing.T, base, token string) *masClient {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "mas_admin_v1_moderation.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	c := &masClient{base: strings.TrimSuffix(base, "/"), token: token, ops: map[string][2]string{}}
	for path, item := range doc.Paths {
		for method, op := range item {
			c.ops[op.OperationID] = [2]string{strings.ToUpper(method), path}
		}
	}
	d, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	c.v = v
	return c
}

// do calls a MAS operation and checks the answer against MAS's contract.
func (c *masClient) do(t *testing.T, op string, params map[string]string, query url.Values, body any) (int, map[string]any) {
	t.Helper()
	m, ok := c.ops[op]
	if !ok {
		t.Fatalf("MAS has no operation %s (in this client's copy)", op)
	}
	path := m[1]
	for k, v := range params {
		path = strings.ReplaceAll(path, "{"+k+"}", url.PathEscape(v))
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(m[0], u, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s: not JSON: %s", op, raw)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	c.mu.Lock()
	valid, verrs := c.v.ValidateHttpResponse(req, resp)
	c.mu.Unlock()
	if !valid {
		for _, e := range verrs {
			t.Errorf("%s → %d breaks MAS's contract: %s: %s %v", op, resp.StatusCode, e.Message, e.Reason, e.SchemaValidationErrors)
		}
		t.Fatalf("answer: %s", raw)
	}
	return resp.StatusCode, out
}

// The moderation session: find a user, lock them, list their sessions,
// finish one, unlock them, create a registration token — as a client of
// MAS's admin API, with a client_credentials token asking for urn:mas:admin
// (the scope tools written for MAS ask for), against the real binary.
// Every change is recorded as the admin client's, and the admin CLI can
// use the same token.
func TestAdminAPIModerationWithAMASClient(t *testing.T) {
	dir := t.TempDir()
	const botID, botSecret = "moderation-bot", "the moderation bot's secret, long enough"
	cfgFile := filepath.Join(dir, "gatehouse.yaml")
	cfg := "oauth:\n  admin_clients: [" + botID + "]\n  clients:\n    - client_id: " + botID + "\n      client_secret: \"" + botSecret +
		"\"\n      token_endpoint_auth_method: client_secret_basic\n      client_name: Moderation bot\n      grant_types: [client_credentials]\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newOAuthEnv(t, "GATEHOUSE_CONFIG="+cfgFile)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})
	// alice is signed in on two old-style devices and one application.
	phone := compatLogin(t, e, alicePassword(map[string]any{"device_id": "PHONE00001"}))["access_token"].(string)
	laptop := compatLogin(t, e, alicePassword(map[string]any{"device_id": "LAPTOP0001"}))["access_token"].(string)
	app := oauthAccessToken(t, e)

	// The bot's token, as MAS's documentation tells tools to get one.
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"urn:mas:admin"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(botID, botSecret)
	resp, err := plainHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	bearer, _ := tok["access_token"].(string)
	if resp.StatusCode != http.StatusOK || tok["scope"] != "urn:mas:admin" {
		t.Fatalf("the bot's token: %d %v", resp.StatusCode, tok)
	}
	mas := newMASClient(t, e.issuer, bearer)

	// Find the user.
	status, found := mas.do(t, "listUsers", nil, url.Values{"filter[search]": {"ali"}}, nil)
	users := found["data"].([]any)
	if status != http.StatusOK || len(users) != 1 {
		t.Fatalf("search: %d %v", status, found)
	}
	id := users[0].(map[string]any)["id"].(string)
	if status, u := mas.do(t, "getUserByUsername", map[string]string{"username": "alice"}, nil, nil); status != http.StatusOK || u["data"].(map[string]any)["id"] != id {
		t.Fatalf("by username: %d %v", status, u)
	}

	// Lock: every token of hers stops at once.
	if status, u := mas.do(t, "lockUser", map[string]string{"id": id}, nil, nil); status != http.StatusOK ||
		u["data"].(map[string]any)["attributes"].(map[string]any)["locked_at"] == nil {
		t.Fatalf("lock: %d %v", status, u)
	}
	for _, tk := range []string{phone, laptop, app} {
		if got := e.introspect(t, tk); got["active"] != false {
			t.Fatalf("a locked user's token: %v", got)
		}
	}
	if status, locked := mas.do(t, "listUsers", nil, url.Values{"filter[status]": {"locked"}}, nil); status != http.StatusOK || len(locked["data"].([]any)) != 1 {
		t.Fatalf("locked users: %d %v", status, locked)
	}

	// Her sessions.
	status, compat := mas.do(t, "listCompatSessions", nil, url.Values{"filter[user]": {id}, "filter[status]": {"active"}}, nil)
	devices := map[string]string{}
	for _, d := range compat["data"].([]any) {
		s := d.(map[string]any)
		devices[s["attributes"].(map[string]any)["device_id"].(string)] = s["id"].(string)
	}
	if status != http.StatusOK || len(devices) != 2 || devices["PHONE00001"] == "" {
		t.Fatalf("compat sessions: %d %v", status, compat)
	}
	if status, oauth := mas.do(t, "listOAuth2Sessions", nil, url.Values{"filter[user]": {id}}, nil); status != http.StatusOK || len(oauth["data"].([]any)) != 1 {
		t.Fatalf("OAuth sessions: %d %v", status, oauth)
	}

	// Finish the phone's session; finishing it again is refused.
	if status, s := mas.do(t, "finishCompatSession", map[string]string{"id": devices["PHONE00001"]}, nil, nil); status != http.StatusOK ||
		s["data"].(map[string]any)["attributes"].(map[string]any)["finished_at"] == nil {
		t.Fatalf("finish: %d %v", status, s)
	}
	if status, _ := mas.do(t, "finishCompatSession", map[string]string{"id": devices["PHONE00001"]}, nil, nil); status != http.StatusBadRequest {
		t.Fatalf("finish again: %d", status)
	}

	// Unlock: her other tokens work again, the finished one does not.
	if status, u := mas.do(t, "unlockUser", map[string]string{"id": id}, nil, nil); status != http.StatusOK ||
		u["data"].(map[string]any)["attributes"].(map[string]any)["locked_at"] != nil {
		t.Fatalf("unlock: %d %v", status, u)
	}
	for tk, active := range map[string]bool{phone: false, laptop: true, app: true} {
		if got := e.introspect(t, tk); got["active"] != active {
			t.Fatalf("after unlocking, a token: %v, want active %v", got, active)
		}
	}

	// Who uses what: the filters joining users and clients with the token
	// service's sessions. alice holds a live session of the application and
	// a live device; bob only a device.
	bob, err := accountsv1.NewAccountsServiceClient(e.conn).Register(context.Background(), &accountsv1.RegisterRequest{Username: "bob", Password: "bob's password"})
	if err != nil {
		t.Fatal(err)
	}
	compatLogin(t, e, map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "bob"}, "password": "bob's password"})
	appID, bobID := e.client.ClientID, bob.GetUser().GetId()
	ids := func(op string, q url.Values) []string {
		t.Helper()
		status, page := mas.do(t, op, nil, q, nil)
		if status != http.StatusOK {
			t.Fatalf("%s %v: %d %v", op, q, status, page)
		}
		var out []string
		items, _ := page["data"].([]any) // absent when empty
		for _, d := range items {
			out = append(out, d.(map[string]any)["id"].(string))
		}
		return out
	}
	usersOf := func(q url.Values) []string { t.Helper(); return ids("listUsers", q) }
	clientsOf := func(q url.Values) []string { t.Helper(); return ids("listOAuth2Clients", q) }
	if got := usersOf(url.Values{"filter[active-oauth2-client]": {appID}}); !slices.Equal(got, []string{id}) {
		t.Fatalf("users of the application: %v, want alice", got)
	}
	if got := usersOf(url.Values{"filter[has-active-oauth2-session]": {"false"}}); !slices.Equal(got, []string{bobID}) {
		t.Fatalf("users without an OAuth 2.0 session: %v, want bob", got)
	}
	// Pages of one: alice, then bob; the application, then the bot.
	first := usersOf(url.Values{"filter[has-active-compat-session]": {"true"}, "page[first]": {"1"}})
	second := usersOf(url.Values{"filter[has-active-compat-session]": {"true"}, "page[first]": {"1"}, "page[after]": first})
	if !slices.Equal(append(first, second...), []string{id, bobID}) {
		t.Fatalf("users with a device, by pages of one: %v then %v", first, second)
	}
	first = clientsOf(url.Values{"filter[has-active-sessions]": {"true"}, "page[first]": {"1"}})
	second = clientsOf(url.Values{"filter[has-active-sessions]": {"true"}, "page[first]": {"1"}, "page[after]": first})
	if got := append(first, second...); !slices.Equal(got, []string{appID, botID}) {
		t.Fatalf("clients with live sessions, by pages of one: %v, want the application and the bot", got)
	}
	// Finishing alice's session of the application: she uses it no more,
	// nor does anyone.
	app0 := ids("listOAuth2Sessions", url.Values{"filter[user]": {id}, "filter[status]": {"active"}})
	if len(app0) != 1 {
		t.Fatalf("alice's OAuth 2.0 sessions: %v", app0)
	}
	if status, s := mas.do(t, "finishOAuth2Session", map[string]string{"id": app0[0]}, nil, nil); status != http.StatusOK {
		t.Fatalf("finish the OAuth 2.0 session: %d %v", status, s)
	}
	if got := usersOf(url.Values{"filter[active-oauth2-client]": {appID}}); len(got) != 0 {
		t.Fatalf("users of the application once its session finished: %v", got)
	}
	if got := usersOf(url.Values{"filter[has-active-oauth2-session]": {"false"}}); !slices.Equal(got, []string{id, bobID}) {
		t.Fatalf("users without an OAuth 2.0 session: %v, want alice and bob", got)
	}
	if got := clientsOf(url.Values{"filter[has-active-sessions]": {"false"}}); !slices.Contains(got, appID) || slices.Contains(got, botID) {
		t.Fatalf("clients without live sessions: %v", got)
	}

	// A registration token for the next person.
	status, rt := mas.do(t, "addUserRegistrationToken", nil, nil, map[string]any{"usage_limit": 1})
	attrs := rt["data"].(map[string]any)["attributes"].(map[string]any)
	if status != http.StatusCreated || attrs["valid"] != true || attrs["token"] == "" || attrs["usage_limit"] != 1.0 {
		t.Fatalf("registration token: %d %v", status, rt)
	}

	// The audit trail names the bot for what it did.
	req, _ = http.NewRequest(http.MethodGet, e.issuer+"api/admin/v1/audit-events?filter[user]="+id+"&page[first]=100", nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err = plainHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var trail struct {
		Data []struct {
			Attributes struct {
				EventType string `json:"event_type"`
				Actor     string `json:"actor"`
			} `json:"attributes"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&trail)
	resp.Body.Close()
	var acts []string
	for _, d := range trail.Data {
		if d.Attributes.Actor == "admin:client:"+botID {
			acts = append(acts, d.Attributes.EventType)
		}
	}
	for _, want := range []string{"gatehouse.events.v1.UserLocked", "gatehouse.events.v1.SessionEnded", "gatehouse.events.v1.UserUnlocked"} {
		if !slices.Contains(acts, want) {
			t.Errorf("the trail has the bot doing %v, not %s", acts, want)
		}
	}

	// The admin CLI takes the same token: it calls as the bot.
	code, out, errOut := e.s.cli(t, "user", "lock", "alice", "--token", bearer)
	if code != 0 {
		t.Fatalf("gatehouse user lock --token: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := e.s.cli(t, "user", "unlock", "alice", "--token", "mat_notavalidtokennotavalidtoken1_abcdef"); code == 0 || !strings.Contains(strings.ToLower(errOut), "valid") {
		t.Fatalf("the CLI with a bad token: %d %s", code, errOut)
	}
}
