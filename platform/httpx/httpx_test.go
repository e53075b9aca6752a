package httpx_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/telemetry"
)

func TestSecurityHeaders(t *testing.T) {
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })
	ownCSP := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-abc'")
		io.WriteString(w, "page")
	})
	tests := []struct {
		name    string
		handler http.Handler
		tls     bool
		csp     string
		hsts    string
	}{
		{"plain http", plain, false, httpx.DefaultCSP, ""},
		{"over tls", plain, true, httpx.DefaultCSP, "max-age=63072000; includeSubDomains"},
		{"handler's own csp", ownCSP, false, "default-src 'none'; script-src 'nonce-abc'", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.tls {
				req.TLS = &tls.ConnectionState{}
			}
			rec := httptest.NewRecorder()
			httpx.SecurityHeaders(tt.handler).ServeHTTP(rec, req)
			h := rec.Result().Header
			want := map[string]string{
				"X-Content-Type-Options":    "nosniff",
				"Referrer-Policy":           "no-referrer",
				"X-Frame-Options":           "DENY",
				"Content-Security-Policy":   tt.csp,
				"Strict-Transport-Security": tt.hsts,
			}
			for k, v := range want {
				if got := h.Values(k); v == "" && len(got) != 0 || v != "" && (len(got) != 1 || got[0] != v) {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestLimitBody(t *testing.T) {
	echoLen := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, strings.Repeat("x", len(b)))
	})
	tests := []struct {
		size int
		code int
	}{
		{0, http.StatusOK},
		{1024, http.StatusOK},
		{1025, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("a", tt.size)))
		httpx.LimitBody(echoLen, 1024).ServeHTTP(rec, req)
		if rec.Code != tt.code {
			t.Errorf("body of %d bytes: status %d, want %d", tt.size, rec.Code, tt.code)
		}
		if tt.code == http.StatusOK && rec.Body.Len() != tt.size {
			t.Errorf("body of %d bytes: handler read %d", tt.size, rec.Body.Len())
		}
	}
}

// getJSON serves one GET of path by h and decodes the body.
func getJSON(t *testing.T, h http.Handler, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s: %v: %s", path, err, rec.Body)
	}
	return rec.Code, body
}

func TestHealth(t *testing.T) {
	ok := httpx.Check{Name: "nats", Fn: func(context.Context) error { return nil }}
	failing := httpx.Check{Name: "database", Fn: func(context.Context) error { return errors.New("connection refused") }}
	slow := httpx.Check{Name: "slow", Fn: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	panicking := httpx.Check{Name: "buggy", Fn: func(context.Context) error { panic("oops") }}

	tests := []struct {
		name   string
		checks []httpx.Check
		ready  bool
		path   string
		code   int
		status string
		detail map[string]string
	}{
		{"no checks", nil, false, "/health", 200, "ok", nil},
		{"all ok", []httpx.Check{ok}, false, "/health", 200, "ok", map[string]string{"nats": "ok"}},
		{"one fails", []httpx.Check{ok, failing}, false, "/health", 503, "fail", map[string]string{"nats": "ok", "database": "connection refused"}},
		{"panicking check fails", []httpx.Check{panicking}, false, "/health", 503, "fail", map[string]string{"buggy": "check panicked: oops"}},
		{"not ready yet", []httpx.Check{ok}, false, "/ready", 503, "starting", nil},
		{"ready", []httpx.Check{ok}, true, "/ready", 200, "ok", map[string]string{"nats": "ok"}},
		{"ready but failing", []httpx.Check{failing}, true, "/ready", 503, "fail", map[string]string{"database": "connection refused"}},
		{"live while a dependency fails", []httpx.Check{failing}, true, "/live", 200, "ok", nil},
		{"live while starting", []httpx.Check{failing}, false, "/live", 200, "ok", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := httpx.NewHealth(tt.checks...)
			h.SetReady(tt.ready)
			code, body := getJSON(t, httpx.OpsMux(h, nil), tt.path)
			if code != tt.code || body["status"] != tt.status {
				t.Fatalf("got %d %v, want %d status %q", code, body, tt.code, tt.status)
			}
			checks, _ := body["checks"].(map[string]any)
			for name, want := range tt.detail {
				if checks[name] != want {
					t.Errorf("check %s = %v, want %q", name, checks[name], want)
				}
			}
		})
	}

	t.Run("slow check times out", func(t *testing.T) {
		start := time.Now()
		code, body := getJSON(t, httpx.NewHealth(slow, ok).HealthHandler(), "/health")
		if code != 503 || body["checks"].(map[string]any)["slow"] != "context deadline exceeded" {
			t.Errorf("got %d %v", code, body)
		}
		if d := time.Since(start); d > httpx.CheckTimeout+time.Second {
			t.Errorf("took %v, want about %v", d, httpx.CheckTimeout)
		}
	})
}

