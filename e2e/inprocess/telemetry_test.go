package inprocess

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"gatehouse.dev/platform/ratelimit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/authorize"
	"gatehouse.dev/services/token"
)

// One trace follows a token request from the public HTTP server through the
// token service's gRPC call to the authorize service, the event that call
// appends to NATS, and the authorize projection that applies it: every span
// is a descendant of the HTTP request's, and the projection's span names the
// event (id, type, subject, stream). The services' logs written while
// handling the request carry its trace id.
func TestOneTraceFromHTTPToProjection(t *testing.T) {
	st := newStack(t)
	c := st.publicClient(t)
	u := st.user(t, "tracy")
	p := newPKCE()
	code := st.code(t, c, u, p, nil)
	st.spans.Reset()
	st.exchange(t, c, code, p)

	var (
		root    tracetest.SpanStub
		applied []tracetest.SpanStub
		spans   tracetest.SpanStubs
	)
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans = st.spans.GetSpans()
		root, applied = tokenRequestTrace(spans)
		if root.SpanContext.IsValid() && hasProjection(applied, "authorize") && hasProjection(applied, "token") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trace links the token request to the authorize and token projections; spans:\n%s", describe(spans))
		}
		time.Sleep(50 * time.Millisecond)
	}

	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	for _, proj := range applied {
		if !strings.HasPrefix(proj.Name, "projection ") {
			continue
		}
		// Walk up to the HTTP request, noting the kinds of span crossed.
		var path []string
		kinds := map[trace.SpanKind]bool{}
		for s := proj; ; {
			path = append(path, s.Name)
			kinds[s.SpanKind] = true
			if s.SpanContext.SpanID() == root.SpanContext.SpanID() {
				break
			}
			parent, ok := byID[s.Parent.SpanID()]
			if !ok {
				t.Fatalf("span %q of %s: its parent is not in the trace (path %v)", proj.Name, attr(proj, "gatehouse.event.type"), path)
			}
			s = parent
		}
		for _, k := range []trace.SpanKind{trace.SpanKindConsumer, trace.SpanKindProducer, trace.SpanKindServer} {
			if !kinds[k] {
				t.Errorf("the path from %q to the HTTP request crosses no %s span: %v", proj.Name, k, path)
			}
		}
		for _, key := range []string{"gatehouse.event.id", "gatehouse.event.type", "gatehouse.stream", "messaging.destination.name", "gatehouse.projection"} {
			if attr(proj, key) == "" {
				t.Errorf("span %q has no %s: %v", proj.Name, key, proj.Attributes)
			}
		}
		if strings.Contains(proj.Name, "grants") || strings.HasPrefix(attr(proj, "gatehouse.stream"), "AUTHORIZE") {
			// authorize's projection: the path went through gRPC into authorize.
			if !kinds[trace.SpanKindClient] {
				t.Errorf("the path from %q does not cross the token service's gRPC call: %v", proj.Name, path)
			}
		}
		t.Logf("%s ← %s", attr(proj, "gatehouse.event.type"), strings.Join(path, " ← "))
	}
}

// tokenRequestTrace finds the server span of the POST to /oauth2/token and
// the consumer spans (projections, reactors, tails) in its trace.
func tokenRequestTrace(spans tracetest.SpanStubs) (tracetest.SpanStub, []tracetest.SpanStub) {
	var root tracetest.SpanStub
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindServer && attr(s, "http.route") == "/oauth2/token" {
			root = s
		}
	}
	if !root.SpanContext.IsValid() {
		return root, nil
	}
	var consumers []tracetest.SpanStub
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindConsumer && s.SpanContext.TraceID() == root.SpanContext.TraceID() {
			consumers = append(consumers, s)
		}
	}
	return root, consumers
}

