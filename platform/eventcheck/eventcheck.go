// Package eventcheck finds code that forgets an event type. Every fold,
// projection, reactor and tail decides what to do with an event in a type
// switch; a switch that names some events of an aggregate and lets the others
// fall through (into default, or out of the switch) silently ignores an event
// type added later. Switches checks, from the source, that every type switch
// naming an event of an aggregate names all of the aggregate's events (from
// the event contract, eventsv1.Streams), so that adding an event type makes
// every consumer of its aggregate say what it does with it:
//
//	case *eventsv1.PasswordChanged, *eventsv1.AdminSet:
//		// nothing: the homeserver keeps neither
//
// A comma-ok type assertion to an event (ev, ok := rec.Event.(*eventsv1.X))
// is the same silent filter, and is reported unless X is the only event of
// its aggregate.
//
// A switch that is partial on purpose (a decision choosing among its own
// results, not a consumer of the stream) says so on the line before it or on
// its own line, with a reason:
//
//	//eventcheck:partial — only the two events decided above can occur here
//
// Each service calls Switches from a test on its own source tree.
package eventcheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// eventsImport is the import path of the event contract.
const eventsImport = "gatehouse.dev/proto/gatehouse/events/v1"

// marker exempts one switch or assertion, followed by a reason.
const marker = "//eventcheck:partial"

// Switches reports, as test errors, every type switch and comma-ok type
// assertion under root (Go files except tests, generated code and testdata)
// that names some but not all events of an aggregate without saying why.
func Switches(t testing.TB, root string) {
	t.Helper()
	problems, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// Check returns the problems Switches reports.
func Check(root string) ([]string, error) {
	var problems []string
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, ".pb.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		problems = append(problems, checkFile(fset, f)...)
		return nil
	})
	if err == nil && files == 0 {
		err = fmt.Errorf("eventcheck: no Go files under %s", root)
	}
	return problems, err
}

// checkFile checks one file's switches and assertions.
func checkFile(fset *token.FileSet, f *ast.File) []string {
	alias := ""
	for _, imp := range f.Imports {
		if path, _ := strconv.Unquote(imp.Path.Value); path == eventsImport {
			alias = "eventsv1"
			if imp.Name != nil {
				alias = imp.Name.Name
			}
		}
	}
	if alias == "" {
		return nil
	}
	exempt := map[int]bool{} // lines carrying or followed by the marker
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if strings.HasPrefix(c.Text, marker) {
				line := fset.Position(c.Slash).Line
				exempt[line], exempt[line+1] = true, true
			}
		}
	}
	var problems []string
	report := func(pos token.Pos, what string, named []protoreflect.FullName) {
		p := fset.Position(pos)
		if exempt[p.Line] {
			return
		}
		for _, missing := range missingByAggregate(named) {
			problems = append(problems, fmt.Sprintf("%s: %s names %s of %s but not %s: add a case saying what happens with them (or mark it %s with a reason)",
				p, what, join(missing.named), missing.subjects, join(missing.missing), marker))
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.TypeSwitchStmt:
			var named []protoreflect.FullName
			for _, clause := range n.Body.List {
				for _, expr := range clause.(*ast.CaseClause).List {
					if name, ok := eventType(expr, alias); ok {
						named = append(named, name)
					}
				}
			}
			report(n.Switch, "type switch", named)
		case *ast.AssignStmt:
			// ev, ok := x.(*eventsv1.T)
			if len(n.Lhs) == 2 && len(n.Rhs) == 1 {
				if ta, ok := n.Rhs[0].(*ast.TypeAssertExpr); ok && ta.Type != nil {
					if name, ok := eventType(ta.Type, alias); ok {
						report(n.Pos(), "type assertion", []protoreflect.FullName{name})
					}
				}
			}
		}
		return true
	})
	return problems
}

// eventType recognises *<alias>.Name naming an event of the contract.
func eventType(expr ast.Expr, alias string) (protoreflect.FullName, bool) {
	star, ok := expr.(*ast.StarExpr)
	if !ok {
		return "", false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return "", false
	}
	pkg, ok := sel.X.(*ast.Ident)
	if !ok || pkg.Name != alias {
		return "", false
	}
	name := protoreflect.FullName("gatehouse.events.v1." + sel.Sel.Name)
	if _, _, ok := eventsv1.AggregateOf(name); !ok {
		return "", false // not an event (the Envelope, a nested type)
	}
	return name, true
}

// gap is an aggregate whose events a switch names only in part.
type gap struct {
	subjects       string
	named, missing []protoreflect.FullName
}

// missingByAggregate groups the named events by aggregate and lists, for
// each aggregate named in part, the events left out.
func missingByAggregate(named []protoreflect.FullName) []gap {
	var gaps []gap
	seen := map[string]bool{}
	for _, name := range named {
		_, a, _ := eventsv1.AggregateOf(name)
		if seen[a.Subjects()] {
			continue
		}
		seen[a.Subjects()] = true
		g := gap{subjects: a.Subjects()}
		for _, ev := range a.Events {
			full := ev.ProtoReflect().Descriptor().FullName()
			if slices.Contains(named, full) {
				g.named = append(g.named, full)
			} else {
				g.missing = append(g.missing, full)
			}
		}
		if len(g.missing) > 0 {
			gaps = append(gaps, g)
		}
	}
	return gaps
}

func join(names []protoreflect.FullName) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n.Name())
	}
	return strings.Join(out, ", ")
}
