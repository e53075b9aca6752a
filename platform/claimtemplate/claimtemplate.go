// Package claimtemplate renders the claim templates of upstream identity
// providers: how an account's subject, username, display name and email are
// made of the claims a provider gives (its ID token and userinfo).
//
// The syntax is the small part of Jinja that MAS and Synapse configurations
// use: literal text with expressions in double braces, each a path into the
// claims under user, optionally piped through filters:
//
//	{{ user.preferred_username }}
//	{{ user.email | localpart | lower }}
//	{{ user.name }} (from {{ user.org.name }})
//
// Filters: lower, upper, trim, localpart (the text before the last '@', as
// for an email address) and domain (the text after it). A claim that is
// absent, null, or not a string, number or boolean renders as nothing; a
// template that renders only whitespace means the claim is absent. Anything
// else — statements, other filters, indexing, arithmetic — is refused when the
// template is parsed, so `gatehouse config check` says so before any sign-in.
package claimtemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Template is a parsed claim template.
type Template struct {
	source string
	parts  []part
}

// part is literal text or an expression.
type part struct {
	literal string
	path    []string // claim path under user; nil for a literal
	filters []filter
}

type filter func(string) string

// filters are the filters a template may use.
var filters = map[string]filter{
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"trim":  strings.TrimSpace,
	"localpart": func(s string) string {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			return s[:i]
		}
		return s
	},
	"domain": func(s string) string {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			return s[i+1:]
		}
		return ""
	},
}

// MaxLength is the longest template accepted.
const MaxLength = 1024

// Parse parses a template.
func Parse(source string) (*Template, error) {
	if len(source) > MaxLength {
		return nil, fmt.Errorf("the template is longer than %d bytes", MaxLength)
	}
	t := &Template{source: source}
	rest := source
	for rest != "" {
		open := strings.Index(rest, "{{")
		if close := strings.Index(rest, "}}"); close >= 0 && (open < 0 || close < open) {
			return nil, errors.New(`"}}" without "{{"`)
		}
		if strings.Contains(rest, "{%") || strings.Contains(rest, "{#") {
			return nil, errors.New("only {{ expressions }} are supported, not {% statements %} or {# comments #}")
		}
		if open < 0 {
			t.parts = append(t.parts, part{literal: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, part{literal: rest[:open]})
		}
		rest = rest[open+2:]
		end := strings.Index(rest, "}}")
		if end < 0 {
			return nil, errors.New(`"{{" without "}}"`)
		}
		p, err := parseExpr(rest[:end])
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, p)
		rest = rest[end+2:]
	}
	return t, nil
}

// MustParse is Parse for templates known to be valid; it panics otherwise.
func MustParse(source string) *Template {
	t, err := Parse(source)
	if err != nil {
		panic(fmt.Sprintf("claimtemplate: %q: %v", source, err))
	}
	return t
}

// parseExpr parses the inside of {{ … }}.
func parseExpr(expr string) (part, error) {
	pipeline := strings.Split(expr, "|")
	ref := strings.TrimSpace(pipeline[0])
	path := strings.Split(ref, ".")
	if len(path) < 2 || path[0] != "user" {
		return part{}, fmt.Errorf("%q: an expression is a claim such as user.preferred_username", strings.TrimSpace(expr))
	}
	for _, name := range path[1:] {
		if !validName(name) {
			return part{}, fmt.Errorf("%q: %q is not a claim name (letters, digits, '_' and '-')", ref, name)
		}
	}
	p := part{path: path[1:]}
	for _, f := range pipeline[1:] {
		name := strings.TrimSpace(f)
		fn, ok := filters[name]
		if !ok {
			return part{}, fmt.Errorf("%q: unknown filter %q (want lower, upper, trim, localpart or domain)", strings.TrimSpace(expr), name)
		}
		p.filters = append(p.filters, fn)
	}
	return p, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':') {
			return false
		}
	}
	return true
}

// String returns the template's source.
func (t *Template) String() string { return t.source }

// Execute renders the template over the claims, trimmed of surrounding
// space; "" means the claim is absent.
func (t *Template) Execute(claims map[string]any) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.path == nil {
			b.WriteString(p.literal)
			continue
		}
		v := scalar(lookup(claims, p.path))
		for _, f := range p.filters {
			v = f(v)
		}
		b.WriteString(v)
	}
	return strings.TrimSpace(b.String())
}

// lookup follows a path into nested objects.
func lookup(claims map[string]any, path []string) any {
	var v any = claims
	for _, name := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[name]
	}
	return v
}

// scalar renders a claim value: strings as they are, numbers and booleans in
// their JSON form, anything else (objects, arrays, null) as nothing.
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}
