package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// captchaStandIn stands in for Cloudflare Turnstile, which cannot be reached
// from the tests: it serves a widget script and a siteverify endpoint that
// speak Turnstile's protocol. Each load of the script carries a token of its
// own, which the widget puts into the form once its checkbox is ticked; the
// siteverify endpoint accepts a token it issued, once, for the right secret,
// unless the test told it to refuse everything.
type captchaStandIn struct {
	*httptest.Server
	secret string
	mu     sync.Mutex
	issued map[string]bool // token → spent
	refuse bool
	asked  []url.Values // the siteverify forms received
}

const captchaStandInSecret = "0x4AAAAAAA-stand-in-secret-key"

func newCaptchaStandIn(t *testing.T) *captchaStandIn {
	t.Helper()
	s := &captchaStandIn{secret: captchaStandInSecret, issued: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /turnstile/v0/api.js", func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 16)
		rand.Read(b)
		token := "stand-in." + hex.EncodeToString(b)
		s.mu.Lock()
		s.issued[token] = false
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/javascript")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, standInWidget, token)
	})
	mux.HandleFunc("POST /turnstile/v0/siteverify", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.asked = append(s.asked, r.PostForm)
		token := r.PostForm.Get("response")
		spent, known := s.issued[token]
		var codes []string
		switch {
		case r.PostForm.Get("secret") != s.secret:
			codes = append(codes, "invalid-input-secret")
		case !known:
			codes = append(codes, "invalid-input-response")
		case spent:
			codes = append(codes, "timeout-or-duplicate")
		case s.refuse:
			codes = append(codes, "invalid-input-response")
		}
		if known {
			s.issued[token] = true
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"success": len(codes) == 0, "error-codes": codes, "hostname": "127.0.0.1"})
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// standInWidget is the stand-in's widget script: a labelled checkbox in
// place of each .cf-turnstile element; ticking it puts the token (%q) into
// the form, as Turnstile's widget does with cf-turnstile-response.
const standInWidget = `"use strict";
(function () {
  var token = %q;
  document.querySelectorAll(".cf-turnstile").forEach(function (el, i) {
    var id = "stand-in-captcha-" + i;
    var box = document.createElement("input");
    box.type = "checkbox";
    box.id = id;
    var label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = "I am a person (CAPTCHA stand-in)";
    var field = document.createElement("input");
    field.type = "hidden";
    field.name = "cf-turnstile-response";
    box.addEventListener("change", function () { field.value = box.checked ? token : ""; });
    el.append(box, label, field);
    el.dataset.rendered = el.dataset.sitekey;
  });
})();
`

func (s *captchaStandIn) setRefuse(refuse bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = refuse
}

func (s *captchaStandIn) questions() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.asked...)
}

// env configures gatehouse serve with the stand-in as its CAPTCHA provider.
func (s *captchaStandIn) env() []string {
	return []string{
		"GATEHOUSE_CAPTCHA_PROVIDER=cloudflare_turnstile",
		"GATEHOUSE_CAPTCHA_SITE_KEY=1x00000000000000000000AA",
		"GATEHOUSE_CAPTCHA_SECRET_KEY=" + s.secret,
		"GATEHOUSE_CAPTCHA_VERIFY_URL=" + s.URL + "/turnstile/v0/siteverify",
		"GATEHOUSE_CAPTCHA_SCRIPT_URL=" + s.URL + "/turnstile/v0/api.js",
	}
}