// hasProjection reports whether a projection of the service whose stream is
// named (upper case) applied an event in spans.
func hasProjection(spans []tracetest.SpanStub, service string) bool {
	for _, s := range spans {
		// A service's streams: its own, and its short-lived one (AUTHORIZE_PENDING).
		if stream := attr(s, "gatehouse.stream"); strings.HasPrefix(s.Name, "projection ") &&
			(stream == strings.ToUpper(service) || stream == strings.ToUpper(service)+"_PENDING") {
			return true
		}
	}
	return false
}

// attr is a span's attribute key as a string ("" when absent).
func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == attribute.Key(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}

// describe lists spans for a failure message.
func describe(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %s trace=%s span=%s parent=%s stream=%s route=%s\n", s.SpanKind, s.Name, s.SpanContext.TraceID(),
			s.SpanContext.SpanID(), s.Parent.SpanID(), attr(s, "gatehouse.stream"), attr(s, "http.route"))
	}
	return b.String()
}

// series are the samples of one scrape, by metric name: each with its labels
// (the exporter's otel_scope_* labels left out).
type series map[string][]sample

// sample is one series' value.
type sample struct {
	labels map[string]string
	value  float64
}

// scrape reads the services' metrics over HTTP in the Prometheus text
// format, as Prometheus does from the ops server's /metrics.
func (st *stack) scrape(t *testing.T) series {
	t.Helper()
	srv := httptest.NewServer(st.tel.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not in the Prometheus text format: %v", err)
	}
	out := series{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				if !strings.HasPrefix(l.GetName(), "otel_scope_") {
					labels[l.GetName()] = l.GetValue()
				}
			}
			switch {
			case m.GetCounter() != nil:
				out[name] = append(out[name], sample{labels, m.GetCounter().GetValue()})
			case m.GetGauge() != nil:
				out[name] = append(out[name], sample{labels, m.GetGauge().GetValue()})
			case m.GetHistogram() != nil:
				out[name+"_count"] = append(out[name+"_count"], sample{labels, float64(m.GetHistogram().GetSampleCount())})
				out[name+"_sum"] = append(out[name+"_sum"], sample{labels, m.GetHistogram().GetSampleSum()})
			}
		}
	}
	return out
}

// get sums the series of name whose labels include want ("k=v" pairs), and
// reports whether there was one.
func (s series) get(name string, want ...string) (float64, bool) {
	var sum float64
	found := false
next:
	for _, smp := range s[name] {
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if smp.labels[k] != v {
				continue next
			}
		}
		sum += smp.value
		found = true
	}
	return sum, found
}

// change is a metric's expected change between two scrapes.
type change struct {
	name   string
	labels []string
	// delta is the exact change; atLeast, when set, a lower bound instead.
	delta   float64
	atLeast bool
}

// check compares two scrapes against the expected changes.
func check(t *testing.T, before, after series, changes []change) {
	t.Helper()
	for _, c := range changes {
		b, _ := before.get(c.name, c.labels...)
		a, ok := after.get(c.name, c.labels...)
		if !ok {
			t.Errorf("%s%v: no such series on /metrics", c.name, c.labels)
			continue
		}
		d := a - b
		if (c.atLeast && d < c.delta) || (!c.atLeast && d != c.delta) {
			want := fmt.Sprint(c.delta)
			if c.atLeast {
				want = "≥ " + want
			}
			t.Errorf("%s%v changed by %v (%v → %v), want %s", c.name, c.labels, d, b, a, want)
		}
	}
}

