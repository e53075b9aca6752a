package inprocess

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/grpcx"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/admin"
	"gatehouse.dev/services/authorize"
	"gatehouse.dev/services/token"
)

// The admin API (services/admin) against the real accounts, authorize and
// token services: every endpoint's success and failures (401 for a bad
// token, 403 for one without administration, 400 for bad input, 404 for
// what does not exist), in MAS's error shape, every answer validated
// against the OpenAPI document the API serves.

// newAdminAPI builds the admin API over connections without a credential of
// their own: it forwards its callers' tokens, as host.DialForwarding does.
func newAdminAPI(t *testing.T, issuer, grpcAddr string, logger *slog.Logger) *admin.Service {
	t.Helper()
	conn, err := grpcx.Dial(grpcAddr, grpcx.DialOptions{DefaultTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	svc, err := admin.New(admin.Config{PublicURL: issuer, Version: "test", Site: admin.SiteConfig{ServerName: "example.org", PasswordLoginEnabled: true}},
		admin.Deps{Accounts: accountsv1.NewAccountsServiceClient(conn), Authorize: authorizev1.NewAuthorizeServiceClient(conn),
			Token: tokenv1.NewTokenServiceClient(conn), Logger: logger.With("service", "admin")})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// The admin client the configuration lists, and its secret.
const adminClientID, adminClientSecret = "moderation-bot", "the moderation bot's secret, long enough"

// adminEnv is a stack with an admin client and the served document's validator.
type adminEnv struct {
	st    *stack
	token string // the admin client's access token (urn:gatehouse:admin)
	v     validator.Validator
	mu    sync.Mutex // the validator is not safe for concurrent use
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	st := newStackWith(t, func(c *authorize.Config) {
		c.StaticClients = append(c.StaticClients, authorize.StaticClient{
			ID: adminClientID, Secret: adminClientSecret, AuthMethod: "client_secret_basic", Name: "Moderation bot",
			GrantTypes: []string{"client_credentials"},
		})
	}, func(c *token.Config) { c.AdminClients = []string{adminClientID} })
	e := &adminEnv{st: st}
	e.token = e.clientToken(t, "urn:gatehouse:admin")
	// The document the API serves, without a token.
	resp, err := http.Get(st.issuer + "api/admin/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("openapi.json: %d %s", resp.StatusCode, raw)
	}
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		t.Fatalf("the served document is not valid: %v", verrs)
	}
	e.v = v
	return e
}

// clientToken is a client_credentials token of the admin client.
func (e *adminEnv) clientToken(t *testing.T, scope string) string {
	t.Helper()
	return e.st.tokenRequest(t, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, basicAuth(adminClientID, adminClientSecret)).
		tokens(t, "admin client").access
}

// apiReply is an answer of the API.
type apiReply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// data is the answer's data (one resource).
func (r apiReply) data() map[string]any { m, _ := r.body["data"].(map[string]any); return m }

// attr is an attribute of the answer's resource.
func (r apiReply) attr(name string) any { return r.data()["attributes"].(map[string]any)[name] }

// list is the answer's resources.
func (r apiReply) list() []map[string]any {
	var out []map[string]any
	for _, d := range asSlice(r.body["data"]) {
		out = append(out, d.(map[string]any))
	}
	return out
}

// ids are the ids of the answer's resources, in order.
func (r apiReply) ids() []string {
	var out []string
	for _, d := range r.list() {
		out = append(out, d["id"].(string))
	}
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// call calls the API with a token ("" for none) and a JSON body (nil for
// none), and checks the answer against the served document: its status is
// documented for the operation and its body matches the schema.
func (e *adminEnv) call(t *testing.T, method, path, token string, body any) apiReply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			b = mustJSONBytes(t, body)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.st.issuer+"api/admin/v1"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := apiReply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, raw)
		}
	}
	e.validate(t, method, path, req, resp, raw)
	return r
}

// validate checks an answer against the served document.
func (e *adminEnv) validate(t *testing.T, method, path string, req *http.Request, resp *http.Response, raw []byte) {
	t.Helper()
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	// The validator finds the operation by the request: give it one whose
	// body it can read again.
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(strings.NewReader(""))
	e.mu.Lock()
	ok, verrs := e.v.ValidateHttpResponse(vreq, resp)
	e.mu.Unlock()
	if !ok {
		for _, ve := range verrs {
			t.Errorf("%s %s → %d: the answer disagrees with the document: %s: %s %v", method, path, resp.StatusCode, ve.Message, ve.Reason, ve.SchemaValidationErrors)
		}
		t.Fatalf("answer: %s", raw)
	}
}

// want checks an answer's status, and for an error MAS's shape.
func (r apiReply) want(t *testing.T, what string, status int) apiReply {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d %s, want %d", what, r.status, r.raw, status)
	}
	if status >= 400 {
		errs := asSlice(r.body["errors"])
		if len(errs) != 1 || errs[0].(map[string]any)["title"] == "" {
			t.Fatalf("%s: error body %s is not MAS's shape", what, r.raw)
		}
	}
	return r
}

