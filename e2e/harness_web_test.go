package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// form is a browser without JavaScript: it loads a page, keeps its cookies and
// posts the page's form back with its CSRF token.
type form struct {
	c    *http.Client
	base string
}

func newForm(t *testing.T, base string) *form {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &form{c: &http.Client{Jar: jar, CheckRedirect: noRedirects, Timeout: 30 * time.Second}, base: base}
}

func (f *form) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := f.c.Get(f.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post loads path, then posts values with the page's CSRF token.
func (f *form) post(t *testing.T, path string, values url.Values) (*http.Response, string) {
	t.Helper()
	_, page := f.get(t, path)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on %s:\n%s", path, page)
	}
	values.Set("csrf", m[1])
	req, _ := http.NewRequest(http.MethodPost, f.base+path, strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", strings.TrimSuffix(f.base, "/"))
	resp, err := f.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
