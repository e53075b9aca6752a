package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Two web replicas sharing web.secret, and nothing else: a registration
// started on one is finished on the other, a form rendered by one is accepted
// by the other, and a compat SSO sign-in begun on one is confirmed on the
// other. The registration waits in accounts, not in a web process.
func TestAnyWebReplicaTakesAnyStep(t *testing.T) {
	d := newSplitDeployment(t)
	secret := "GATEHOUSE_WEB_SECRET=" + strings.Repeat("shared web secret ", 3)
	a := d.process(t, "accounts,authorize,token,notify,web", nil, "", secret)
	aBase := "http://" + a.http + "/"
	b := d.process(t, "web", a, aBase, secret)
	bBase := "http://" + b.http + "/"
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica A log:\n%s\nreplica B log:\n%s", tail(a.log.String()), tail(b.log.String()))
		}
	})

	// One browser (one cookie jar: cookies ignore ports) talking to both.
	onA := newForm(t, aBase)
	onB := &form{c: onA.c, base: bBase}
	// crossPost loads path from one replica and posts its form to the other.
	crossPost := func(from, to *form, path string, values url.Values) (*http.Response, string) {
		t.Helper()
		_, page := from.get(t, path)
		m := csrfField.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no CSRF token on %s%s:\n%s", from.base, path, page)
		}
		values.Set("csrf", m[1])
		req, _ := http.NewRequest(http.MethodPost, to.base+path, strings.NewReader(values.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", strings.TrimSuffix(to.base, "/"))
		resp, err := to.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	const pw = "ivy's long passphrase 7"
	resp, body := crossPost(onA, onB, "register", url.Values{"username": {"ivy"}, "email": {"ivy@example.com"},
		"password": {pw}, "password_confirm": {pw}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "register/verify") {
		t.Fatalf("registration form posted to B with A's token: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	for _, c := range onA.c.Jar.Cookies(&url.URL{Scheme: "http", Host: a.http, Path: "/"}) {
		if strings.Contains(c.Value, "passphrase") {
			t.Fatalf("cookie %s holds the password", c.Name)
		}
	}
	code := emailedCode(t, a.dataDir, "ivy@example.com")
	if status, page := onA.get(t, "register/verify"); status != http.StatusOK || !strings.Contains(page, "ivy@example.com") {
		t.Fatalf("replica A does not know the registration B started: %d\n%s", status, page)
	}
	resp, body = crossPost(onB, onA, "register/verify", url.Values{"code": {code}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("code typed on A for B's page: %d\n%s", resp.StatusCode, body)
	}
	if status, page := onB.get(t, "account"); status != http.StatusOK || !strings.Contains(page, "@ivy:") {
		t.Fatalf("signed in through A, the account page on B: %d\n%s", status, page)
	}

	// Compat SSO: begun on A, confirmed on B, the login token redeemed on A.
	const redirect = "http://127.0.0.1:41234/callback"
	start, err := onA.c.Get(aBase + "_matrix/client/v3/login/sso/redirect?" + url.Values{"redirectUrl": {redirect}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	start.Body.Close()
	complete := strings.TrimPrefix(start.Header.Get("Location"), "/")
	if start.StatusCode != http.StatusSeeOther || !strings.HasPrefix(complete, "complete-compat-sso/") {
		t.Fatalf("SSO redirect on A: %d %q", start.StatusCode, complete)
	}
	resp, body = crossPost(onB, onB, complete, url.Values{"action": {"continue"}})
	back, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || back == nil || !strings.HasPrefix(back.String(), redirect) || back.Query().Get("loginToken") == "" {
		t.Fatalf("SSO confirmation on B: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	login, err := http.Post(aBase+"_matrix/client/v3/login", "application/json",
		strings.NewReader(`{"type":"m.login.token","token":"`+back.Query().Get("loginToken")+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer login.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(login.Body).Decode(&out); err != nil || login.StatusCode != http.StatusOK || !strings.HasPrefix(out["user_id"].(string), "@ivy:") {
		t.Fatalf("m.login.token on A: %d %v %v", login.StatusCode, out, err)
	}
}