func mustJSONBytes(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Who may call the API: an administrator's bearer token only.
func TestAdminAPIAuthentication(t *testing.T) {
	e := newAdminEnv(t)
	st := e.st
	boss := st.user(t, "boss", func(r *accountsv1.RegisterRequest) { r.Admin = true })
	alice := st.user(t, "alice")
	pat := func(u *accountsv1.User, scope string) string {
		t.Helper()
		r := e.call(t, "POST", "/personal-sessions", e.token, map[string]any{"actor_user_id": u.GetId(), "human_name": "t", "scope": scope}).
			want(t, "a personal session for "+u.GetUsername(), http.StatusCreated)
		return r.attr("access_token").(string)
	}
	self := st.register(t, map[string]any{"client_name": "Self", "client_uri": "https://self.example.com/", "application_type": "web",
		"grant_types": []string{"client_credentials"}, "scope": "read:stats"})
	selfToken := st.tokenRequest(t, url.Values{"grant_type": {"client_credentials"}, "scope": {"read:stats"}}, basicAuth(self.id, self.secret)).tokens(t, "self").access
	oauthToken := st.session(t, st.publicClient(t), alice).access
	bossPAT := pat(boss, "urn:gatehouse:admin")
	bossMatrixPAT := pat(boss, "urn:matrix:client:api:*")
	alicePAT := pat(alice, "urn:matrix:client:api:*")
	revoked := pat(boss, "urn:mas:admin")
	revokedID := e.call(t, "GET", "/personal-sessions?filter[actor_user]="+boss.GetId()+"&filter[scope]=urn:mas:admin", e.token, nil).
		want(t, "find the session to revoke", http.StatusOK).ids()[0]
	e.call(t, "POST", "/personal-sessions/"+revokedID+"/revoke", e.token, nil).want(t, "revoke", http.StatusOK)
	tests := []struct {
		name   string
		header string
		status int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"not a token", "Bearer nonsense", http.StatusUnauthorized},
		{"a forged token", "Bearer mat_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_000000", http.StatusUnauthorized},
		{"the homeserver's secret", "Bearer " + homeserverSecret, http.StatusUnauthorized},
		{"a revoked personal token", "Bearer " + revoked, http.StatusUnauthorized},
		{"a client token without the admin scope", "Bearer " + selfToken, http.StatusForbidden},
		{"a person's OAuth token", "Bearer " + oauthToken, http.StatusForbidden},
		{"a non-administrator's personal token", "Bearer " + alicePAT, http.StatusForbidden},
		{"an administrator's personal token without the admin scope", "Bearer " + bossMatrixPAT, http.StatusForbidden},
		{"the admin client (urn:gatehouse:admin)", "Bearer " + e.token, http.StatusOK},
		{"the admin client (urn:mas:admin)", "Bearer " + e.clientToken(t, "urn:mas:admin"), http.StatusOK},
		{"an administrator's personal token", "Bearer " + bossPAT, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := strings.TrimPrefix(tt.header, "Bearer ")
			r := e.call(t, "GET", "/users", token, nil).want(t, tt.name, tt.status)
			if tt.status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("no challenge: %v", r.header)
			}
		})
	}
	// A user who stops being an administrator stops being obeyed at once.
	e.call(t, "POST", "/users/"+boss.GetId()+"/set-admin", e.token, map[string]any{"admin": false}).want(t, "demote", http.StatusOK)
	e.call(t, "GET", "/version", bossPAT, nil).want(t, "a former administrator's token", http.StatusForbidden)
	// The document is public; site-config and version are not.
	e.call(t, "GET", "/openapi.json", "", nil).want(t, "document", http.StatusOK)
	e.call(t, "GET", "/site-config", "", nil).want(t, "site-config without a token", http.StatusUnauthorized)
	if r := e.call(t, "GET", "/site-config", e.token, nil).want(t, "site-config", http.StatusOK); r.body["server_name"] != "example.org" {
		t.Fatalf("site-config: %s", r.raw)
	}
	if r := e.call(t, "GET", "/version", e.token, nil).want(t, "version", http.StatusOK); r.body["version"] != "test" {
		t.Fatalf("version: %s", r.raw)
	}
}

// Users: create, read, list with filters and cursors, and every action.
func TestAdminAPIUsers(t *testing.T) {
	e := newAdminEnv(t)
	tok := e.token
	created := e.call(t, "POST", "/users", tok, map[string]any{"username": "carol", "displayname": "Carol"}).want(t, "create", http.StatusCreated)
	carol := created.data()["id"].(string)
	if created.attr("username") != "carol" || created.attr("locked_at") != nil || created.attr("admin") != false ||
		created.data()["type"] != "user" || created.body["links"].(map[string]any)["self"] != "/api/admin/v1/users/"+carol {
		t.Fatalf("created: %s", created.raw)
	}
	for name, c := range map[string]struct {
		body   any
		status int
	}{
		"taken":                {map[string]any{"username": "carol"}, http.StatusConflict},
		"not a Matrix name":    {map[string]any{"username": "Carol!"}, http.StatusBadRequest},
		"no username":          {map[string]any{}, http.StatusBadRequest},
		"an unknown field":     {map[string]any{"username": "dave", "password": "x"}, http.StatusBadRequest},
		"not JSON":             {[]byte("{"), http.StatusBadRequest},
		"two values":           {[]byte(`{"username":"erin"} {}`), http.StatusBadRequest},
		"a number as username": {[]byte(`{"username": 3}`), http.StatusBadRequest},
	} {
		e.call(t, "POST", "/users", tok, c.body).want(t, "create: "+name, c.status)
	}
	for _, name := range []string{"dave", "erin", "frank", "grace"} {
		e.call(t, "POST", "/users", tok, map[string]any{"username": name, "skip_homeserver_check": true}).want(t, "create "+name, http.StatusCreated)
	}
	e.call(t, "GET", "/users/"+carol, tok, nil).want(t, "get", http.StatusOK)
	e.call(t, "GET", "/users/01ARZ3NDEKTSV4RRFFQ69G5FAV", tok, nil).want(t, "get unknown", http.StatusNotFound)
	e.call(t, "GET", "/users/not-a-ulid", tok, nil).want(t, "get a bad id", http.StatusBadRequest)
	if r := e.call(t, "GET", "/users/by-username/carol", tok, nil).want(t, "by username", http.StatusOK); r.data()["id"] != carol {
		t.Fatalf("by username: %s", r.raw)
	}
	e.call(t, "GET", "/users/by-username/nobody", tok, nil).want(t, "by unknown username", http.StatusNotFound)

	// Cursors: pages of two, forward and backward, with counts and links.
	first := e.call(t, "GET", "/users?page[first]=2", tok, nil).want(t, "first page", http.StatusOK)
	all := e.call(t, "GET", "/users?page[first]=100", tok, nil).want(t, "all", http.StatusOK).ids()
	if len(all) != 5 || !slices.IsSorted(all) || first.body["meta"].(map[string]any)["count"] != 5.0 || !slices.Equal(first.ids(), all[:2]) {
		t.Fatalf("first page %s of %v", first.raw, all)
	}
	next, _ := first.body["links"].(map[string]any)["next"].(string)
	if next != "/api/admin/v1/users?page[after]="+all[1]+"&page[first]=2" {
		t.Fatalf("next link %q", next)
	}
	second := e.call(t, "GET", strings.TrimPrefix(next, "/api/admin/v1"), tok, nil).want(t, "next page", http.StatusOK)
	if !slices.Equal(second.ids(), all[2:4]) {
		t.Fatalf("second page %v of %v", second.ids(), all)
	}
	last := e.call(t, "GET", "/users?page[last]=2&count=false", tok, nil).want(t, "last page", http.StatusOK)
	if !slices.Equal(last.ids(), all[3:]) || last.body["meta"] != nil || last.body["links"].(map[string]any)["prev"] == nil {
		t.Fatalf("last page %s", last.raw)
	}
	if r := e.call(t, "GET", "/users?page[last]=2&page[before]="+all[3], tok, nil).want(t, "before", http.StatusOK); !slices.Equal(r.ids(), all[1:3]) {
		t.Fatalf("before: %v of %v", r.ids(), all)
	}
	if r := e.call(t, "GET", "/users?count=only", tok, nil).want(t, "count only", http.StatusOK); r.body["data"] != nil || r.body["meta"].(map[string]any)["count"] != 5.0 {
		t.Fatalf("count only: %s", r.raw)
	}
	for _, bad := range []string{"page[first]=0", "page[first]=2&page[last]=2", "page[first]=x", "page[after]=bad", "count=maybe",
		"filter[status]=gone", "filter[admin]=yes", "filter[nope]=1", "page[first]=1&page[first]=2"} {
		e.call(t, "GET", "/users?"+bad, tok, nil).want(t, "bad query "+bad, http.StatusBadRequest)
	}
	if r := e.call(t, "GET", "/users?filter[search]=ra", tok, nil).want(t, "search", http.StatusOK); len(r.ids()) != 2 {
		t.Fatalf("search ra: %s", r.raw) // carol, grace
	}

	// Actions.
	if r := e.call(t, "POST", "/users/"+carol+"/lock", tok, nil).want(t, "lock", http.StatusOK); r.attr("locked_at") == nil {
		t.Fatalf("lock: %s", r.raw)
	}
	if r := e.call(t, "GET", "/users?filter[status]=locked", tok, nil).want(t, "locked", http.StatusOK); !slices.Equal(r.ids(), []string{carol}) {
		t.Fatalf("locked users: %s", r.raw)
	}
	e.call(t, "POST", "/users/"+carol+"/unlock", tok, nil).want(t, "unlock", http.StatusOK)
	if r := e.call(t, "POST", "/users/"+carol+"/set-admin", tok, map[string]any{"admin": true}).want(t, "set-admin", http.StatusOK); r.attr("admin") != true {
		t.Fatalf("set-admin: %s", r.raw)
	}
	if r := e.call(t, "GET", "/users?filter[admin]=true", tok, nil).want(t, "admins", http.StatusOK); !slices.Equal(r.ids(), []string{carol}) {
		t.Fatalf("admins: %s", r.raw)
	}
	e.call(t, "POST", "/users/"+carol+"/set-admin", tok, map[string]any{}).want(t, "set-admin without admin", http.StatusBadRequest)
	e.call(t, "POST", "/users/"+carol+"/set-password", tok, map[string]any{"password": "short"}).want(t, "a password too short", http.StatusBadRequest)
	e.call(t, "POST", "/users/"+carol+"/set-password", tok, map[string]any{"password": "correct horse battery staple 42"}).want(t, "set-password", http.StatusNoContent)
	if _, err := e.st.accounts.VerifyPassword(context.Background(), &accountsv1.VerifyPasswordRequest{Username: "carol", Password: "correct horse battery staple 42"}); err != nil {
		t.Fatalf("the new password: %v", err)
	}
	e.call(t, "POST", "/users/01ARZ3NDEKTSV4RRFFQ69G5FAV/set-password", tok, map[string]any{"password": "correct horse battery staple 42"}).want(t, "set-password unknown", http.StatusNotFound)
	if r := e.call(t, "POST", "/users/"+carol+"/deactivate", tok, map[string]any{"skip_erase": true}).want(t, "deactivate", http.StatusOK); r.attr("deactivated_at") == nil {
		t.Fatalf("deactivate: %s", r.raw)
	}
	if r := e.call(t, "GET", "/users?filter[status]=deactivated", tok, nil).want(t, "deactivated", http.StatusOK); !slices.Equal(r.ids(), []string{carol}) {
		t.Fatalf("deactivated users: %s", r.raw)
	}
	e.call(t, "POST", "/users/"+carol+"/reactivate", tok, nil).want(t, "reactivate", http.StatusOK)
	for _, action := range []string{"lock", "unlock", "deactivate", "reactivate"} {
		e.call(t, "POST", "/users/01ARZ3NDEKTSV4RRFFQ69G5FAV/"+action, tok, nil).want(t, action+" unknown", http.StatusNotFound)
	}
	if r := e.call(t, "GET", "/users?filter[legacy-guest]=true", tok, nil).want(t, "guests", http.StatusOK); len(r.ids()) != 0 {
		t.Fatalf("guests: %s", r.raw)
	}
}

