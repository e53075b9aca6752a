package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/VictoriaMetrics/metricsql"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/oauth2"
	"gopkg.in/yaml.v3"
)

// The Grafana dashboard and the Prometheus alert rules in deploy/ name only
// metrics that `gatehouse serve` exposes on its ops server's /metrics, and
// match only labels those metrics carry, so neither can drift from the code;
// the rules file is well formed (every
// expression parses, every duration and template is valid, every alert pages
// or warns).
func TestDashboardAndAlertsNameExposedMetrics(t *testing.T) {
	hs := newStandIn(t)
	e := newOAuthEnv(t, "GATEHOUSE_MATRIX_HOMESERVER_URL="+hs.URL())
	// Some of everything, so that every histogram has a sample.
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, e.client, oauth2.S256ChallengeOption(verifier))
	tok, err := e.client.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if got := e.introspect(t, tok.AccessToken); got["active"] != true {
		t.Fatalf("introspection: %v", got)
	}
	exposed := exposedMetrics(t, "http://"+e.s.ops+"/metrics")

	named := map[string][]string{} // metric → where it is named
	check := func(where, expr string) {
		for _, sel := range selectorsOf(t, expr) {
			named[sel.metric] = append(named[sel.metric], where)
			labels, ok := exposed[sel.metric]
			for _, f := range sel.labels {
				values, carried := labels[f.Label]
				switch {
				case !ok || targetLabels[f.Label]:
				case !carried:
					t.Errorf("%s matches label %s, which %s does not carry", where, f.Label, sel.metric)
				case fixedLabels[f.Label] && !f.IsNegative && !matchesOne(f, values):
					t.Errorf("%s matches %s %q, which is none of %s's: %v", where, f.Label, f.Value, sel.metric, slices.Sorted(maps.Keys(values)))
				}
			}
		}
	}
	for _, q := range dashboardQueries(t) {
		check("dashboard panel "+q.panel, q.expr)
	}
	for _, r := range alertRules(t) {
		check("alert "+r.Alert, r.Expr)
	}
	if len(named) < 15 {
		t.Fatalf("only %d metrics named in deploy/: %v", len(named), named)
	}
	for m, where := range named {
		if _, ok := exposed[m]; !ok && !prometheusOwn[m] {
			t.Errorf("%s (in %s) is not on /metrics", m, strings.Join(slices.Compact(where), ", "))
		}
	}
	if t.Failed() {
		var names []string
		for n := range exposed {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Logf("exposed: %s", strings.Join(names, " "))
	}
}

// prometheusOwn are the series Prometheus makes itself for every target.
var prometheusOwn = map[string]bool{"up": true}

// targetLabels are the labels Prometheus adds to every series it scrapes.
var targetLabels = map[string]bool{"instance": true, "job": true}

// fixedLabels are labels whose every value is exposed from the start (the
// projections and reactors registered), so a matcher must match one of them.
var fixedLabels = map[string]bool{"projection": true}

// matchesOne reports whether the matcher f matches one of values.
func matchesOne(f metricsql.LabelFilter, values map[string]bool) bool {
	if !f.IsRegexp {
		return values[f.Value]
	}
	re, err := regexp.Compile("^(?:" + f.Value + ")$")
	if err != nil {
		return false
	}
	for v := range values {
		if re.MatchString(v) {
			return true
		}
	}
	return false
}

// exposedMetrics scrapes url and returns the names of its series (histogram
// series under their _bucket, _count and _sum names, summaries' under their
// _count and _sum too), each with the labels its series carry and their
// values.
func exposedMetrics(t *testing.T, url string) map[string]map[string]map[string]bool {
	t.Helper()
	families := scrapeMetrics(t, url)
	out := map[string]map[string]map[string]bool{}
	for name, f := range families {
		if len(f.GetMetric()) == 0 {
			continue
		}
		labels := map[string]map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] == nil {
					labels[l.GetName()] = map[string]bool{}
				}
				labels[l.GetName()][l.GetValue()] = true
			}
		}
		out[name] = labels
		switch f.GetType().String() {
		case "HISTOGRAM":
			bucket := maps.Clone(labels)
			bucket["le"] = map[string]bool{}
			out[name+"_bucket"], out[name+"_count"], out[name+"_sum"] = bucket, labels, labels
		case "SUMMARY":
			out[name+"_count"], out[name+"_sum"] = labels, labels
		}
	}
	return out
}