func TestOpsMux(t *testing.T) {
	tel, err := telemetry.Setup(t.Context(), telemetry.Options{ServiceName: "ops-test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	mux := httpx.OpsMux(httpx.NewHealth(), tel.MetricsHandler())
	tests := []struct {
		method, path string
		code         int
		contains     string
	}{
		{http.MethodGet, "/health", 200, `"status":"ok"`},
		{http.MethodGet, "/ready", 503, `"status":"starting"`},
		{http.MethodGet, "/metrics", 200, "go_goroutines"},
		{http.MethodPost, "/health", 405, ""},
		{http.MethodGet, "/other", 404, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.contains) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, rec.Code, rec.Body, tt.code, tt.contains)
		}
	}
}

func TestInstrument(t *testing.T) {
	tel, err := telemetry.Setup(t.Context(), telemetry.Options{ServiceName: "http-test", SampleRatio: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())

	var seen trace.SpanContext
	h := httpx.Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusTeapot)
	}), tel, "authorize")

	const remoteTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest(http.MethodGet, "/authorize", nil)
	req.Header.Set("traceparent", "00-"+remoteTrace+"-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !seen.IsValid() {
		t.Fatal("handler ran without a span")
	}
	if seen.TraceID().String() == remoteTrace {
		t.Error("a public request chose its trace id")
	}

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `http_response_status_code="418"`) {
		t.Errorf("metrics lack the instrumented request:\n%s", rec.Body)
	}

	plain := http.NotFoundHandler()
	if got := httpx.Instrument(plain, nil, "x"); got == nil {
		t.Error("Instrument with nil telemetry returned nil")
	}
}

// A secret in a request's path (a recovery ticket) never reaches the traces:
// spans record the route the request matched, and so do the metrics — also
// through middleware that copies the request (Deadline), as the host's does.
func TestInstrumentRecordsRoutesNotPaths(t *testing.T) {
	chained := func(mux *http.ServeMux, tel *telemetry.Telemetry) http.Handler {
		return httpx.Instrument(httpx.SecurityHeaders(httpx.Deadline(httpx.Routes(mux), time.Minute)), tel, "public")
	}
	public := func(mux *http.ServeMux, tel *telemetry.Telemetry) http.Handler {
		return httpx.Public(mux, tel, "public", httpx.Edge{Timeout: time.Minute})
	}
	t.Run("Instrument", func(t *testing.T) { recordsRoutesNotPaths(t, chained) })
	t.Run("Public", func(t *testing.T) { recordsRoutesNotPaths(t, public) })
}

func recordsRoutesNotPaths(t *testing.T, serve func(*http.ServeMux, *telemetry.Telemetry) http.Handler) {
	var traces bytes.Buffer
	tel, err := telemetry.Setup(t.Context(), telemetry.Options{ServiceName: "http-test", SampleRatio: 1, Traces: "stdout",
		TraceWriter: &traces, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /recover/{ticket}", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/", http.NotFound)
	h := serve(mux, tel)
	const ticket = "Zq8ticketSECRETticketSECRET0000x"
	for _, path := range []string{"/recover/" + ticket, "/" + ticket + "/nothing"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	metrics := rec.Body.String()
	if strings.Contains(metrics, ticket) || !strings.Contains(metrics, `http_route="/recover/{ticket}"`) || !strings.Contains(metrics, `http_route="/"`) {
		t.Errorf("the request metrics do not hold the routes (and only them):\n%s", metrics)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := traces.String()
	if strings.Contains(out, ticket) {
		t.Fatalf("the traces hold the ticket:\n%s", out)
	}
	if !strings.Contains(out, "/recover/{ticket}") {
		t.Fatalf("the traces do not record the route:\n%s", out)
	}
}

func TestServeListenerShutsDownGracefully(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + lis.Addr().String()
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- httpx.ServeListener(ctx, lis, h, slog.New(slog.DiscardHandler)) }()

	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatalf("GET while serving: %v", err)
	}
	resp.Body.Close()

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- string(b)
	}()
	<-started
	cancel()
	refused := false
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		c, err := net.DialTimeout("tcp", lis.Addr().String(), 100*time.Millisecond)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if !refused {
		t.Error("listener still accepts connections during shutdown")
	}
	close(release)
	if got := <-slow; got != "done" {
		t.Errorf("request in flight got %q, want it to finish with \"done\"", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeListener = %v, want nil", err)
		}
	case <-time.After(httpx.ShutdownTimeout + time.Second):
		t.Fatal("ServeListener did not return")
	}
}