// Email addresses: an administrator vouches for them.
func TestAdminAPIUserEmails(t *testing.T) {
	e := newAdminEnv(t)
	tok := e.token
	u := e.st.user(t, "alice")
	added := e.call(t, "POST", "/user-emails", tok, map[string]any{"user_id": u.GetId(), "email": "Alice@Example.org"}).want(t, "add", http.StatusCreated)
	id := added.data()["id"].(string)
	if added.attr("email") != "alice@example.org" || added.attr("user_id") != u.GetId() {
		t.Fatalf("added: %s", added.raw)
	}
	e.call(t, "POST", "/user-emails", tok, map[string]any{"user_id": u.GetId(), "email": "alice@example.org"}).want(t, "add again", http.StatusConflict)
	e.call(t, "POST", "/user-emails", tok, map[string]any{"user_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "email": "x@example.org"}).want(t, "an unknown user", http.StatusNotFound)
	e.call(t, "POST", "/user-emails", tok, map[string]any{"user_id": u.GetId(), "email": "not an address"}).want(t, "not an address", http.StatusBadRequest)
	second := e.call(t, "POST", "/user-emails", tok, map[string]any{"user_id": u.GetId(), "email": "a2@example.org"}).want(t, "add a second", http.StatusCreated)
	if r := e.call(t, "GET", "/user-emails/"+id, tok, nil).want(t, "get", http.StatusOK); r.attr("email") != "alice@example.org" {
		t.Fatalf("get: %s", r.raw)
	}
	list := e.call(t, "GET", "/user-emails?filter[user]="+u.GetId(), tok, nil).want(t, "list", http.StatusOK)
	if !slices.Equal(list.ids(), []string{id, second.data()["id"].(string)}) {
		t.Fatalf("list: %s", list.raw)
	}
	if r := e.call(t, "GET", "/user-emails?filter[email]=a2@example.org", tok, nil).want(t, "by address", http.StatusOK); len(r.ids()) != 1 {
		t.Fatalf("by address: %s", r.raw)
	}
	e.call(t, "DELETE", "/user-emails/"+second.data()["id"].(string), tok, nil).want(t, "delete", http.StatusNoContent)
	e.call(t, "GET", "/user-emails/"+second.data()["id"].(string), tok, nil).want(t, "get deleted", http.StatusNotFound)
	e.call(t, "DELETE", "/user-emails/01ARZ3NDEKTSV4RRFFQ69G5FAV", tok, nil).want(t, "delete unknown", http.StatusNotFound)
}

// Browser, OAuth and compatibility sessions: listed, read, finished — and a
// finished session's tokens stop working.
func TestAdminAPISessions(t *testing.T) {
	e := newAdminEnv(t)
	st, tok := e.st, e.token
	u := st.user(t, "alice")
	signInFrom(t, st, u, "192.0.2.7")
	c := st.publicClient(t)
	oauth := st.session(t, c, u) // signs in too
	compat := st.compatLogin(t, u, false)

	browsers := e.call(t, "GET", "/user-sessions?filter[user]="+u.GetId()+"&filter[status]=active", tok, nil).want(t, "browser sessions", http.StatusOK)
	if len(browsers.ids()) != 2 || browsers.list()[0]["attributes"].(map[string]any)["last_active_ip"] != "192.0.2.7" {
		t.Fatalf("browser sessions: %s", browsers.raw)
	}
	// The OAuth session names the browser session it was consented from;
	// the compat one (a password login) none.
	oauthList := e.call(t, "GET", "/oauth2-sessions?filter[user]="+u.GetId(), tok, nil).want(t, "OAuth sessions", http.StatusOK)
	from, _ := oauthList.list()[0]["attributes"].(map[string]any)["user_session_id"].(string)
	if !slices.Contains(browsers.ids(), from) {
		t.Fatalf("the OAuth session's user session %q is not one of %v: %s", from, browsers.ids(), oauthList.raw)
	}
	if r := e.call(t, "GET", "/oauth2-sessions?filter[user-session]="+from, tok, nil).want(t, "by user session", http.StatusOK); !slices.Equal(r.ids(), oauthList.ids()) {
		t.Fatalf("by user session: %s", r.raw)
	}
	for _, other := range browsers.ids() {
		if other == from {
			continue
		}
		if r := e.call(t, "GET", "/oauth2-sessions?filter[user-session]="+other, tok, nil).want(t, "by another user session", http.StatusOK); len(r.ids()) != 0 {
			t.Fatalf("by another user session: %s", r.raw)
		}
	}
	compatList := e.call(t, "GET", "/compat-sessions?filter[user]="+u.GetId(), tok, nil).want(t, "compat sessions", http.StatusOK)
	if compatList.list()[0]["attributes"].(map[string]any)["user_session_id"] != nil {
		t.Fatalf("a password login's compat session names a user session: %s", compatList.raw)
	}
	if r := e.call(t, "GET", "/compat-sessions?filter[user-session]="+from, tok, nil).want(t, "compat by user session", http.StatusOK); len(r.ids()) != 0 {
		t.Fatalf("compat by user session: %s", r.raw)
	}
	e.call(t, "GET", "/oauth2-sessions?filter[user-session]=nope", tok, nil).want(t, "a user session not a ULID", http.StatusBadRequest)

	bid := browsers.ids()[0]
	e.call(t, "GET", "/user-sessions/"+bid, tok, nil).want(t, "get browser session", http.StatusOK)
	if r := e.call(t, "POST", "/user-sessions/"+bid+"/finish", tok, nil).want(t, "finish browser session", http.StatusOK); r.attr("finished_at") == nil {
		t.Fatalf("finished: %s", r.raw)
	}
	e.call(t, "POST", "/user-sessions/"+bid+"/finish", tok, nil).want(t, "finish it again", http.StatusBadRequest)
	if r := e.call(t, "GET", "/user-sessions?filter[user]="+u.GetId()+"&filter[status]=finished", tok, nil).want(t, "finished", http.StatusOK); len(r.ids()) != 1 {
		t.Fatalf("finished browser sessions: %s", r.raw)
	}

	for _, kind := range []struct {
		path, token string
	}{{"/oauth2-sessions", oauth.access}, {"/compat-sessions", compat["access_token"].(string)}} {
		list := e.call(t, "GET", kind.path+"?filter[user]="+u.GetId()+"&filter[status]=active", tok, nil).want(t, "list "+kind.path, http.StatusOK)
		if len(list.ids()) != 1 {
			t.Fatalf("%s: %s", kind.path, list.raw)
		}
		id := list.ids()[0]
		e.call(t, "GET", kind.path+"/"+id, tok, nil).want(t, "get", http.StatusOK)
		st.wantActive(t, kind.path+" before", kind.token, true)
		if r := e.call(t, "POST", kind.path+"/"+id+"/finish", tok, nil).want(t, "finish", http.StatusOK); r.attr("finished_at") == nil {
			t.Fatalf("finish: %s", r.raw)
		}
		st.wantActive(t, kind.path+" after", kind.token, false)
		e.call(t, "POST", kind.path+"/"+id+"/finish", tok, nil).want(t, "finish again", http.StatusBadRequest)
		e.call(t, "GET", kind.path+"/01ARZ3NDEKTSV4RRFFQ69G5FAV", tok, nil).want(t, "unknown", http.StatusNotFound)
	}
	// A session of one kind is not found among another's.
	compatID := e.call(t, "GET", "/compat-sessions?filter[user]="+u.GetId(), tok, nil).want(t, "compat", http.StatusOK).ids()[0]
	e.call(t, "GET", "/oauth2-sessions/"+compatID, tok, nil).want(t, "a compat session as OAuth", http.StatusNotFound)
	if r := e.call(t, "GET", "/oauth2-sessions?filter[client]="+c.id+"&filter[scope]=openid", tok, nil).want(t, "by client and scope", http.StatusOK); len(r.ids()) != 1 {
		t.Fatalf("by client and scope: %s", r.raw)
	}
	// By kind of client: the admin client is the configuration's; the
	// public client registered itself.
	clientsOf := func(kind string) []string {
		t.Helper()
		r := e.call(t, "GET", "/oauth2-sessions?page[first]=100&filter[client-kind]="+kind, tok, nil).want(t, kind+" clients' sessions", http.StatusOK)
		var out []string
		for _, it := range r.list() {
			out = append(out, it["attributes"].(map[string]any)["client_id"].(string))
		}
		return out
	}
	if static := clientsOf("static"); len(static) == 0 || slices.ContainsFunc(static, func(id string) bool { return id != adminClientID }) {
		t.Fatalf("static clients' sessions: %v", static)
	}
	if dynamic := clientsOf("dynamic"); !slices.Contains(dynamic, c.id) || slices.Contains(dynamic, adminClientID) {
		t.Fatalf("dynamic clients' sessions: %v", dynamic)
	}
	e.call(t, "GET", "/oauth2-sessions?filter[client-kind]=both", tok, nil).want(t, "an unknown client kind", http.StatusBadRequest)
}

// Personal sessions for a bot: created with its device, introspected as the
// bot with its device, regenerated, revoked.
func TestAdminAPIPersonalSessions(t *testing.T) {
	e := newAdminEnv(t)
	st, tok := e.st, e.token
	bot := st.user(t, "bot")
	created := e.call(t, "POST", "/personal-sessions", tok, map[string]any{
		"actor_user_id": bot.GetId(), "human_name": "CI bot", "scope": "urn:matrix:client:api:* urn:matrix:client:device:CIBOTDEVICE", "expires_in": 3600,
	}).want(t, "create", http.StatusCreated)
	id, pat := created.data()["id"].(string), created.attr("access_token").(string)
	if !strings.HasPrefix(pat, "mpt_") || created.attr("owner_client_id") != adminClientID || created.attr("actor_user_id") != bot.GetId() || created.attr("expires_at") == nil {
		t.Fatalf("created: %s", created.raw)
	}
	got := st.wantActive(t, "the bot's token", pat, true)
	if got["sub"] != bot.GetId() || got["username"] != "bot" || got["device_id"] != "CIBOTDEVICE" || got["token_type"] != "access_token" {
		t.Fatalf("introspection: %v", got)
	}
	if r := e.call(t, "GET", "/personal-sessions/"+id, tok, nil).want(t, "get", http.StatusOK); r.attr("access_token") != nil || r.attr("last_active_at") == nil {
		t.Fatalf("get (no token shown again, last use noted): %s", r.raw)
	}
	for q, n := range map[string]int{
		"filter[actor_user]=" + bot.GetId(): 1, "filter[owner_client]=" + adminClientID: 1, "filter[expires]=true": 1, "filter[expires]=false": 0,
		"filter[status]=revoked": 0, "filter[scope]=urn:matrix:client:device:CIBOTDEVICE": 1,
		"filter[expires_before]=" + time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339): 1,
	} {
		if r := e.call(t, "GET", "/personal-sessions?"+q, tok, nil).want(t, q, http.StatusOK); len(r.ids()) != n {
			t.Fatalf("%s: %s", q, r.raw)
		}
	}
	regen := e.call(t, "POST", "/personal-sessions/"+id+"/regenerate", tok, map[string]any{}).want(t, "regenerate", http.StatusCreated)
	next := regen.attr("access_token").(string)
	if next == pat || regen.attr("expires_at") != nil {
		t.Fatalf("regenerated: %s", regen.raw)
	}
	st.wantActive(t, "the old token", pat, false)
	st.wantActive(t, "the new token", next, true)
	e.call(t, "POST", "/personal-sessions/"+id+"/revoke", tok, nil).want(t, "revoke", http.StatusOK)
	st.wantActive(t, "a revoked token", next, false)
	e.call(t, "POST", "/personal-sessions/"+id+"/revoke", tok, nil).want(t, "revoke again", http.StatusConflict)
	e.call(t, "POST", "/personal-sessions/"+id+"/regenerate", tok, nil).want(t, "regenerate a revoked one", http.StatusBadRequest)

	for name, c := range map[string]struct {
		body   map[string]any
		status int
	}{
		"an unknown user":             {map[string]any{"actor_user_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "human_name": "x", "scope": "urn:matrix:client:api:*"}, http.StatusNotFound},
		"an admin scope for a bot":    {map[string]any{"actor_user_id": bot.GetId(), "human_name": "x", "scope": "urn:gatehouse:admin"}, http.StatusBadRequest},
		"a scope that grants nothing": {map[string]any{"actor_user_id": bot.GetId(), "human_name": "x", "scope": "openid"}, http.StatusBadRequest},
		"no name":                     {map[string]any{"actor_user_id": bot.GetId(), "human_name": "", "scope": "urn:matrix:client:api:*"}, http.StatusBadRequest},
		"a zero expiry":               {map[string]any{"actor_user_id": bot.GetId(), "human_name": "x", "scope": "urn:matrix:client:api:*", "expires_in": 0}, http.StatusBadRequest},
		"not a user id":               {map[string]any{"actor_user_id": "bot", "human_name": "x", "scope": "urn:matrix:client:api:*"}, http.StatusBadRequest},
	} {
		e.call(t, "POST", "/personal-sessions", tok, c.body).want(t, name, c.status)
	}
	// A deactivated user gets none.
	e.call(t, "POST", "/users/"+bot.GetId()+"/deactivate", tok, nil).want(t, "deactivate the bot", http.StatusOK)
	e.call(t, "POST", "/personal-sessions", tok, map[string]any{"actor_user_id": bot.GetId(), "human_name": "x", "scope": "urn:matrix:client:api:*"}).
		want(t, "a deactivated user", http.StatusGone)
}

// Clients: listed (never with secrets) and read.
func TestAdminAPIClients(t *testing.T) {
	e := newAdminEnv(t)
	tok := e.token
	dyn := e.st.publicClient(t)
	if r := e.call(t, "GET", "/oauth2-clients?filter[client-kind]=static", tok, nil).want(t, "static", http.StatusOK); !slices.Equal(r.ids(), []string{adminClientID}) {
		t.Fatalf("static clients: %s", r.raw)
	}
	r := e.call(t, "GET", "/oauth2-clients/"+dyn.id, tok, nil).want(t, "get", http.StatusOK)
	if r.attr("is_static") != false || !strings.Contains(r.raw, dyn.redirect) || strings.Contains(r.raw, "secret") {
		t.Fatalf("client: %s", r.raw)
	}
	e.call(t, "GET", "/oauth2-clients/nobody", tok, nil).want(t, "unknown", http.StatusNotFound)
	if r := e.call(t, "GET", "/oauth2-clients?filter[grant-type]=client_credentials&filter[client-name]=moderation", tok, nil).want(t, "filters", http.StatusOK); len(r.ids()) != 1 {
		t.Fatalf("filters: %s", r.raw)
	}
}

// Registration tokens: created (chosen or random), read, updated, revoked
// and unrevoked; the token itself shows only once.
func TestAdminAPIRegistrationTokens(t *testing.T) {
	e := newAdminEnv(t)
	tok := e.token
	chosen := e.call(t, "POST", "/user-registration-tokens", tok, map[string]any{"token": "spring-2026-invite", "usage_limit": 5}).want(t, "create", http.StatusCreated)
	id := chosen.data()["id"].(string)
	if chosen.attr("token") != "spring-2026-invite" || chosen.attr("usage_limit") != 5.0 || chosen.attr("valid") != true || chosen.data()["type"] != "user-registration_token" {
		t.Fatalf("created: %s", chosen.raw)
	}
	random := e.call(t, "POST", "/user-registration-tokens", tok, nil).want(t, "create random", http.StatusCreated)
	if s, _ := random.attr("token").(string); len(s) < 20 {
		t.Fatalf("random: %s", random.raw)
	}
	e.call(t, "POST", "/user-registration-tokens", tok, map[string]any{"token": "spring-2026-invite"}).want(t, "the same token", http.StatusConflict)
	e.call(t, "POST", "/user-registration-tokens", tok, map[string]any{"token": "no"}).want(t, "too short", http.StatusBadRequest)
	if r := e.call(t, "GET", "/user-registration-tokens/"+id, tok, nil).want(t, "get", http.StatusOK); r.attr("token") != nil {
		t.Fatalf("the token shown again: %s", r.raw)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if r := e.call(t, "PUT", "/user-registration-tokens/"+id, tok, map[string]any{"expires_at": past}).want(t, "expire", http.StatusOK); r.attr("valid") != false || r.attr("usage_limit") != 5.0 {
		t.Fatalf("expired: %s", r.raw)
	}
	if r := e.call(t, "GET", "/user-registration-tokens?filter[expired]=true", tok, nil).want(t, "expired", http.StatusOK); !slices.Equal(r.ids(), []string{id}) {
		t.Fatalf("expired tokens: %s", r.raw)
	}
	if r := e.call(t, "PUT", "/user-registration-tokens/"+id, tok, map[string]any{"expires_at": nil, "usage_limit": nil}).want(t, "clear", http.StatusOK); r.attr("valid") != true || r.attr("usage_limit") != nil {
		t.Fatalf("cleared: %s", r.raw)
	}
	e.call(t, "PUT", "/user-registration-tokens/"+id, tok, map[string]any{"uses": 3}).want(t, "an unknown field", http.StatusBadRequest)
	if r := e.call(t, "POST", "/user-registration-tokens/"+id+"/revoke", tok, nil).want(t, "revoke", http.StatusOK); r.attr("revoked_at") == nil || r.attr("valid") != false {
		t.Fatalf("revoked: %s", r.raw)
	}
	e.call(t, "POST", "/user-registration-tokens/"+id+"/revoke", tok, nil).want(t, "revoke again", http.StatusBadRequest)
	if r := e.call(t, "GET", "/user-registration-tokens?filter[revoked]=true&filter[valid]=false", tok, nil).want(t, "revoked", http.StatusOK); !slices.Equal(r.ids(), []string{id}) {
		t.Fatalf("revoked tokens: %s", r.raw)
	}
	e.call(t, "POST", "/user-registration-tokens/"+id+"/unrevoke", tok, nil).want(t, "unrevoke", http.StatusOK)
	e.call(t, "POST", "/user-registration-tokens/"+id+"/unrevoke", tok, nil).want(t, "unrevoke again", http.StatusBadRequest)
	e.call(t, "GET", "/user-registration-tokens/01ARZ3NDEKTSV4RRFFQ69G5FAV", tok, nil).want(t, "unknown", http.StatusNotFound)
	e.call(t, "POST", "/user-registration-tokens/01ARZ3NDEKTSV4RRFFQ69G5FAV/revoke", tok, nil).want(t, "revoke unknown", http.StatusNotFound)
	if r := e.call(t, "GET", "/user-registration-tokens?filter[used]=false", tok, nil).want(t, "unused", http.StatusOK); len(r.ids()) != 2 {
		t.Fatalf("unused: %s", r.raw)
	}
}

// The audit trail: what administrators did through the API, with the
// actor the token stands for, and the user's sessions with their address,
// merged in time order from both services.
func TestAdminAPIAuditTrail(t *testing.T) {
	e := newAdminEnv(t)
	st, tok := e.st, e.token
	u := st.user(t, "alice")
	signInFrom(t, st, u, "192.0.2.7")
	st.session(t, st.publicClient(t), u)
	e.call(t, "POST", "/users/"+u.GetId()+"/lock", tok, nil).want(t, "lock", http.StatusOK)
	e.call(t, "POST", "/personal-sessions", tok, map[string]any{"actor_user_id": u.GetId(), "human_name": "script", "scope": "urn:matrix:client:api:*"}).
		want(t, "a personal session for a locked user", http.StatusGone)
	e.call(t, "POST", "/users/"+u.GetId()+"/unlock", tok, nil).want(t, "unlock", http.StatusOK)
	e.call(t, "POST", "/personal-sessions", tok, map[string]any{"actor_user_id": u.GetId(), "human_name": "script", "scope": "urn:matrix:client:api:*"}).
		want(t, "a personal session", http.StatusCreated)

	trail := e.call(t, "GET", "/audit-events?filter[user]="+u.GetId()+"&page[first]=100", tok, nil).want(t, "trail", http.StatusOK)
	ids := trail.ids()
	if !slices.IsSorted(ids) {
		t.Fatalf("not in time order: %v", ids)
	}
	var kinds []string
	signIns, fromThere := 0, 0
	sources := map[string]bool{}
	for _, d := range trail.list() {
		a := d["attributes"].(map[string]any)
		typ := strings.TrimPrefix(a["event_type"].(string), "gatehouse.events.v1.")
		kinds = append(kinds, typ)
		sources[a["source"].(string)] = true
		switch typ {
		case "UserLocked", "UserUnlocked":
			if a["actor"] != "admin:client:"+adminClientID {
				t.Errorf("%s by %v, want the admin client", typ, a["actor"])
			}
		case "BrowserSessionStarted":
			signIns++
			if a["ip_address"] == "192.0.2.7" {
				fromThere++
			}
		}
	}
	for _, want := range []string{"UserRegistered", "BrowserSessionStarted", "SessionStarted", "UserLocked", "UserUnlocked"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("the trail lacks %s: %v", want, kinds)
		}
	}
	if !sources["accounts"] || !sources["token"] || signIns != 2 || fromThere != 1 {
		t.Fatalf("sources %v, %d sign-ins, %d from 192.0.2.7", sources, signIns, fromThere)
	}
	// Pages of one, merged, give the same trail.
	var paged []string
	for path := "/audit-events?filter[user]=" + u.GetId() + "&page[first]=1"; path != ""; {
		r := e.call(t, "GET", path, tok, nil).want(t, "a page of the trail", http.StatusOK)
		paged = append(paged, r.ids()...)
		next, _ := r.body["links"].(map[string]any)["next"].(string)
		path = strings.TrimPrefix(next, "/api/admin/v1")
		if len(paged) > 100 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(paged, ids) {
		t.Fatalf("paged %v, whole %v", paged, ids)
	}
	if r := e.call(t, "GET", "/audit-events?filter[user]="+u.GetId()+"&page[last]=2", tok, nil).want(t, "last two", http.StatusOK); !slices.Equal(r.ids(), ids[len(ids)-2:]) {
		t.Fatalf("last two %v of %v", r.ids(), ids)
	}
}

// Every list reads every filter it declares: given all of them at once, it
// answers (a handler that left one unread would answer 500).
func TestAdminAPIListsReadEveryDeclaredFilter(t *testing.T) {
	e := newAdminEnv(t)
	u := e.st.user(t, "alice")
	now := time.Now().UTC().Format(time.RFC3339)
	values := map[string]string{
		"filter[user]": u.GetId(), "filter[actor_user]": u.GetId(), "filter[owner_user]": u.GetId(), "filter[owner_client]": adminClientID,
		"filter[client]": "c", "filter[scope]": "urn:matrix:client:api:*", "filter[email]": "a@example.org", "filter[search]": "a",
		"filter[client-kind]": "static", "filter[client-name]": "x", "filter[client-uri]": "https", "filter[grant-type]": "client_credentials",
		"filter[status]": "active", "count": "true", "page[first]": "3", "page[after]": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"filter[provider]": "corp", "filter[subject]": "s", "filter[human-account-name]": "a", "filter[user-session]": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"filter[active-oauth2-client]": adminClientID,
	}
	doc, _ := libopenapi.NewDocument(e.call(t, "GET", "/openapi.json", "", nil).rawBytes())
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	lists := 0
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		op := item.Get
		if op == nil || strings.Contains(path, "{") || op.Parameters == nil {
			continue
		}
		q := url.Values{}
		for _, p := range op.Parameters {
			switch v, ok := values[p.Name]; {
			case ok:
				q.Set(p.Name, v)
			case strings.HasSuffix(p.Name, "-before]") || strings.HasSuffix(p.Name, "_before]") || strings.HasSuffix(p.Name, "-after]") || strings.HasSuffix(p.Name, "_after]"):
				q.Set(p.Name, now)
			case p.Name == "page[before]":
				q.Set(p.Name, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
			case p.Name == "page[last]":
				// first is given
			default:
				q.Set(p.Name, "true") // the boolean filters
			}
		}
		lists++
		rel := strings.TrimPrefix(path, "/api/admin/v1") + "?" + strings.ReplaceAll(strings.ReplaceAll(q.Encode(), "%5B", "["), "%5D", "]")
		e.call(t, "GET", rel, e.token, nil).want(t, "every filter of "+path, http.StatusOK)
	}
	if lists < 9 {
		t.Fatalf("only %d lists", lists)
	}
}

// signInFrom starts a browser session of u from an address, as the sign-in page does.
func signInFrom(t *testing.T, st *stack, u *accountsv1.User, ip string) {
	t.Helper()
	ctx := context.Background()
	v, err := st.accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: u.GetUsername(), Password: u.GetUsername() + "'s password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.accounts.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: u.GetId(), AuthProof: v.GetAuthProof(), IpAddress: ip}); err != nil {
		t.Fatal(err)
	}
}

// rawBytes is the answer's body.
func (r apiReply) rawBytes() []byte { return []byte(r.raw) }

// upstreamProviders are the stack's upstream identity providers (never
// reached: the admin API only reads them and links identities to users).
var upstreamProviders = []config.UpstreamProvider{
	{ID: "corp", HumanName: "Corp SSO", Issuer: "https://sso.corp.example.test/", ClientID: "gatehouse", ClientSecret: "corp secret", SynapseIdpID: "corp"},
	{ID: "github", HumanName: "GitHub", Brand: "github", Issuer: "https://github.example.test/", ClientID: "gatehouse", ClientSecret: "github secret"},
}

// Upstream providers (listed, read) and links (added, found, listed with
// every filter, read, deleted), and the refusals.
func TestAdminAPIUpstream(t *testing.T) {
	e := newAdminEnv(t)
	st, tok := e.st, e.token
	const unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

	// Providers: the configured ones, by id, paged with cursors.
	list := e.call(t, "GET", "/upstream-oauth-providers", tok, nil).want(t, "providers", http.StatusOK)
	if !slices.Equal(list.ids(), []string{"corp", "github"}) || list.body["meta"].(map[string]any)["count"] != 2.0 {
		t.Fatalf("providers: %s", list.raw)
	}
	if a := list.list()[1]["attributes"].(map[string]any); a["human_name"] != "GitHub" || a["brand_name"] != "github" ||
		a["issuer"] != "https://github.example.test/" || a["disabled_at"] != nil || a["registration_token_required"] != false {
		t.Fatalf("github: %s", list.raw)
	}
	if r := e.call(t, "GET", "/upstream-oauth-providers?page[first]=1", tok, nil).want(t, "first provider", http.StatusOK); !slices.Equal(r.ids(), []string{"corp"}) ||
		r.body["links"].(map[string]any)["next"] != "/api/admin/v1/upstream-oauth-providers?page[after]=corp&page[first]=1" {
		t.Fatalf("first provider: %s", r.raw)
	}
	if r := e.call(t, "GET", "/upstream-oauth-providers?page[after]=corp", tok, nil).want(t, "after corp", http.StatusOK); !slices.Equal(r.ids(), []string{"github"}) {
		t.Fatalf("after corp: %s", r.raw)
	}
	if r := e.call(t, "GET", "/upstream-oauth-providers?page[last]=1", tok, nil).want(t, "last provider", http.StatusOK); !slices.Equal(r.ids(), []string{"github"}) {
		t.Fatalf("last provider: %s", r.raw)
	}
	if r := e.call(t, "GET", "/upstream-oauth-providers?filter[enabled]=false", tok, nil).want(t, "disabled providers", http.StatusOK); len(r.ids()) != 0 {
		t.Fatalf("disabled providers: %s", r.raw)
	}
	if r := e.call(t, "GET", "/upstream-oauth-providers?filter[enabled]=true&count=only", tok, nil).want(t, "count", http.StatusOK); r.body["meta"].(map[string]any)["count"] != 2.0 || r.body["data"] != nil {
		t.Fatalf("count only: %s", r.raw)
	}
	if r := e.call(t, "GET", "/upstream-oauth-providers/corp", tok, nil).want(t, "get a provider", http.StatusOK); r.attr("human_name") != "Corp SSO" {
		t.Fatalf("corp: %s", r.raw)
	}
	e.call(t, "GET", "/upstream-oauth-providers/nope", tok, nil).want(t, "an unknown provider", http.StatusNotFound)
	e.call(t, "GET", "/upstream-oauth-providers?filter[enabled]=maybe", tok, nil).want(t, "a bad filter", http.StatusBadRequest)
	e.call(t, "GET", "/upstream-oauth-providers?filter[nope]=1", tok, nil).want(t, "an unknown filter", http.StatusBadRequest)

	// Links: added (201), found again (200), taken by someone else (409).
	alice, bob := st.user(t, "alice"), st.user(t, "bob")
	add := func(user, provider, subject string, name any) apiReply {
		body := map[string]any{"user_id": user, "provider_id": provider, "subject": subject}
		if name != nil {
			body["human_account_name"] = name
		}
		return e.call(t, "POST", "/upstream-oauth-links", tok, body)
	}
	first := add(alice.GetId(), "corp", "alice-at-corp", "Alice@Corp.example").want(t, "link alice at corp", http.StatusCreated)
	aliceCorp := first.data()["id"].(string)
	if first.attr("user_id") != alice.GetId() || first.attr("provider_id") != "corp" || first.attr("subject") != "alice-at-corp" ||
		first.attr("human_account_name") != "Alice@Corp.example" || first.data()["type"] != "upstream-oauth-link" {
		t.Fatalf("linked: %s", first.raw)
	}
	if r := add(alice.GetId(), "corp", "alice-at-corp", nil).want(t, "link it again", http.StatusOK); r.data()["id"] != aliceCorp {
		t.Fatalf("linked again: %s", r.raw)
	}
	add(bob.GetId(), "corp", "alice-at-corp", nil).want(t, "link alice's identity to bob", http.StatusConflict)
	aliceGH := add(alice.GetId(), "github", "4242", nil).want(t, "link alice at github", http.StatusCreated).data()["id"].(string)
	bobCorp := add(bob.GetId(), "corp", "bob-at-corp", "bob@corp.example").want(t, "link bob at corp", http.StatusCreated).data()["id"].(string)
	for name, c := range map[string]struct {
		body   any
		status int
	}{
		"an unknown user":      {map[string]any{"user_id": unknown, "provider_id": "corp", "subject": "x"}, http.StatusNotFound},
		"an unknown provider":  {map[string]any{"user_id": bob.GetId(), "provider_id": "nope", "subject": "x"}, http.StatusNotFound},
		"no subject":           {map[string]any{"user_id": bob.GetId(), "provider_id": "corp"}, http.StatusBadRequest},
		"a user id not a ULID": {map[string]any{"user_id": "bob", "provider_id": "corp", "subject": "x"}, http.StatusBadRequest},
		"a subject too long":   {map[string]any{"user_id": bob.GetId(), "provider_id": "corp", "subject": strings.Repeat("x", 256)}, http.StatusBadRequest},
		"an unknown field":     {map[string]any{"user_id": bob.GetId(), "provider_id": "corp", "subject": "x", "admin": true}, http.StatusBadRequest},
		"not JSON":             {[]byte("{"), http.StatusBadRequest},
	} {
		e.call(t, "POST", "/upstream-oauth-links", tok, c.body).want(t, "add: "+name, c.status)
	}

	// Listed with every filter, in id order, with cursors.
	ids := func(query string) []string {
		t.Helper()
		return e.call(t, "GET", "/upstream-oauth-links"+query, tok, nil).want(t, "links"+query, http.StatusOK).ids()
	}
	for query, want := range map[string][]string{
		"":                               {aliceCorp, aliceGH, bobCorp},
		"?filter[user]=" + alice.GetId(): {aliceCorp, aliceGH},
		"?filter[provider]=corp":         {aliceCorp, bobCorp},
		"?filter[provider]=corp&filter[user]=" + bob.GetId(): {bobCorp},
		"?filter[subject]=alice-at-corp":                     {aliceCorp},
		"?filter[subject]=4242&filter[provider]=github":      {aliceGH},
		"?filter[subject]=4242&filter[provider]=corp":        {},
		"?filter[human-account-name]=CORP.EXAMPLE":           {aliceCorp, bobCorp},
		"?filter[human-account-name]=bob":                    {bobCorp},
		"?page[first]=2":                                     {aliceCorp, aliceGH},
		"?page[after]=" + aliceCorp:                          {aliceGH, bobCorp},
		"?page[last]=1":                                      {bobCorp},
	} {
		if got := ids(query); !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
			t.Errorf("links%s = %v, want %v", query, got, want)
		}
	}
	e.call(t, "GET", "/upstream-oauth-links?filter[user]="+unknown, tok, nil).want(t, "links of an unknown user", http.StatusNotFound)
	e.call(t, "GET", "/upstream-oauth-links?filter[provider]=nope", tok, nil).want(t, "links of an unknown provider", http.StatusNotFound)
	e.call(t, "GET", "/upstream-oauth-links?filter[user]=alice", tok, nil).want(t, "a user filter not a ULID", http.StatusBadRequest)
	e.call(t, "GET", "/upstream-oauth-links?page[after]=x", tok, nil).want(t, "a bad cursor", http.StatusBadRequest)

	// Read and deleted; a user with no password keeps their last way in.
	if r := e.call(t, "GET", "/upstream-oauth-links/"+aliceGH, tok, nil).want(t, "get a link", http.StatusOK); r.attr("subject") != "4242" || r.attr("human_account_name") != nil {
		t.Fatalf("get: %s", r.raw)
	}
	e.call(t, "GET", "/upstream-oauth-links/"+unknown, tok, nil).want(t, "get an unknown link", http.StatusNotFound)
	e.call(t, "GET", "/upstream-oauth-links/nope", tok, nil).want(t, "get a bad id", http.StatusBadRequest)
	e.call(t, "DELETE", "/upstream-oauth-links/"+aliceGH, tok, nil).want(t, "delete", http.StatusNoContent)
	e.call(t, "GET", "/upstream-oauth-links/"+aliceGH, tok, nil).want(t, "get a deleted link", http.StatusNotFound)
	e.call(t, "DELETE", "/upstream-oauth-links/"+aliceGH, tok, nil).want(t, "delete it again", http.StatusNotFound)
	e.call(t, "DELETE", "/upstream-oauth-links/"+unknown, tok, nil).want(t, "delete an unknown link", http.StatusNotFound)
	carol := e.call(t, "POST", "/users", tok, map[string]any{"username": "carol"}).want(t, "a user without a password", http.StatusCreated).data()["id"].(string)
	carolCorp := add(carol, "corp", "carol-at-corp", nil).want(t, "link carol", http.StatusCreated).data()["id"].(string)
	e.call(t, "DELETE", "/upstream-oauth-links/"+carolCorp, tok, nil).want(t, "delete carol's only way in", http.StatusConflict)

	// The audit trail names the administrator for the links made and removed.
	audit := e.call(t, "GET", "/audit-events?filter[user]="+alice.GetId()+"&page[first]=100", tok, nil).want(t, "audit", http.StatusOK)
	var linked, unlinked bool
	for _, ev := range audit.list() {
		a := ev["attributes"].(map[string]any)
		summary, _ := a["summary"].(string)
		if strings.Contains(summary, "linked (link "+aliceCorp) && a["actor"] == "admin:client:"+adminClientID {
			linked = true
		}
		if strings.Contains(summary, "unlinked (link "+aliceGH) && a["actor"] == "admin:client:"+adminClientID {
			unlinked = true
		}
	}
	if !linked || !unlinked {
		t.Fatalf("the audit trail lacks the administrator's links: %s", audit.raw)
	}

	// Refusals: no token, a token without administration.
	alicePAT := e.call(t, "POST", "/personal-sessions", tok, map[string]any{"actor_user_id": alice.GetId(), "human_name": "t", "scope": "urn:matrix:client:api:*"}).
		want(t, "alice's token", http.StatusCreated).attr("access_token").(string)
	for _, c := range []struct{ method, path string }{
		{"GET", "/upstream-oauth-providers"}, {"GET", "/upstream-oauth-providers/corp"},
		{"GET", "/upstream-oauth-links"}, {"GET", "/upstream-oauth-links/" + aliceCorp},
		{"POST", "/upstream-oauth-links"}, {"DELETE", "/upstream-oauth-links/" + aliceCorp},
	} {
		var body any
		if c.method == "POST" {
			body = map[string]any{"user_id": alice.GetId(), "provider_id": "github", "subject": "x"}
		}
		e.call(t, c.method, c.path, "", body).want(t, c.method+" "+c.path+" without a token", http.StatusUnauthorized)
		e.call(t, c.method, c.path, "mat_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_000000", body).want(t, c.method+" "+c.path+" with a forged token", http.StatusUnauthorized)
		e.call(t, c.method, c.path, alicePAT, body).want(t, c.method+" "+c.path+" as a non-administrator", http.StatusForbidden)
	}
	if r := e.call(t, "GET", "/upstream-oauth-links/"+aliceCorp, tok, nil).want(t, "alice's link stays", http.StatusOK); r.attr("user_id") != alice.GetId() {
		t.Fatalf("alice's link: %s", r.raw)
	}
}