// scrapeMetrics reads url's metric families in Prometheus's text format.
func scrapeMetrics(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s is not in the Prometheus text format: %v", url, err)
	}
	return families
}

// query is one PromQL expression of the dashboard.
type query struct{ panel, expr string }

// dashboardQueries reads the expressions of deploy/grafana/gatehouse.json,
// Grafana's variables replaced by what they stand for.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "gatehouse.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&dash); err != nil || dash.UID == "" {
		t.Fatalf("the dashboard is not Grafana JSON with a uid: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$instance", ".*")
	var out []query
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q charts nothing", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, query{panel: p.Title, expr: vars.Replace(tg.Expr)})
		}
	}
	return out
}

// rule is one alerting rule of deploy/prometheus/alerts.yaml, in the shape
// Prometheus reads (unknown fields refused).
type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// alertRules reads and checks the rules file.
func alertRules(t *testing.T) []rule {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	var out []rule
	seen := map[string]bool{}
	for _, g := range file.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("alerts.yaml: group %q is unnamed or empty", g.Name)
		}
		for _, r := range g.Rules {
			switch {
			case !model.LabelName(r.Alert).IsValid() || seen[r.Alert]:
				t.Errorf("alert %q: not a valid name, or named twice", r.Alert)
			case r.Labels["severity"] != "page" && r.Labels["severity"] != "warning":
				t.Errorf("alert %s: severity %q, want page or warning", r.Alert, r.Labels["severity"])
			case r.Annotations["summary"] == "" || r.Annotations["description"] == "":
				t.Errorf("alert %s: a summary and a description are needed", r.Alert)
			}
			seen[r.Alert] = true
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for: %v", r.Alert, err)
				}
			}
			for k, text := range r.Annotations {
				if err := renderAnnotation(text); err != nil {
					t.Errorf("alert %s: annotation %s: %v", r.Alert, k, err)
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// renderAnnotation expands an annotation as Prometheus does: $labels and
// $value defined, its humanize functions available.
func renderAnnotation(text string) error {
	funcs := template.FuncMap{}
	for _, f := range []string{"humanize", "humanizePercentage", "humanizeDuration"} {
		funcs[f] = func(v float64) string { return "x" }
	}
	tmpl, err := template.New("annotation").Funcs(funcs).Option("missingkey=zero").
		Parse("{{$labels := .Labels}}{{$value := .Value}}" + text)
	if err != nil {
		return err
	}
	data := struct {
		Labels map[string]string
		Value  float64
	}{map[string]string{"instance": "gatehouse:9090"}, 0.5}
	return tmpl.Execute(&bytes.Buffer{}, data)
}

// selector is a metric an expression selects, with its label matchers.
type selector struct {
	metric string
	labels []metricsql.LabelFilter
}

// selectorsOf parses a PromQL expression and returns what it selects.
func selectorsOf(t *testing.T, expr string) []selector {
	t.Helper()
	e, err := metricsql.Parse(expr)
	if err != nil {
		t.Errorf("%q does not parse: %v", expr, err)
		return nil
	}
	var out []selector
	metricsql.VisitAll(e, func(e metricsql.Expr) {
		me, ok := e.(*metricsql.MetricExpr)
		if !ok {
			return
		}
		for _, group := range me.LabelFilterss {
			var sel selector
			for _, f := range group {
				if f.Label == "__name__" && !f.IsRegexp && !f.IsNegative {
					sel.metric = f.Value
				} else {
					sel.labels = append(sel.labels, f)
				}
			}
			if sel.metric != "" {
				out = append(out, sel)
			}
		}
	})
	if len(out) == 0 {
		t.Errorf("%q selects no metric by name", expr)
	}
	return out
}