// Registration with a CAPTCHA, in Chromium: the widget is loaded from the
// provider (here its stand-in) under a CSP that allows exactly its origin;
// a token the provider refuses sends the form back with the reason next to
// the widget and registers nobody; a good one goes on to the emailed code.
// The secret key is never on a page.
func TestCaptchaAtRegistrationInBrowser(t *testing.T) {
	standIn := newCaptchaStandIn(t)
	e := newOAuthEnv(t, append(standIn.env(), "GATEHOUSE_LOG_LEVEL=debug")...)
	b := newBrowser(t)

	fillForm := func() {
		b.fill("username", "rosa")
		b.fill("email", "rosa@example.org")
		b.fill("password", "correct horse battery staple")
		b.fill("password_confirm", "correct horse battery staple")
	}
	solve := func() {
		b.do("tick the CAPTCHA", chromedp.WaitVisible(chromedp.ID("stand-in-captcha-0")), chromedp.Click(chromedp.ID("stand-in-captcha-0")))
	}
	checkPage := func(name string) {
		html := eval[string](b, `document.documentElement.outerHTML`)
		if strings.Contains(html, captchaStandInSecret) {
			t.Fatalf("%s shows the CAPTCHA secret", name)
		}
		b.page(name)
	}

	if status := b.open("registration", e.issuer+"register"); status != http.StatusOK {
		t.Fatalf("registration page: %d", status)
	}
	b.do("the widget renders", chromedp.WaitVisible(chromedp.ID("stand-in-captcha-0")))
	if got := eval[string](b, `document.querySelector(".cf-turnstile").dataset.rendered || ""`); got != "1x00000000000000000000AA" {
		t.Fatalf("the widget was rendered for site key %q", got)
	}
	checkPage("register-captcha")

	// Refused by the provider.
	standIn.setRefuse(true)
	fillForm()
	solve()
	if status := b.submit("register with a refused CAPTCHA", "button[type=submit]"); status != http.StatusBadRequest {
		t.Fatalf("refused CAPTCHA answered %d\n%s", status, b.pageText())
	}
	if !strings.Contains(b.text("#captcha-error"), "did not succeed") {
		t.Fatalf("no error next to the CAPTCHA:\n%s", b.pageText())
	}
	if b.value("username") != "rosa" || b.value("password") != "" {
		t.Error("the form did not keep what was typed (or kept the password)")
	}
	checkPage("register-captcha-refused")
	if got := outboxTo(t, e.s.dataDir, "rosa@example.org"); len(got) != 0 {
		t.Fatalf("a refused CAPTCHA sent %d emails", len(got))
	}

	// Not ticked at all: the provider is not even asked.
	asked := len(standIn.questions())
	standIn.setRefuse(false)
	fillForm()
	if status := b.submit("register without solving", "button[type=submit]"); status != http.StatusBadRequest || !strings.Contains(b.text("#captcha-error"), "Complete the check") {
		t.Fatalf("unsolved CAPTCHA: %d\n%s", status, b.pageText())
	}
	if len(standIn.questions()) != asked {
		t.Error("the provider was asked about a form without a token")
	}

	// Solved.
	fillForm()
	solve()
	b.submit("register with a solved CAPTCHA", "button[type=submit]")
	if !strings.Contains(b.location(), "/register/verify") {
		t.Fatalf("after a solved CAPTCHA:\n%s", b.pageText())
	}
	qs := standIn.questions()
	last := qs[len(qs)-1]
	if last.Get("secret") != captchaStandInSecret || !strings.HasPrefix(last.Get("response"), "stand-in.") || last.Get("remoteip") != "127.0.0.1" {
		t.Errorf("siteverify was asked %v", last)
	}
	code := emailedCode(t, e.s.dataDir, "rosa@example.org")
	b.fill("code", code)
	b.submit("verify", "button[type=submit]")
	if !strings.Contains(b.pageText(), "@rosa:example.org") {
		t.Fatalf("after the code:\n%s", b.pageText())
	}

	// The secret key is in no log line of the process.
	if strings.Contains(e.s.log.String(), captchaStandInSecret) {
		t.Error("the process log shows the CAPTCHA secret")
	}
}

// Without JavaScript the registration form still renders, says what to do,
// and refuses to register without the CAPTCHA; in French too.
func TestCaptchaWithoutJavaScript(t *testing.T) {
	standIn := newCaptchaStandIn(t)
	s := startServe(t, dataDir(t), standIn.env()...)
	f := newForm(t, "http://"+s.http+"/")
	resp, body := f.post(t, "register", url.Values{"username": {"sven"}, "email": {"sven@example.org"},
		"password": {"a long passphrase 42"}, "password_confirm": {"a long passphrase 42"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "needs JavaScript") || !strings.Contains(body, "Complete the check above") {
		t.Fatalf("no-JavaScript registration: %d\n%s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.http+"/register", nil)
	req.Header.Set("Accept-Language", "fr")
	fr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Body.Close()
	page := readAll(fr.Body)
	if !strings.Contains(page, "Montrez que vous êtes une personne") || !strings.Contains(page, "nécessite JavaScript") {
		t.Fatalf("French registration page:\n%s", page)
	}
	if csp := fr.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self' "+standIn.URL) || !strings.Contains(csp, "frame-src "+standIn.URL) {
		t.Errorf("CSP %q does not allow exactly the provider's origin", csp)
	}
}
