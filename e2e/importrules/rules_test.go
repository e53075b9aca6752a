package importrules_test

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gatehouse.dev/e2e/importrules"
)

// houseRules are the workspace's import rules (ARCHITECTURE.md, "Layout"),
// each with the reason it exists. They hold for test files too unless
// NonTestOnly says otherwise.
var houseRules = []importrules.Rule{
	{From: "gatehouse.dev/proto/...", To: "gatehouse.dev/...", Except: "gatehouse.dev/proto/...",
		Reason: "proto is the contract: it depends on nothing of ours"},
	{From: "gatehouse.dev/platform/...", To: "gatehouse.dev/services/...",
		Reason: "the platform knows no service"},
	{From: "gatehouse.dev/platform/...", To: "gatehouse.dev/cmd/...",
		Reason: "the platform knows no binary"},
	{From: "gatehouse.dev/services/{svc}/...", To: "gatehouse.dev/services/...", Except: "gatehouse.dev/services/{svc}/...",
		Reason: "services meet only through gRPC and events (proto), never through another service's packages, not even in tests"},
	{From: "gatehouse.dev/services/...", To: "gatehouse.dev/cmd/...",
		Reason: "a service never depends on a binary that composes it"},
	{From: "gatehouse.dev/cmd/gatehouse/...", To: "gatehouse.dev/services/*/*/...",
		Reason: "cmd/gatehouse composes services through their public packages only; their workings stay inside them"},
	{From: "gatehouse.dev/cmd/gatehouse/...", To: "github.com/jackc/pgx/...",
		Reason: "cmd/gatehouse holds no business logic: the admin CLI works through the services' gRPC APIs, never the database"},
	{From: "gatehouse.dev/cmd/gatehouse/...", To: "github.com/nats-io/...",
		Reason: "cmd/gatehouse holds no business logic: the admin CLI works through the services' gRPC APIs, never the event log"},
	{From: "gatehouse.dev/cmd/gatehouse/...", To: "gatehouse.dev/platform/eventlog/...",
		Reason: "cmd/gatehouse holds no business logic: events are appended by the services that own them"},
	{From: "gatehouse.dev/cmd/gatehouse/...", To: "gatehouse.dev/platform/projection/...",
		Reason: "cmd/gatehouse holds no business logic: projections are run and rebuilt by their services (ProjectionsService)"},
	{From: "gatehouse.dev/cmd/gatehouse/...", To: "gatehouse.dev/platform/pg/...",
		Reason: "cmd/gatehouse holds no business logic: the admin CLI works through the services' gRPC APIs, never the database"},
	{From: "gatehouse.dev/cmd/gatehouse/...", To: "gatehouse.dev/platform/testkit/...",
		Reason: "cmd/gatehouse's own tests are command-line tests without servers; a test that needs NATS, PostgreSQL or the binary belongs in e2e"},
	{From: "gatehouse.dev/cmd/gatehouse/...", To: "github.com/chromedp/...",
		Reason: "browser tests are end-to-end tests: they live in e2e, so the binary's go.mod carries no browser library"},
	{From: "gatehouse.dev/cmd/gatehouse/...", To: "github.com/coreos/go-oidc/...",
		Reason: "tests with real OAuth clients are end-to-end tests: they live in e2e, so the binary's go.mod carries no client library"},
	{From: "gatehouse.dev/cmd/gatehouse/...", To: "golang.org/x/oauth2/...",
		Reason: "tests with real OAuth clients are end-to-end tests: they live in e2e, so the binary's go.mod carries no client library"},
	{From: "gatehouse.dev/e2e", To: "gatehouse.dev/services/...",
		Reason: "the end-to-end tests drive the built binary as its users do (HTTP, gRPC through proto, the CLI), never a service's Go code"},
	{From: "gatehouse.dev/e2e/...", To: "gatehouse.dev/services/*/*/...",
		Reason: "in-process composition in e2e uses a service's public package only, as cmd/gatehouse does"},
	{From: "gatehouse.dev/e2e/...", To: "gatehouse.dev/cmd/...",
		Reason: "e2e runs the gatehouse binary; it never links its code"},
	{From: "gatehouse.dev/platform/...", To: "gatehouse.dev/e2e/...",
		Reason: "nothing depends on the test suite"},
	{From: "gatehouse.dev/services/...", To: "gatehouse.dev/e2e/...",
		Reason: "nothing depends on the test suite"},
	{From: "gatehouse.dev/cmd/...", To: "gatehouse.dev/e2e/...",
		Reason: "nothing depends on the test suite"},
	{From: "gatehouse.dev/migrate/...", To: "gatehouse.dev/services/...",
		Reason: "the migration reads Synapse and writes into Gatehouse through its gRPC API (proto), like any client; it never links a service's code"},
	{From: "gatehouse.dev/migrate/...", To: "gatehouse.dev/cmd/...",
		Reason: "the migration is a library the binary composes, never the other way round"},
	{From: "gatehouse.dev/services/...", To: "gatehouse.dev/migrate/...",
		Reason: "services know nothing of Synapse: the migration is an admin tool over their APIs"},
	{From: "gatehouse.dev/platform/...", To: "gatehouse.dev/migrate/...",
		Reason: "the platform knows no tool built on it"},
	{From: "gatehouse.dev/migrate/...", To: "gatehouse.dev/e2e/...",
		Reason: "nothing depends on the test suite"},
	{From: "gatehouse.dev/...", To: "gatehouse.dev/migrate/synapse/synapsetest/...", NonTestOnly: true,
		Reason: "the generator fills a database with made-up Synapse data for tests and benchmarks; code that ships never depends on it"},
	{From: "gatehouse.dev/...", To: "gatehouse.dev/platform/testkit/...", NonTestOnly: true,
		Reason: "the test kit starts servers and clusters for tests; code that ships never depends on it"},
	{From: "gatehouse.dev/...", To: "github.com/chromedp/...", NonTestOnly: true,
		Reason: "a headless browser is a test tool; code that ships never depends on it"},
	{From: "gatehouse.dev/services/admin/...", To: "gatehouse.dev/platform/eventlog/...", NonTestOnly: true,
		Reason: "the admin API is a stateless facade over the services' gRPC APIs: it keeps no data and appends or reads no event"},
	{From: "gatehouse.dev/services/admin/...", To: "gatehouse.dev/platform/projection/...", NonTestOnly: true,
		Reason: "the admin API is a stateless facade over the services' gRPC APIs: a read model it needs belongs to the service owning the data"},
	{From: "gatehouse.dev/services/admin/...", To: "gatehouse.dev/platform/pg/...", NonTestOnly: true,
		Reason: "the admin API is a stateless facade over the services' gRPC APIs: it keeps no data"},
	{From: "gatehouse.dev/services/admin/...", To: "github.com/jackc/pgx/...", NonTestOnly: true,
		Reason: "the admin API is a stateless facade over the services' gRPC APIs: it keeps no data"},
	{From: "gatehouse.dev/services/admin/...", To: "github.com/nats-io/...", NonTestOnly: true,
		Reason: "the admin API is a stateless facade over the services' gRPC APIs: it appends or reads no event"},
}

