package web

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/services/web/internal/i18n"
)

// The pages speak the language the browser asks for (the catalogs and the
// matching are tested in internal/i18n).

func TestAcceptLanguage(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		header, want string
	}{
		{"fr", "fr"},
		{"FR", "fr"},
		{"fr-CA", "fr"},
		{"fr-CA,fr;q=0.9", "fr"},
		{"fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "fr"},
		{"de,fr;q=0.5", "fr"},
		{"de,fr;q=0.5,en;q=0.4", "fr"},
		{"fr;q=0.5,en;q=0.6", "en"},
		{"fr;q=0,en", "en"},
		{"de", "en"},
		{"", "en"},
		{"*", "en"},
		{"en-GB,fr;q=0.1", "en"},
		{"en-US,en;q=0.9", "en"},
		{"fr;q=abc", "en"},
		{"!!!,fr", "en"},
		{strings.Repeat("fr-CA,", 2000) + "fr", "en"},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		if tt.header != "" {
			r.Header.Set("Accept-Language", tt.header)
		}
		if got := e.svc.localizer(r).Lang; got != tt.want {
			t.Errorf("Accept-Language %.40q: %s, want %s", tt.header, got, tt.want)
		}
	}
	// Without templates (a Service built by hand), English.
	if got := (&Service{}).localizer(&http.Request{Header: http.Header{"Accept-Language": {"fr"}}}).Lang; got != i18n.DefaultLanguage {
		t.Errorf("a Service without pages speaks %s", got)
	}
}

// getIn fetches a page with an Accept-Language header ("" for none).
func getIn(t *testing.T, u, acceptLanguage string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acceptLanguage != "" {
		req.Header.Set("Accept-Language", acceptLanguage)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Pages come in the language the browser asks for, say so in <html lang>,
// and tell caches that they vary with Accept-Language.
func TestPagesInFrench(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		path, header string
		status       int
		want, deny   []string
	}{
		{"/login", "fr-CA,fr;q=0.9", 200,
			[]string{`<html lang="fr">`, "<h1>Se connecter</h1>", "Mot de passe oublié", "Créer un compte", "Nom d’utilisateur", "connexion pour example.org"},
			[]string{"Sign in", "Password"}},
		{"/login", "", 200,
			[]string{`<html lang="en">`, "<h1>Sign in</h1>", "Forgot your password?", "Create an account"},
			[]string{"Se connecter"}},
		{"/login", "de", 200, []string{`<html lang="en">`, "<h1>Sign in</h1>"}, nil},
		{"/register", "fr", 200,
			[]string{`<html lang="fr">`, "<h1>Créer un compte</h1>", "Adresse e-mail", "@utilisateur:example.org", "Confirmer le mot de passe"},
			[]string{"Create an account"}},
		{"/nothing/here", "fr", 404, []string{`<html lang="fr">`, "Page introuvable"}, []string{"Page not found"}},
		{"/login?grant=nonsense", "fr", 400, []string{"Cette demande de connexion n’est pas valide"}, nil},
		{"/link?code=XXXX-XXXX", "fr", 404, []string{"Ce code n’est pas valide", `value="XXXX-XXXX"`}, nil},
		{"/recover", "fr", 200, []string{"Réinitialiser votre mot de passe", "Envoyer le lien"}, nil},
	}
	for _, tt := range tests {
		resp, body := getIn(t, e.srv.URL+tt.path, tt.header)
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s (%q): %d, want %d", tt.path, tt.header, resp.StatusCode, tt.status)
		}
		if !slices.Contains(resp.Header.Values("Vary"), "Accept-Language") {
			t.Errorf("GET %s: Vary %q", tt.path, resp.Header.Values("Vary"))
		}
		for _, want := range tt.want {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s (%q) lacks %q\n%s", tt.path, tt.header, want, body)
			}
		}
		for _, deny := range tt.deny {
			if strings.Contains(body, deny) {
				t.Errorf("GET %s (%q) has %q", tt.path, tt.header, deny)
			}
		}
	}

	// A form's errors come in the same language as the form.
	c := e.client()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/login", nil)
	req.Header.Set("Accept-Language", "fr")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	token := csrfField.FindStringSubmatch(string(b))[1]
	form := url.Values{"csrf": {token}, "username": {"alice"}, "password": {"wrong"}}
	req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept-Language", "fr")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "Le nom d’utilisateur ou le mot de passe est incorrect.") {
		t.Errorf("wrong password in French: %d\n%s", resp.StatusCode, b)
	}
}

func TestDatesInEveryLanguage(t *testing.T) {
	at := timestamppb.New(time.Date(2026, time.August, 2, 15, 4, 5, 0, time.FixedZone("CEST", 2*3600)))
	for _, tt := range []struct{ lang, want string }{
		{"en", "2 August 2026, 13:04 UTC"},
		{"fr", "2 août 2026 à 13:04 UTC"},
	} {
		got := when(newLocalizer(tt.lang), at)
		if got == nil || got.Text != tt.want || got.ISO != "2026-08-02T13:04:05Z" {
			t.Errorf("when(%s) = %+v, want %q", tt.lang, got, tt.want)
		}
	}
	if when(newLocalizer("en"), nil) != nil {
		t.Error("when(nil) is not nil")
	}
}
