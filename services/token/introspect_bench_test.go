package token

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/telemetry"
)

// BenchmarkIntrospectHTTP is the homeserver's HTTP introspection of a live
// access token (RFC 7662, authenticated with the shared secret), in process:
// the public listener's whole handler chain as the host composes it
// (telemetry, client address, security headers, deadline, body limit,
// routes) and the service's handler, without the network and net/http's
// connection handling. Its allocs/op is the allocation per request the
// service and the platform's HTTP edge add (issue 16).
func BenchmarkIntrospectHTTP(b *testing.B) {
	env := newLockEnv(b)
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tel.Shutdown(context.Background()) })
	env.tel = tel
	r := env.replica(b)
	access, _ := r.session(b, env.newUser(b), "oauth")
	h := publicChain(b, r.svc, tel)
	body := "token=" + access
	serve := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/oauth2/introspect", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+lockTestSecret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	if w := serve(); w.Code != http.StatusOK || !strings.HasPrefix(w.Body.String(), `{"active":true,`) {
		b.Fatalf("introspection answered %d %s", w.Code, w.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		serve()
	}
}

// publicChain is the handler of the public listener as platform/host composes it.
func publicChain(b *testing.B, svc *Service, tel *telemetry.Telemetry) http.Handler {
	b.Helper()
	clients, err := clientaddr.New(clientaddr.DefaultTrustedProxies(), clientaddr.XForwardedFor)
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.RegisterHTTP(mux)
	return httpx.Public(mux, tel, "public", httpx.Edge{Timeout: 30 * time.Second, MaxBody: 1 << 20, Context: clients.WithAddr})
}

// BenchmarkIntrospectRefresh is a client's introspection of its own refresh
// token, which the index does not hold (index.lookupRefresh): a read of the
// sessions read model and of the session's newest event on the stream per
// question. The homeserver never pays it (a refresh token is never active to
// it); this is the price of keeping refresh tokens out of every replica's
// memory.
func BenchmarkIntrospectRefresh(b *testing.B) {
	env := newLockEnv(b)
	r := env.replica(b)
	_, refresh := r.session(b, env.newUser(b), "oauth")
	ctx := context.Background()
	owner := viewer{clientID: "the-client"}
	if res, err := r.svc.introspectFor(ctx, refresh, owner); err != nil || !res.Active {
		b.Fatalf("the refresh token: active %v, %v", res.Active, err)
	}
	b.ReportAllocs()
	for b.Loop() { // b.Loop times only the loop
		if res, err := r.svc.introspectFor(ctx, refresh, owner); err != nil || !res.Active {
			b.Fatalf("the refresh token: active %v, %v", res.Active, err)
		}
	}
}
