package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// benchBrowser is an HTTP client with a cookie jar that does not follow redirects.
func benchBrowser(b *testing.B) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: noRedirects, Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// signedIn returns a browser holding a session cookie for the user: the
// session is started over gRPC as the sign-in page does (its password
// checked once, before the benchmark's timer), so password hashing stays out
// of the numbers.
func signedIn(b *testing.B, e *oauthEnv) *http.Client {
	c := benchBrowser(b)
	s := browserSession(b, e.conn, e.user.GetUsername(), e.user.GetUsername()+"'s password", func(r *accountsv1.StartBrowserSessionRequest) {
		r.UserAgent, r.IpAddress = "bench", "127.0.0.1"
	})
	u, _ := url.Parse(e.issuer)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "gatehouse-session", Value: s.GetSecret(), Path: "/"}})
	return c
}

func get(c *http.Client, u string) (*http.Response, string, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

// startGrant sends the browser to /authorize and returns the grant id.
func startGrant(c *http.Client, e *oauthEnv, verifier string) (string, error) {
	resp, err := c.Get(e.client.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("grant") == "" {
		return "", fmt.Errorf("authorize answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("grant"), nil
}

// BenchmarkWeb is a load test of the pages: sign-in and consent rendering, and
// the full browser round trip (authorize → consent → redirect → code exchange)
// for an already signed-in browser, so argon2id does not dominate.
func BenchmarkWeb(b *testing.B) {
	e := newOAuthEnv(b, "GATEHOUSE_LOG_LEVEL=error")
	ctx := context.Background()
	anon := benchBrowser(b)
	grant, err := startGrant(anon, e, oauth2.GenerateVerifier())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("render-login", func(b *testing.B) {
		page := e.issuer + "login?grant=" + grant
		drive(b, func() error {
			resp, body, err := get(anon, page)
			if err == nil && (resp.StatusCode != http.StatusOK || !strings.Contains(body, `autocomplete="current-password"`)) {
				err = fmt.Errorf("login page: %d", resp.StatusCode)
			}
			return err
		})
	})
	b.Run("render-consent", func(b *testing.B) {
		c := signedIn(b, e)
		page := e.issuer + "consent?grant=" + grant
		drive(b, func() error {
			resp, body, err := get(c, page)
			if err == nil && (resp.StatusCode != http.StatusOK || !csrfField.MatchString(body)) {
				err = fmt.Errorf("consent page: %d", resp.StatusCode)
			}
			return err
		})
	})
	b.Run("signed-in-round-trip", func(b *testing.B) {
		c := signedIn(b, e)
		drive(b, func() error {
			verifier := oauth2.GenerateVerifier()
			grant, err := startGrant(c, e, verifier)
			if err != nil {
				return err
			}
			_, body, err := get(c, e.issuer+"consent?grant="+grant)
			if err != nil {
				return err
			}
			m := csrfField.FindStringSubmatch(body)
			if m == nil {
				return fmt.Errorf("no CSRF token on the consent page")
			}
			req, _ := http.NewRequest(http.MethodPost, e.issuer+"consent?grant="+grant,
				strings.NewReader(url.Values{"csrf": {m[1]}, "action": {"allow"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", strings.TrimSuffix(e.issuer, "/"))
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			back, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || back.Query().Get("code") == "" {
				return fmt.Errorf("consent answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			_, err = e.client.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
			return err
		})
	})
}
