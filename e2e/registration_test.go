package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// Registration can be closed, or require a registration token; people may
// sign in with their email address when the deployment allows it.
func TestRegistrationPolicy(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		s := startServe(t, dataDir(t), "GATEHOUSE_REGISTRATION=closed")
		f := newForm(t, "http://"+s.http+"/")
		if status, body := f.get(t, "register"); status != http.StatusForbidden || !strings.Contains(body, "Registration is closed") {
			t.Fatalf("closed registration page: %d", status)
		}
	})
	t.Run("token", func(t *testing.T) {
		s := startServe(t, dataDir(t), "GATEHOUSE_REGISTRATION=token")
		f := newForm(t, "http://"+s.http+"/")
		code, out, errOut := s.cli(t, "registration-token", "add", "--uses", "1")
		if code != 0 {
			t.Fatalf("registration-token add: %s", errOut)
		}
		token := strings.Fields(out)[0]
		fields := func(tok, user string) url.Values {
			return url.Values{"username": {user}, "email": {user + "@example.com"}, "password": {"a long passphrase 42"},
				"password_confirm": {"a long passphrase 42"}, "registration_token": {tok}}
		}
		if _, body := f.post(t, "register", fields("", "dora")); !strings.Contains(body, "Enter the registration token") {
			t.Fatal("a registration without a token was not asked for one")
		}
		if resp, body := f.post(t, "register", fields("made-up-token", "dora")); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not valid") {
			t.Fatalf("a made-up token: %d", resp.StatusCode)
		}
		if resp, _ := f.post(t, "register", fields(token, "dora")); resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "register/verify") {
			t.Fatalf("a valid token: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		// The one use is spent.
		other := newForm(t, "http://"+s.http+"/")
		if resp, _ := other.post(t, "register", fields(token, "erik")); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a used-up token: %d", resp.StatusCode)
		}
		if _, out, _ := s.cli(t, "registration-token", "list"); !strings.Contains(out, "1/1") {
			t.Fatalf("registration-token list:\n%s", out)
		}
	})
	t.Run("login with email", func(t *testing.T) {
		e := newOAuthEnv(t, "GATEHOUSE_LOGIN_WITH_EMAIL=true")
		_, err := accountsv1.NewAccountsServiceClient(e.conn).Register(context.Background(),
			&accountsv1.RegisterRequest{Username: "fay", Password: "fay's password", Email: "fay@example.com", SkipVerification: true})
		if err != nil {
			t.Fatal(err)
		}
		f := newForm(t, e.issuer)
		resp, _ := f.post(t, "login", url.Values{"username": {"fay@example.com"}, "password": {"fay's password"}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in with an email address: %d", resp.StatusCode)
		}
		if _, body := f.get(t, ""); !strings.Contains(body, "fay") {
			t.Fatal("not signed in as fay after signing in with her email address")
		}
	})
}

// Wrong codes on the verification page are limited: after five, even the
// right code no longer works and the page says to ask for a new one.
func TestWrongCodeAttemptsLimited(t *testing.T) {
	dir := dataDir(t)
	s := startServe(t, dir)
	f := newForm(t, "http://"+s.http+"/")
	resp, _ := f.post(t, "register", url.Values{"username": {"gina"}, "email": {"gina@example.com"},
		"password": {"a long passphrase 42"}, "password_confirm": {"a long passphrase 42"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("registration form: %d", resp.StatusCode)
	}
	code := emailedCode(t, dir, "gina@example.com")
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i, left := range []string{"4 attempts left", "3 attempts left", "2 attempts left", "1 attempt left", "no attempts left"} {
		if _, body := f.post(t, "register/verify", url.Values{"code": {wrong}}); !strings.Contains(body, left) {
			t.Fatalf("wrong code %d: the page does not say %q", i+1, left)
		}
	}
	if _, body := f.post(t, "register/verify", url.Values{"code": {code}}); !strings.Contains(body, "tried too many times") {
		t.Fatal("the right code still worked after five wrong ones")
	}
}
