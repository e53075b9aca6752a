package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// benchServer is one `gatehouse serve` shared by the load tests, with a
// confidential client and a token to introspect.
type benchServer struct {
	s      *server
	base   string
	cc     clientcredentials.Config
	token  string
	client *http.Client
}

func startBench(b *testing.B) *benchServer {
	b.Helper()
	s := startServe(b, dataDir(b), "GATEHOUSE_MATRIX_SECRET="+homeserverSecret, "GATEHOUSE_LOG_LEVEL=error")
	bs := &benchServer{s: s, base: "http://" + s.http + "/", client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	body, _ := json.Marshal(map[string]any{
		"client_uri": "https://bench.example.com/", "application_type": "web",
		"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"},
	})
	resp, err := http.Post(bs.base+"oauth2/registration", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	var reg map[string]any
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("register: %d %v", resp.StatusCode, reg)
	}
	bs.cc = clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), TokenURL: bs.base + "oauth2/token"}
	tok, err := bs.cc.Token(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	bs.token = tok.AccessToken
	return bs
}

// latencies collects request durations and reports p50/p99 and requests/s.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	sort.Slice(l.all, func(i, j int) bool { return l.all[i] < l.all[j] })
	if n := len(l.all); n > 0 {
		b.ReportMetric(float64(l.all[n/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(l.all[n*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "req/s")
	}
}

// drive drives fn from 64 concurrent clients, b.N requests in all.
func drive(b *testing.B, fn func() error) {
	var lat latencies
	b.SetParallelism(32) // 2 cores × 32 = 64 concurrent requests
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			if err := fn(); err != nil {
				b.Error(err)
				return
			}
			lat.add(time.Since(t0))
		}
	})
	lat.report(b, time.Since(start))
}

// BenchmarkLoad is the load test of a running system: introspection over HTTP
// (as Synapse calls it) and gRPC, and client_credentials issuance.
func BenchmarkLoad(b *testing.B) {
	bs := startBench(b)
	form := url.Values{"token": {bs.token}}.Encode()
	b.Run("introspect-http", func(b *testing.B) {
		drive(b, func() error {
			req, _ := http.NewRequest(http.MethodPost, bs.base+"oauth2/introspect", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+homeserverSecret)
			resp, err := bs.client.Do(req)
			if err != nil {
				return err
			}
			var out map[string]any
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err == nil && out["active"] != true {
				b.Errorf("token inactive: %v", out)
			}
			return err
		})
	})
	b.Run("introspect-grpc", func(b *testing.B) {
		c := tokenv1.NewTokenServiceClient(bs.s.dial(b))
		drive(b, func() error {
			resp, err := c.Introspect(context.Background(), &tokenv1.IntrospectRequest{Token: bs.token})
			if err == nil && !resp.GetActive() {
				b.Error("token inactive")
			}
			return err
		})
	})
	b.Run("client-credentials", func(b *testing.B) {
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, bs.client)
		drive(b, func() error {
			_, err := bs.cc.Token(ctx)
			return err
		})
	})
}