// The whole workspace, test files included, keeps the house rules.
func TestWorkspaceKeepsTheImportRules(t *testing.T) {
	root := workspaceRoot(t)
	pkgs, err := importrules.Load(root, "gatehouse.dev/...")
	if err != nil {
		t.Fatal(err)
	}
	// Every module of the workspace was seen, so a new one cannot slip by.
	modules, err := importrules.WorkspaceModules(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modules {
		if !slices.ContainsFunc(pkgs, func(p importrules.Package) bool { return p.Module == m }) {
			t.Errorf("module %s has no package in the checked set: does its path start with gatehouse.dev/?", m)
		}
	}
	violations, err := importrules.Check(pkgs, houseRules)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Error(v)
	}
	for _, r := range importrules.Idle(pkgs, houseRules) {
		t.Errorf("rule %q → %q matches no package of the workspace", r.From, r.To)
	}
	tests := 0
	for _, p := range pkgs {
		if len(p.TestImports)+len(p.XTestImports) > 0 {
			tests++
		}
	}
	if len(pkgs) < 40 || tests < 20 {
		t.Fatalf("checked %d packages, %d with tests: the listing is incomplete", len(pkgs), tests)
	}
}

// workspaceRoot is the directory of the go.work this test runs under.
func workspaceRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		t.Fatal(err)
	}
	work := strings.TrimSpace(string(out))
	if work == "" || work == "off" {
		t.Fatal("the import rules are checked across the workspace: run with go.work (GOWORK unset)")
	}
	return filepath.Dir(work)
}

