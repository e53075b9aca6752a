package inprocess

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
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
		if strings.Contains(proj.Name, "grants") || attr(proj, "gatehouse.stream") == "AUTHORIZE" {
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
		if strings.HasPrefix(s.Name, "projection ") && attr(s, "gatehouse.stream") == strings.ToUpper(service) {
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
