package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// TestFrenchPagesInBrowser signs up through the pages with a Chromium that
// asks for French (Accept-Language: fr-FR first): the sign-in, registration,
// code and consent pages are in French and declare it in <html lang>, pass
// axe-core, and the emailed code comes in a French email. The screenshots
// login-fr and register-fr show the first two pages.
func TestFrenchPagesInBrowser(t *testing.T) {
	e := newOAuthEnv(t)
	b := newBrowser(t)
	cb := newCallbackServer(t)
	client := e.client
	client.RedirectURL = cb.redirectURL()
	t.Cleanup(func() {
		if t.Failed() {
			log := e.s.log.String()
			if len(log) > 8000 {
				log = log[len(log)-8000:]
			}
			t.Logf("gatehouse serve log (end):\n%s", log)
		}
	})
	acceptLanguage(b, "fr-FR,fr;q=0.9,en;q=0.5")

	authURL := client.AuthCodeURL("state-fr", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if status := b.open("authorize", authURL); status != http.StatusOK || !strings.Contains(b.location(), "/login?grant=") {
		t.Fatalf("authorize led to %d %s", status, b.location())
	}
	wantFrench(t, b, "sign-in page", "Se connecter", "pour continuer vers Test Client", "Nom d’utilisateur", "Mot de passe oublié", "Créer un compte")
	b.page("login-fr")

	b.navigate("create an account", chromedp.Click(chromedp.CSS(`a[href*="/register"]`)))
	if !strings.Contains(b.location(), "/register?grant=") {
		t.Fatalf("the sign-in page's link led to %s", b.location())
	}
	wantFrench(t, b, "registration page", "Créer un compte", "Adresse e-mail", "@utilisateur:example.org", "Confirmer le mot de passe", "Vous avez déjà un compte")
	b.page("register-fr")

	b.fill("username", "zoe")
	b.fill("email", "zoe@example.org")
	b.fill("password", "correct horse battery staple")
	b.fill("password_confirm", "correct horse battery stapler")
	if status := b.submit("mismatched passwords", "button[type=submit]"); status != http.StatusBadRequest {
		t.Errorf("mismatched passwords answered %d", status)
	}
	if got := b.text("#password_confirm-error"); got != "Les deux mots de passe ne sont pas identiques." {
		t.Errorf("the confirmation's error is %q", got)
	}
	b.fill("password", "correct horse battery staple")
	b.fill("password_confirm", "correct horse battery staple")
	b.submit("register", "button[type=submit]")
	if !strings.Contains(b.location(), "/register/verify") {
		t.Fatalf("after the registration form:\n%s", b.pageText())
	}
	wantFrench(t, b, "code page", "Consultez vos e-mails", "Nous avons envoyé un code à 6 chiffres à zoe@example.org")
	b.checkAccessibility("verify-fr")

	subject, text := emailTo(t, e.s.dataDir, "zoe@example.org")
	if !strings.HasPrefix(subject, "Votre code de vérification") {
		t.Errorf("email subject %q is not French", subject)
	}
	m := codeLine.FindStringSubmatch(text)
	if m == nil || !strings.Contains(text, "Bonjour") || !strings.Contains(text, "pour votre nouveau compte") {
		t.Fatalf("the email is not French, or has no code:\n%s", text)
	}

	b.fill("code", m[1])
	if status := b.submit("verify", "button[type=submit]"); status != http.StatusOK || !strings.Contains(b.location(), "/consent?grant=") {
		t.Fatalf("after the code: %d\n%s", status, b.pageText())
	}
	wantFrench(t, b, "consent page", "Autoriser l’accès à votre compte", "Test Client souhaite utiliser votre compte",
		"Lire vos messages", "@zoe:example.org", "Ce n’est pas vous")
	b.checkAccessibility("consent-fr")
	b.submit("continue", `button[value="allow"]`)
	if q := cb.last(t); q.Get("state") != "state-fr" || q.Get("code") == "" {
		t.Fatalf("callback: %v", q)
	}
}

// acceptLanguage makes the browser send this Accept-Language header with
// every request from its tab.
func acceptLanguage(b *browser, header string) {
	b.t.Helper()
	b.do("set Accept-Language", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Accept-Language": header},
		})
		return err
	}))
}

// wantFrench checks that the page declares French and its main content
// has every text of want, the first being the heading.
func wantFrench(t *testing.T, b *browser, what string, want ...string) {
	t.Helper()
	if lang := eval[string](b, `document.documentElement.lang`); lang != "fr" {
		t.Errorf("%s: <html lang=%q>, want fr", what, lang)
	}
	if h1 := b.text("h1"); !strings.HasPrefix(h1, want[0]) {
		t.Errorf("%s: heading %q, want %q", what, h1, want[0])
	}
	text := b.text("main")
	for _, s := range want[1:] {
		if !strings.Contains(text, s) {
			t.Errorf("%s lacks %q:\n%s", what, s, text)
		}
	}
}