// Each rule trips on the edge it forbids, in non-test and test files alike,
// while the edges the house allows pass.
func TestRulesCatchForbiddenEdges(t *testing.T) {
	const (
		nonTest = iota
		inTest
		inXTest
	)
	pkg := func(from string, where int, imp string) importrules.Package {
		p := importrules.Package{ImportPath: from}
		switch where {
		case nonTest:
			p.Imports = []string{imp}
		case inTest:
			p.TestImports = []string{imp}
		case inXTest:
			p.XTestImports = []string{imp}
		}
		return p
	}
	forbidden := []struct {
		name      string
		from      string
		where     int
		imp       string
		reasonHas string
	}{
		{"proto importing the platform", "gatehouse.dev/proto/gatehouse/events/v1", nonTest, "gatehouse.dev/platform/errs", "proto is the contract"},
		{"proto test importing a service", "gatehouse.dev/proto/gatehouse/token/v1", inXTest, "gatehouse.dev/services/token", "proto is the contract"},
		{"platform importing a service", "gatehouse.dev/platform/host", nonTest, "gatehouse.dev/services/accounts", "knows no service"},
		{"platform test importing a service's internals", "gatehouse.dev/platform/projection", inTest, "gatehouse.dev/services/accounts/internal/user", "knows no service"},
		{"platform importing the binary", "gatehouse.dev/platform/host", nonTest, "gatehouse.dev/cmd/gatehouse", "knows no binary"},
		{"a service importing another", "gatehouse.dev/services/web", nonTest, "gatehouse.dev/services/accounts", "services meet only"},
		{"a service's test importing another service", "gatehouse.dev/services/token", inXTest, "gatehouse.dev/services/accounts", "services meet only"},
		{"a service's test importing another's internals", "gatehouse.dev/services/token/internal/session", inTest, "gatehouse.dev/services/authorize/internal/device", "services meet only"},
		{"a service importing the binary", "gatehouse.dev/services/token", nonTest, "gatehouse.dev/cmd/gatehouse", "composes it"},
		{"cmd/gatehouse importing a service's workings", "gatehouse.dev/cmd/gatehouse", nonTest, "gatehouse.dev/services/accounts/internal/password", "public packages only"},
		{"cmd/gatehouse importing a service's migrations", "gatehouse.dev/cmd/gatehouse", nonTest, "gatehouse.dev/services/token/migrations", "public packages only"},
		{"cmd/gatehouse reading the database", "gatehouse.dev/cmd/gatehouse", nonTest, "github.com/jackc/pgx/v5/pgxpool", "never the database"},
		{"cmd/gatehouse reading the event log", "gatehouse.dev/cmd/gatehouse", nonTest, "github.com/nats-io/nats.go/jetstream", "never the event log"},
		{"cmd/gatehouse appending events", "gatehouse.dev/cmd/gatehouse", nonTest, "gatehouse.dev/platform/eventlog", "appended by the services"},
		{"cmd/gatehouse running projections", "gatehouse.dev/cmd/gatehouse", nonTest, "gatehouse.dev/platform/projection", "run and rebuilt by their services"},
		{"cmd/gatehouse connecting to PostgreSQL", "gatehouse.dev/cmd/gatehouse", nonTest, "gatehouse.dev/platform/pg", "never the database"},
		{"cmd/gatehouse test starting servers", "gatehouse.dev/cmd/gatehouse", inTest, "gatehouse.dev/platform/testkit", "belongs in e2e"},
		{"a browser test in cmd/gatehouse", "gatehouse.dev/cmd/gatehouse", inTest, "github.com/chromedp/chromedp", "browser tests are end-to-end"},
		{"an OIDC client test in cmd/gatehouse", "gatehouse.dev/cmd/gatehouse", inTest, "github.com/coreos/go-oidc/v3/oidc", "real OAuth clients"},
		{"an OAuth client test in cmd/gatehouse", "gatehouse.dev/cmd/gatehouse", inTest, "golang.org/x/oauth2", "real OAuth clients"},
		{"binary tests importing a service", "gatehouse.dev/e2e", inTest, "gatehouse.dev/services/token", "drive the built binary"},
		{"e2e composition importing a service's workings", "gatehouse.dev/e2e/inprocess", inTest, "gatehouse.dev/services/token/internal/keys", "public package only"},
		{"e2e linking the binary's code", "gatehouse.dev/e2e", inTest, "gatehouse.dev/cmd/gatehouse", "never links its code"},
		{"platform importing the test suite", "gatehouse.dev/platform/testkit", nonTest, "gatehouse.dev/e2e/importrules", "test suite"},
		{"a service's test importing the test suite", "gatehouse.dev/services/web", inTest, "gatehouse.dev/e2e", "test suite"},
		{"cmd importing the test suite", "gatehouse.dev/cmd/gatehouse", nonTest, "gatehouse.dev/e2e/importrules", "test suite"},
		{"the migration importing a service", "gatehouse.dev/migrate/synapse", nonTest, "gatehouse.dev/services/accounts", "through its gRPC API"},
		{"the migration's test importing a service's internals", "gatehouse.dev/migrate/synapse", inXTest, "gatehouse.dev/services/accounts/internal/password", "through its gRPC API"},
		{"the migration importing the binary", "gatehouse.dev/migrate/synapse", nonTest, "gatehouse.dev/cmd/gatehouse", "library the binary composes"},
		{"a service importing the migration", "gatehouse.dev/services/accounts", nonTest, "gatehouse.dev/migrate/synapse", "know nothing of Synapse"},
		{"the platform importing the migration", "gatehouse.dev/platform/config", nonTest, "gatehouse.dev/migrate/synapse", "knows no tool"},
		{"the migration importing the test suite", "gatehouse.dev/migrate/synapse", inTest, "gatehouse.dev/e2e", "test suite"},
		{"the binary importing the Synapse generator", "gatehouse.dev/cmd/gatehouse", nonTest, "gatehouse.dev/migrate/synapse/synapsetest", "made-up Synapse data"},
		{"the migration shipping the generator", "gatehouse.dev/migrate/synapse", nonTest, "gatehouse.dev/migrate/synapse/synapsetest", "made-up Synapse data"},
		{"shipping code importing the test kit", "gatehouse.dev/services/notify", nonTest, "gatehouse.dev/platform/testkit", "code that ships"},
		{"shipping code importing a browser", "gatehouse.dev/services/web", nonTest, "github.com/chromedp/chromedp", "code that ships"},
		{"the admin API appending events", "gatehouse.dev/services/admin", nonTest, "gatehouse.dev/platform/eventlog", "stateless facade"},
		{"the admin API keeping a read model", "gatehouse.dev/services/admin", nonTest, "gatehouse.dev/platform/projection", "stateless facade"},
		{"the admin API connecting to PostgreSQL", "gatehouse.dev/services/admin", nonTest, "gatehouse.dev/platform/pg", "stateless facade"},
		{"the admin API reading a database", "gatehouse.dev/services/admin", nonTest, "github.com/jackc/pgx/v5/pgxpool", "stateless facade"},
		{"the admin API reading a stream", "gatehouse.dev/services/admin", nonTest, "github.com/nats-io/nats.go/jetstream", "stateless facade"},
	}
	tripped := map[string]bool{}
	for _, tt := range forbidden {
		t.Run(tt.name, func(t *testing.T) {
			got, err := importrules.Check([]importrules.Package{pkg(tt.from, tt.where, tt.imp)}, houseRules)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, v := range got {
				tripped[v.Rule.From+" → "+v.Rule.To] = true
				if strings.Contains(v.Rule.Reason, tt.reasonHas) && v.From == tt.from && v.To == tt.imp && v.InTest == (tt.where != nonTest) {
					found = true
				}
			}
			if !found {
				t.Fatalf("%s importing %s passed the rules (violations: %v); want one saying %q", tt.from, tt.imp, got, tt.reasonHas)
			}
		})
	}
	for _, r := range houseRules {
		if !tripped[r.From+" → "+r.To] {
			t.Errorf("no forbidden edge above exercises the rule %q → %q", r.From, r.To)
		}
	}

	allowed := []struct {
		name, from string
		where      int
		imp        string
	}{
		{"proto importing proto", "gatehouse.dev/proto/gatehouse/token/v1", nonTest, "gatehouse.dev/proto/gatehouse/events/v1"},
		{"platform importing proto", "gatehouse.dev/platform/projection", nonTest, "gatehouse.dev/proto/gatehouse/projections/v1"},
		{"a service importing its own internals", "gatehouse.dev/services/token", nonTest, "gatehouse.dev/services/token/internal/keys"},
		{"a service's test importing itself", "gatehouse.dev/services/token", inXTest, "gatehouse.dev/services/token"},
		{"a service's test using the test kit", "gatehouse.dev/services/accounts", inXTest, "gatehouse.dev/platform/testkit"},
		{"a service importing the platform", "gatehouse.dev/services/web", nonTest, "gatehouse.dev/platform/httpx"},
		{"a service importing another's API", "gatehouse.dev/services/web", nonTest, "gatehouse.dev/proto/gatehouse/accounts/v1"},
		{"cmd/gatehouse composing a service", "gatehouse.dev/cmd/gatehouse", nonTest, "gatehouse.dev/services/token"},
		{"cmd/gatehouse hosting services", "gatehouse.dev/cmd/gatehouse", nonTest, "gatehouse.dev/platform/host"},
		{"e2e composing a service in process", "gatehouse.dev/e2e/inprocess", inTest, "gatehouse.dev/services/token"},
		{"binary tests using proto clients", "gatehouse.dev/e2e", inTest, "gatehouse.dev/proto/gatehouse/token/v1"},
		{"binary tests with a browser", "gatehouse.dev/e2e", inTest, "github.com/chromedp/chromedp"},
		{"the test suite using the test kit", "gatehouse.dev/e2e", inTest, "gatehouse.dev/platform/testkit"},
		{"the migration using the platform", "gatehouse.dev/migrate/synapse", nonTest, "gatehouse.dev/platform/config"},
		{"the migration using proto clients", "gatehouse.dev/migrate/synapse", nonTest, "gatehouse.dev/proto/gatehouse/accounts/v1"},
		{"the migration reading PostgreSQL", "gatehouse.dev/migrate/synapse", nonTest, "github.com/jackc/pgx/v5"},
		{"cmd/gatehouse composing the migration", "gatehouse.dev/cmd/gatehouse", nonTest, "gatehouse.dev/migrate/synapse"},
		{"the migration's tests using the generator", "gatehouse.dev/migrate/synapse", inXTest, "gatehouse.dev/migrate/synapse/synapsetest"},
		{"the migration's tests using the test kit", "gatehouse.dev/migrate/synapse", inXTest, "gatehouse.dev/platform/testkit"},
		{"the test suite using the generator", "gatehouse.dev/e2e", inTest, "gatehouse.dev/migrate/synapse/synapsetest"},
	}
	for _, tt := range allowed {
		got, err := importrules.Check([]importrules.Package{pkg(tt.from, tt.where, tt.imp)}, houseRules)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			t.Errorf("%s: refused: %v", tt.name, got)
		}
	}
}

