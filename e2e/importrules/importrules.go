// Package importrules checks the workspace's import graph — test files
// included — against a table of forbidden edges, each with its reason (the
// idea of tailscale's tstest/deptest).
//
// A rule forbids imports from the packages matching From to the packages
// matching To, except those matching Except. Patterns are import paths whose
// segments may be "*" (any one segment), "{name}" (any one segment, bound to
// name) or a final "..." (any number of segments, none included). A binding
// made by From holds in To and Except, so
//
//	From: "gatehouse.dev/services/{svc}/...", To: "gatehouse.dev/services/...",
//	Except: "gatehouse.dev/services/{svc}/..."
//
// forbids a service's packages to import another service's.
package importrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
)

// Package is one package's direct imports, split by where they are written.
type Package struct {
	ImportPath string
	// Module is the path of the workspace module the package belongs to.
	Module string
	// Imports are the imports of the package's non-test files.
	Imports []string
	// TestImports are the imports of its in-package _test.go files.
	TestImports []string
	// XTestImports are the imports of its external (package x_test) test files.
	XTestImports []string
}

// Rule forbids one kind of import edge, and says why.
type Rule struct {
	From, To string
	// Except exempts targets that To matches (optional).
	Except string
	// NonTestOnly limits the rule to imports of non-test files.
	NonTestOnly bool
	// Reason is the house rule the edge would break.
	Reason string
}

// Violation is one forbidden edge.
type Violation struct {
	From, To string
	// InTest tells whether the import is written in a _test.go file.
	InTest bool
	Rule   Rule
}

func (v Violation) String() string {
	where := ""
	if v.InTest {
		where = " (in a test file)"
	}
	return fmt.Sprintf("%s imports %s%s: %s", v.From, v.To, where, v.Rule.Reason)
}

// Check returns every edge of pkgs that a rule forbids, or an error naming
// the rules that are malformed (a pattern that does not parse, a name To or
// Except uses but From does not bind, no reason).
func Check(pkgs []Package, rules []Rule) ([]Violation, error) {
	var problems []error
	for _, r := range rules {
		if err := r.valid(); err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	var out []Violation
	for _, r := range rules {
		for _, p := range pkgs {
			bound, ok := match(r.From, p.ImportPath, nil)
			if !ok {
				continue
			}
			edges := []struct {
				imports []string
				inTest  bool
			}{{p.Imports, false}, {p.TestImports, true}, {p.XTestImports, true}}
			for _, e := range edges {
				if e.inTest && r.NonTestOnly {
					continue
				}
				for _, imp := range e.imports {
					if r.forbids(imp, bound) {
						out = append(out, Violation{From: p.ImportPath, To: imp, InTest: e.inTest, Rule: r})
					}
				}
			}
		}
	}
	return out, nil
}

// forbids reports whether the rule forbids importing imp, given what its
// From bound.
func (r Rule) forbids(imp string, bound map[string]string) bool {
	if _, ok := match(r.To, imp, bound); !ok {
		return false
	}
	if r.Except == "" {
		return true
	}
	_, exempt := match(r.Except, imp, bound)
	return !exempt
}

// Idle returns the rules whose From matches none of pkgs: a rule that cannot
// fire is a typo or a leftover.
func Idle(pkgs []Package, rules []Rule) []Rule {
	var out []Rule
	for _, r := range rules {
		if !slices.ContainsFunc(pkgs, func(p Package) bool { _, ok := match(r.From, p.ImportPath, nil); return ok }) {
			out = append(out, r)
		}
	}
	return out
}

// valid checks that the rule's patterns parse and bind only what From binds.
func (r Rule) valid() error {
	if r.Reason == "" {
		return fmt.Errorf("rule %q → %q gives no reason", r.From, r.To)
	}
	from, err := names(r.From)
	if err != nil {
		return err
	}
	others := []string{r.To}
	if r.Except != "" {
		others = append(others, r.Except)
	}
	for _, p := range others {
		used, err := names(p)
		if err != nil {
			return err
		}
		for _, n := range used {
			if !slices.Contains(from, n) {
				return fmt.Errorf("pattern %q uses {%s}, which %q does not bind", p, n, r.From)
			}
		}
	}
	return nil
}

// names returns the {name} segments of a pattern and checks its shape.
func names(pattern string) ([]string, error) {
	if pattern == "" {
		return nil, errors.New("empty pattern")
	}
	segs := strings.Split(pattern, "/")
	var out []string
	for i, s := range segs {
		switch {
		case s == "...":
			if i != len(segs)-1 {
				return nil, fmt.Errorf("pattern %q: ... may only end a pattern", pattern)
			}
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && len(s) > 2:
			n := s[1 : len(s)-1]
			if slices.Contains(out, n) {
				return nil, fmt.Errorf("pattern %q binds {%s} twice", pattern, n)
			}
			out = append(out, n)
		case s == "" || strings.ContainsAny(s, "{}"):
			return nil, fmt.Errorf("pattern %q: bad segment %q", pattern, s)
		}
	}
	return out, nil
}

// match reports whether path matches pattern given the bindings made so far,
// and returns the bindings extended by the pattern's own.
func match(pattern, path string, bound map[string]string) (map[string]string, bool) {
	pat, segs := strings.Split(pattern, "/"), strings.Split(path, "/")
	out := map[string]string{}
	for k, v := range bound {
		out[k] = v
	}
	for i, p := range pat {
		if p == "..." {
			return out, true
		}
		if i >= len(segs) {
			return nil, false
		}
		switch {
		case p == "*":
		case strings.HasPrefix(p, "{"):
			n := p[1 : len(p)-1]
			if v, ok := out[n]; ok && v != segs[i] {
				return nil, false
			}
			out[n] = segs[i]
		case p != segs[i]:
			return nil, false
		}
	}
	return out, len(pat) == len(segs)
}

// Load lists the packages matching patterns (e.g. "gatehouse.dev/...") with
// `go list -e -json`, run in dir (a directory of the workspace). Packages that
// fail to load are an error: a rule cannot be checked on what is not seen.
func Load(dir string, patterns ...string) ([]Package, error) {
	cmd := exec.Command("go", append([]string{"list", "-e", "-json=ImportPath,Module,Imports,TestImports,XTestImports,Error"}, patterns...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w\n%s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	var pkgs []Package
	for {
		var p struct {
			ImportPath                         string
			Module                             *struct{ Path string }
			Imports, TestImports, XTestImports []string
			Error                              *struct{ Err string }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		pkg := Package{ImportPath: p.ImportPath, Imports: p.Imports, TestImports: p.TestImports, XTestImports: p.XTestImports}
		if p.Module != nil {
			pkg.Module = p.Module.Path
		}
		pkgs = append(pkgs, pkg)
	}
	return pkgs, nil
}

// WorkspaceModules lists the modules of the workspace dir belongs to
// (`go list -m`).
func WorkspaceModules(dir string) ([]string, error) {
	cmd := exec.Command("go", "list", "-m")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m: %w\n%s", err, stderr.String())
	}
	return strings.Fields(string(out)), nil
}