// Requests against the composed services move the metrics an SRE charts, by
// exactly what they did: registrations and sign-ins by method and outcome,
// tokens by grant, refreshes and a refresh token's reuse, introspections by
// caller and outcome with their latency, events appended, projections
// following, rate-limit refusals by rule.
func TestMetricsFollowRequests(t *testing.T) {
	st := newStackWith(t, func(c *authorize.Config) {
		c.Limits = ratelimit.DefaultRules()
		c.Limits.ClientRegistration.Burst, c.Limits.ClientRegistration.Every = 3, time.Hour
	}, func(c *token.Config) { c.RefreshReuseGrace = 0 })
	before := st.scrape(t)

	mia := st.user(t, "mia")
	if _, err := st.accounts.VerifyPassword(t.Context(), &accountsv1.VerifyPasswordRequest{Username: "mia", Password: "not mia's password"}); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	c := st.publicClient(t)
	first := st.session(t, c, mia)
	second := st.refresh(t, c, first.refresh).tokens(t, "refresh")
	st.wantActive(t, "refreshed access token", second.access, true)
	st.wantActive(t, "a made-up token", "mat_nothing", false)
	if _, err := st.tokens.Introspect(t.Context(), &tokenv1.IntrospectRequest{Token: second.access}); err != nil {
		t.Fatalf("gRPC introspection: %v", err)
	}
	st.refresh(t, c, first.refresh).wantOAuthError(t, "replayed refresh token", http.StatusBadRequest, "invalid_grant")
	refused := 0
	for range 6 {
		r := st.post(t, "oauth2/registration", "application/json", mustJSON(t, map[string]any{
			"client_name": "App", "client_uri": "https://app.example.com/", "application_type": "native",
			"redirect_uris": []string{"http://127.0.0.1/callback"}, "token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
		}), nil)
		if r.status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("client registration was never refused by its rate limit")
	}

	after := st.scrape(t)
	check(t, before, after, []change{
		{name: "gatehouse_registrations_total", labels: []string{"method=admin", "outcome=ok"}, delta: 1},
		{name: "gatehouse_signins_total", labels: []string{"method=password", "outcome=ok"}, delta: 1},
		{name: "gatehouse_signins_total", labels: []string{"method=password", "outcome=unauthenticated"}, delta: 1},
		{name: "gatehouse_token_grants_total", labels: []string{"grant=authorization_code", "outcome=ok"}, delta: 1},
		{name: "gatehouse_token_grants_total", labels: []string{"grant=refresh_token", "outcome=ok"}, delta: 1},
		{name: "gatehouse_token_grants_total", labels: []string{"grant=refresh_token", "outcome=failed_precondition"}, delta: 1},
		{name: "gatehouse_token_grants_total", labels: []string{"grant=client_credentials", "outcome=ok"}, delta: 0},
		{name: "gatehouse_refresh_token_reuse_total", labels: []string{"kind=oauth"}, delta: 1},
		{name: "gatehouse_introspections_total", labels: []string{"caller=homeserver", "transport=http", "outcome=active"}, delta: 1},
		{name: "gatehouse_introspections_total", labels: []string{"caller=homeserver", "transport=http", "outcome=inactive"}, delta: 1},
		{name: "gatehouse_introspections_total", labels: []string{"transport=grpc", "outcome=active"}, delta: 1},
		{name: "gatehouse_introspection_duration_seconds_count", labels: []string{"caller=homeserver", "transport=http"}, delta: 2},
		{name: "gatehouse_eventlog_events_appended_total", labels: []string{"stream=TOKEN", "event=SessionStarted"}, delta: 1},
		{name: "gatehouse_eventlog_events_appended_total", labels: []string{"stream=ACCOUNTS", "event=UserRegistered"}, delta: 1},
		{name: "gatehouse_eventlog_append_duration_seconds_count", labels: []string{"stream=TOKEN", "outcome=ok"}, delta: 3, atLeast: true},
		{name: "gatehouse_eventlog_append_conflicts_total", labels: []string{"stream=TOKEN"}, delta: 0, atLeast: true},
		{name: "gatehouse_ratelimit_refusals_total", labels: []string{"rule=client_registration"}, delta: float64(refused)},
		{name: "gatehouse_ratelimit_refusals_total", labels: []string{"rule=login_per_ip"}, delta: 0},
		{name: "http_server_request_duration_seconds_count", labels: []string{"http_route=/oauth2/token"}, delta: 3},
		{name: "gatehouse_projection_checkpoint", labels: []string{"projection=token.sessions"}, delta: 1, atLeast: true},
		{name: "gatehouse_token_sessions_unexpired", delta: 0}, // the expiry sweep's backlog: none
	})

	// The projections catch up: no lag, in events or seconds.
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := st.scrape(t)
		events, ok1 := s.get("gatehouse_projection_lag_events", "projection=token.sessions")
		seconds, ok2 := s.get("gatehouse_projection_lag_seconds", "projection=token.sessions")
		if ok1 && ok2 && events == 0 && seconds == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token.sessions still lags: %v events (%v), %v s (%v)", events, ok1, seconds, ok2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMetrics scrapes until ok holds of a scrape, failing the test after
// within; it returns that scrape.
func (st *stack) waitMetrics(t *testing.T, within time.Duration, what string, ok func(series) bool) series {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := st.scrape(t)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen on /metrics within %v", what, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// While the homeserver fails, its errors are counted by operation and the
// provisioning reactor's backlog shows, in events and seconds; once it
// answers again, the backlog drains to zero. The homeserver is a stand-in
// (no Synapse runs here) that answers 503 and then 200.
func TestHomeserverErrorsAndReactorBacklog(t *testing.T) {
	var up atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, `{"errcode":"M_UNKNOWN","error":"down for maintenance"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(hs.Close)
	st := newStack(t, func(c *token.Config) { c.HomeserverURL = hs.URL + "/" })
	const reactor = "projection=token.homeserver_users"
	before := st.scrape(t)
	failedBefore, _ := before.get("gatehouse_homeserver_requests_total", "operation=provision_user", "outcome=failed")
	okBefore, _ := before.get("gatehouse_homeserver_requests_total", "operation=provision_user", "outcome=ok")

	st.user(t, "hugo")
	st.waitMetrics(t, time.Minute, "homeserver failures and a backlog", func(s series) bool {
		failed, _ := s.get("gatehouse_homeserver_requests_total", "operation=provision_user", "outcome=failed")
		events, _ := s.get("gatehouse_projection_lag_events", reactor)
		seconds, _ := s.get("gatehouse_projection_lag_seconds", reactor)
		return failed > failedBefore && events >= 1 && seconds > 0
	})

	// The reactor's complaint is logged in the trace of the registration
	// whose event it could not handle.
	var traceID string
	for _, sp := range st.spans.GetSpans() {
		if sp.SpanKind == trace.SpanKindProducer && strings.Contains(attr(sp, "gatehouse.event.type"), "gatehouse.events.v1.UserRegistered") {
			traceID = sp.SpanContext.TraceID().String()
		}
	}
	correlated := false
	for _, line := range strings.Split(st.logs.String(), "\n") {
		if strings.Contains(line, "event not handled yet") && strings.Contains(line, "reactor=homeserver_users") {
			correlated = traceID != "" && strings.Contains(line, "trace_id="+traceID)
			if !correlated {
				t.Errorf("the reactor's log line is not in the registration's trace %q: %s", traceID, line)
			}
			break
		}
	}
	if !correlated {
		t.Errorf("no log line of the reactor in trace %q:\n%s", traceID, st.logs)
	}

	up.Store(true)
	s := st.waitMetrics(t, time.Minute, "the backlog drained", func(s series) bool {
		ok, _ := s.get("gatehouse_homeserver_requests_total", "operation=provision_user", "outcome=ok")
		events, found := s.get("gatehouse_projection_lag_events", reactor)
		seconds, _ := s.get("gatehouse_projection_lag_seconds", reactor)
		return ok > okBefore && found && events == 0 && seconds == 0
	})
	if n, _ := s.get("gatehouse_homeserver_request_duration_seconds_count", "operation=provision_user"); n < 2 {
		t.Errorf("provision_user timed %v times, want at least 2 (a failure and a success)", n)
	}
}