// Malformed rules are reported instead of silently checking nothing, and a
// rule matching no package is idle.
func TestMalformedAndIdleRules(t *testing.T) {
	pkgs := []importrules.Package{{ImportPath: "gatehouse.dev/services/token", Imports: []string{"gatehouse.dev/services/accounts"}}}
	for _, r := range []importrules.Rule{
		{From: "gatehouse.dev/services/...", To: "gatehouse.dev/...", Reason: ""},
		{From: "gatehouse.dev/services/*", To: "gatehouse.dev/services/{svc}/...", Reason: "unbound name"},
		{From: "gatehouse.dev/.../services", To: "gatehouse.dev/...", Reason: "... in the middle"},
		{From: "gatehouse.dev/{a}/{a}", To: "gatehouse.dev/...", Reason: "bound twice"},
		{From: "gatehouse.dev//x", To: "gatehouse.dev/...", Reason: "empty segment"},
	} {
		if _, err := importrules.Check(pkgs, []importrules.Rule{r}); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
	typo := importrules.Rule{From: "gatehouse.dev/service/...", To: "gatehouse.dev/...", Reason: "typo in From"}
	used := importrules.Rule{From: "gatehouse.dev/services/...", To: "gatehouse.dev/cmd/...", Reason: "fires"}
	if idle := importrules.Idle(pkgs, []importrules.Rule{typo, used}); len(idle) != 1 || idle[0].From != typo.From {
		t.Fatalf("idle rules: %v", idle)
	}
}
