package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's Chromium (installed by `make deps`)
// headless over the DevTools protocol, save a screenshot of every page they
// see under <repo>/screenshots, and run axe-core (also from `make deps`) in
// each page, failing on serious or critical accessibility violations.

const chromiumPath = "/usr/bin/chromium"

// repoDir is the repository's root, one level above this package.
func repoDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium with one tab.
type browser struct {
	t     *testing.T
	alloc context.Context
	ctx   context.Context
	shots string
	axe   string
}

// newBrowser starts Chromium with a fresh profile; it stops with the test.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run `make deps` (it installs Debian's chromium)", chromiumPath)
	}
	repo := repoDir(t)
	axePath := filepath.Join(repo, ".cache", "axe", "node_modules", "axe-core", "axe.min.js")
	axe, err := os.ReadFile(axePath)
	if err != nil {
		t.Fatalf("axe-core is missing: run `make deps` (it installs axe-core from npm): %v", err)
	}
	profile, err := os.MkdirTemp("", "gatehouse-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1024, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints,AutofillServerCommunication"),
		chromedp.Flag("password-store", "basic"),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		// Chromium's helpers may still write into the profile for a moment.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// The first run starts the browser: no timeout on this context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	shots := filepath.Join(repo, "screenshots")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, alloc: alloc, ctx: ctx, shots: shots, axe: string(axe)}
}

// timeout bounds one browser step.
const browserStepTimeout = 30 * time.Second

// do runs actions in the tab, failing the test on error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.pageText())
	}
}

// navigate runs actions that load a page (a navigation, a click on a submit
// button) and returns the HTTP status of the final document.
func (b *browser) navigate(what string, actions ...chromedp.Action[chromedp.Void]) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.pageText())
	}
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// open loads url.
func (b *browser) open(what, url string) int {
	b.t.Helper()
	return b.navigate(what, chromedp.Navigate(url))
}

// submit clicks a submit button (by CSS selector) and waits for the page it leads to.
func (b *browser) submit(what, button string) int {
	b.t.Helper()
	return b.navigate(what, chromedp.Click(chromedp.CSS(button)))
}

// fill replaces the value of an input (by id) with what a person types.
func (b *browser) fill(id, value string) {
	b.t.Helper()
	b.do("fill #"+id, chromedp.Clear(chromedp.ID(id)), chromedp.SendKeys(chromedp.ID(id), value))
}

// eval evaluates a JavaScript expression in the page and decodes its result.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %q: %v", expr, err)
	}
	return v
}

// text is the text of the first element matching a CSS selector, or "".
func (b *browser) text(css string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ""`, css))
}

// value is the value of the input with the id.
func (b *browser) value(id string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.getElementById(%q) || {}).value || ""`, id))
}

// location is the address of the page.
func (b *browser) location() string {
	b.t.Helper()
	return eval[string](b, `location.href`)
}

// pageText is the visible text of the page, for failure messages.
func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "")`))
	if err != nil {
		return "(page unreadable: " + err.Error() + ")"
	}
	return v
}

// page checks the page a person now sees: it saves its screenshot as
// <repo>/screenshots/<name>.png and fails on serious or critical axe-core
// violations.
func (b *browser) page(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.checkAccessibility(name)
}

// axeViolation is what the test reports of an axe-core violation.
type axeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

// checkAccessibility runs axe-core in the page (evaluated over DevTools, so
// the page's Content-Security-Policy, which allows no inline script, stays
// as it is) and fails on serious and critical violations.
func (b *browser) checkAccessibility(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](b.axe)); err != nil {
		b.t.Fatalf("load axe-core into %s: %v", name, err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify({
		passes: r.passes.length,
		violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map(n => n.target.join(" "))}))}))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("axe-core on %s: %v", name, err)
	}
	var result struct {
		Passes     int            `json:"passes"`
		Violations []axeViolation `json:"violations"`
	}
	if err := json.Unmarshal([]byte(raw), &result); err != nil {
		b.t.Fatal(err)
	}
	if result.Passes == 0 {
		b.t.Fatalf("axe-core checked nothing on %s", name)
	}
	for _, v := range result.Violations {
		msg := fmt.Sprintf("%s: accessibility (%s) %s: %s at %v", name, v.Impact, v.ID, v.Help, v.Targets)
		if v.Impact == "serious" || v.Impact == "critical" {
			b.t.Error(msg)
		} else {
			b.t.Log(msg)
		}
	}
}

// cookies returns the browser's cookies for a URL.
func (b *browser) cookies(u string) []*network.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	var out []*network.Cookie
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
		out = res.Cookies
		return err
	}))
	if err != nil {
		b.t.Fatalf("cookies: %v", err)
	}
	return out
}

// clearCookies forgets every cookie, like a new private window.
func (b *browser) clearCookies() {
	b.t.Helper()
	b.do("clear cookies", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))
}

// callbackServer is an OAuth client's redirect URI on 127.0.0.1: it records
// every request and answers with a small page.
type callbackServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits []*url.URL
}

func newCallbackServer(t *testing.T) *callbackServer {
	t.Helper()
	c := &callbackServer{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/favicon.ico" { // Chromium asks for it after the page, at times after the test looked
			c.mu.Lock()
			c.hits = append(c.hits, r.URL)
			c.mu.Unlock()
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>Test Client</title></head><body><main><h1 id="back">Back at the application</h1></main></body></html>`)
	}))
	t.Cleanup(c.Close)
	return c
}

// redirectURL is the callback address the client registers and uses.
func (c *callbackServer) redirectURL() string { return c.URL + "/callback" }

// last returns the query of the latest callback.
func (c *callbackServer) last(t *testing.T) url.Values {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.hits) == 0 {
		t.Fatal("the client's redirect URI was never reached")
	}
	u := c.hits[len(c.hits)-1]
	if u.Path != "/callback" {
		t.Fatalf("callback at %s", u)
	}
	return u.Query()
}