func TestServeListenError(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	err = httpx.Serve(t.Context(), lis.Addr().String(), http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "httpx: listen") {
		t.Errorf("Serve on a busy port = %v, want a listen error", err)
	}
}

// Every request gets the server's deadline, and its context ends with it.
func TestDeadline(t *testing.T) {
	h := httpx.Deadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deadline, ok := r.Context().Deadline()
		if !ok {
			t.Error("no deadline")
			return
		}
		if left := time.Until(deadline); left <= 0 || left > 50*time.Millisecond {
			t.Errorf("%v left, want at most 50ms", left)
		}
		select {
		case <-r.Context().Done():
			w.WriteHeader(http.StatusServiceUnavailable)
		case <-time.After(5 * time.Second):
			t.Error("the request's context outlived its deadline")
		}
	}), 50*time.Millisecond)
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusServiceUnavailable || time.Since(start) > 2*time.Second {
		t.Fatalf("status %d after %v", rec.Code, time.Since(start))
	}
}

// Public does in one handler what the chain of middleware did: security
// headers, the body limit, the deadline and the context's values reach the
// handler, with telemetry or without.
func TestPublic(t *testing.T) {
	tel, err := telemetry.Setup(t.Context(), telemetry.Options{ServiceName: "http-test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	type key struct{}
	edge := httpx.Edge{Timeout: time.Minute, MaxBody: 8, Context: func(ctx context.Context, r *http.Request) context.Context {
		return context.WithValue(ctx, key{}, r.Header.Get("X-Who"))
	}}
	for _, tel := range []*telemetry.Telemetry{tel, nil} {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
			deadline, ok := r.Context().Deadline()
			if !ok || time.Until(deadline) > time.Minute {
				t.Errorf("telemetry %v: deadline %v, %v; want within a minute", tel != nil, deadline, ok)
			}
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "too large", http.StatusRequestEntityTooLarge)
				return
			}
			io.WriteString(w, r.Context().Value(key{}).(string)+":"+string(b))
		})
		h := httpx.Public(mux, tel, "public", edge)
		for _, tt := range []struct {
			body string
			code int
			want string
		}{
			{"12345678", http.StatusOK, "alice:12345678"},
			{"123456789", http.StatusRequestEntityTooLarge, "too large\n"},
		} {
			req := httptest.NewRequest(http.MethodPost, "/echo", strings.NewReader(tt.body))
			req.Header.Set("X-Who", "alice")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code || rec.Body.String() != tt.want {
				t.Errorf("telemetry %v, body %q: %d %q, want %d %q", tel != nil, tt.body, rec.Code, rec.Body, tt.code, tt.want)
			}
			if rec.Header().Get("X-Frame-Options") != "DENY" || rec.Header().Get("Content-Security-Policy") != httpx.DefaultCSP {
				t.Errorf("telemetry %v: no security headers: %v", tel != nil, rec.Header())
			}
		}
	}
}

// A multipart form's temporary files, read from Public's copy of the
// request, are still removed by net/http once the request is served.
func TestPublicRemovesMultipartFiles(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseMultipartForm(1); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if files, _ := os.ReadDir(tmp); len(files) == 0 {
			t.Error("the form was not spilled to a temporary file")
		}
	})
	srv := httptest.NewServer(httpx.Public(mux, nil, "public", httpx.Edge{Timeout: time.Minute, MaxBody: 1 << 20}))
	defer srv.Close()
	body := "--x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f.txt\"\r\n\r\n" + strings.Repeat("data", 1000) + "\r\n--x--\r\n"
	resp, err := http.Post(srv.URL+"/upload", "multipart/form-data; boundary=x", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload answered %d", resp.StatusCode)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		files, _ := os.ReadDir(tmp)
		if len(files) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporary files left: %v", files)
		}
	}
}
