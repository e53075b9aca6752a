package admin

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/paging"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
)

// Query parameters. Every route declares the parameters it takes (with
// their schema, which the OpenAPI document shows); a request with another
// is refused (400), a handler reading an undeclared one panics, and one
// that leaves a declared parameter it was given unread fails the request —
// so the document, the router and the handlers cannot drift apart
// unnoticed (the tests send every declared parameter).

// param is a declared query parameter.
type param struct {
	name   string
	desc   string
	schema map[string]any
	// repeated parameters may be given several times (an array).
	repeated bool
}

// ref is a schema that refers to a component.
func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func ulidParam(name, desc string) param { return param{name: name, desc: desc, schema: ref("ULID")} }
func boolParam(name, desc string) param {
	return param{name: name, desc: desc, schema: map[string]any{"type": "boolean"}}
}
func stringParam(name, desc string) param {
	return param{name: name, desc: desc, schema: map[string]any{"type": "string"}}
}
func timeParam(name, desc string) param {
	return param{name: name, desc: desc, schema: map[string]any{"type": "string", "format": "date-time"}}
}
func enumParam(name, desc string, values ...string) param {
	return param{name: name, desc: desc, schema: map[string]any{"type": "string", "enum": values}}
}

// pageParams are the parameters of every list: cursors, sizes and count.
func pageParams() []param {
	size := func(desc string) map[string]any {
		return map[string]any{"type": "integer", "minimum": 1, "maximum": paging.MaxSize, "description": desc}
	}
	return []param{
		{name: "page[before]", desc: "Retrieve the items before the given ID (exclusive)", schema: map[string]any{"type": "string"}},
		{name: "page[after]", desc: "Retrieve the items after the given ID (exclusive)", schema: map[string]any{"type": "string"}},
		{name: "page[first]", desc: "Retrieve the first N items (10 when neither page[first] nor page[last] is given)", schema: size("first N")},
		{name: "page[last]", desc: "Retrieve the last N items", schema: size("last N")},
		{name: "count", desc: "Whether to count the items: true (the default), false, or only (the count without the items)",
			schema: map[string]any{"type": "string", "enum": []string{"true", "false", "only"}}},
	}
}

// query is a request's query checked against its route's parameters.
type query struct {
	values   url.Values
	order    []string // names in the order given, for links
	declared map[string]param
	read     map[string]bool
	// anyCursor: the list's ids are not ULIDs (clients).
	anyCursor bool
}

// parseQuery checks the query: every parameter declared, each given once
// unless it repeats.
func parseQuery(raw string, declared []param) (*query, error) {
	values, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("The query string is malformed.")
	}
	q := &query{values: values, declared: map[string]param{}, read: map[string]bool{}}
	for _, p := range declared {
		q.declared[p.name] = p
	}
	for _, part := range strings.Split(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if k, err = url.QueryUnescape(k); err == nil && k != "" && !slices.Contains(q.order, k) {
			q.order = append(q.order, k)
		}
	}
	for _, name := range q.order {
		p, ok := q.declared[name]
		switch {
		case !ok:
			return nil, badRequest(fmt.Sprintf("Unknown query parameter %q.", name))
		case len(values[name]) > 1 && !p.repeated:
			return nil, badRequest(fmt.Sprintf("Query parameter %q is given more than once.", name))
		}
	}
	return q, nil
}

// get returns a declared parameter's value ("" when absent).
func (q *query) get(name string) string {
	if _, ok := q.declared[name]; !ok {
		panic("admin: reading undeclared query parameter " + name)
	}
	q.read[name] = true
	return q.values.Get(name)
}

// all returns every value of a repeated parameter.
func (q *query) all(name string) []string {
	q.get(name)
	return q.values[name]
}

// ulid reads a ULID parameter.
func (q *query) ulid(name string) (string, error) {
	v := q.get(name)
	if v != "" && !ids.Valid(v) {
		return "", badRequest(fmt.Sprintf("Invalid %s: %q is not a ULID.", name, v))
	}
	return v, nil
}

// boolean reads a boolean parameter (nil when absent).
func (q *query) boolean(name string) (*bool, error) {
	v := q.get(name)
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil || (v != "true" && v != "false") {
		return nil, badRequest(fmt.Sprintf("Invalid %s: %q is neither true nor false.", name, v))
	}
	return &b, nil
}

// time reads an RFC 3339 date-time parameter (nil when absent).
func (q *query) time(name string) (*timestamppb.Timestamp, error) {
	v := q.get(name)
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, badRequest(fmt.Sprintf("Invalid %s: %q is not an RFC 3339 date-time.", name, v))
	}
	return timestamppb.New(t), nil
}

// enum reads a parameter whose value is one of its schema's.
func (q *query) enum(name string) (string, error) {
	v := q.get(name)
	allowed, _ := q.declared[name].schema["enum"].([]string)
	if v != "" && !slices.Contains(allowed, v) {
		return "", badRequest(fmt.Sprintf("Invalid %s: %q is not one of %s.", name, v, strings.Join(allowed, ", ")))
	}
	return v, nil
}

// page reads the pagination parameters.
func (q *query) page() (*pagingv1.PageRequest, error) {
	pr := &pagingv1.PageRequest{Count: pagingv1.Count_COUNT_INCLUDE}
	var err error
	if pr.Before, err = q.cursor("page[before]"); err != nil {
		return nil, err
	}
	if pr.After, err = q.cursor("page[after]"); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		dst  *int32
	}{{"page[first]", &pr.First}, {"page[last]", &pr.Last}} {
		if v := q.get(f.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > paging.MaxSize {
				return nil, badRequest(fmt.Sprintf("Invalid pagination parameters: %s must be a number from 1 to %d.", f.name, paging.MaxSize))
			}
			*f.dst = int32(n)
		}
	}
	if pr.First != 0 && pr.Last != 0 {
		return nil, badRequest("Cannot specify both `page[first]` and `page[last]` parameters")
	}
	if pr.First == 0 && pr.Last == 0 {
		pr.First = paging.DefaultSize
	}
	switch c, err := q.enum("count"); {
	case err != nil:
		return nil, err
	case c == "false":
		pr.Count = pagingv1.Count_COUNT_UNSPECIFIED
	case c == "only":
		pr.Count = pagingv1.Count_COUNT_ONLY
	}
	return pr, nil
}

// cursor reads a cursor: an id of the list (a ULID, or any client id for
// clients).
func (q *query) cursor(name string) (string, error) {
	v := q.get(name)
	switch {
	case len(v) > 255:
		return "", badRequest("Invalid pagination parameters: " + name + " is too long.")
	case v != "" && !q.anyCursor && !ids.Valid(v):
		return "", badRequest(fmt.Sprintf("Invalid pagination parameters: %s %q is not a ULID.", name, v))
	}
	return v, nil
}

// unread fails when a parameter given was declared but not read: the
// handler forgot a filter the document promises.
func (q *query) unread() error {
	for _, name := range q.order {
		if !q.read[name] {
			return fmt.Errorf("admin: query parameter %s is declared but was not read", name)
		}
	}
	return nil
}

// filters returns the parameters given that are not pagination ones, in
// the order given, for the links of a page.
func (q *query) filters() [][2]string {
	var out [][2]string
	for _, name := range q.order {
		if strings.HasPrefix(name, "page[") || name == "count" {
			continue
		}
		for _, v := range q.values[name] {
			out = append(out, [2]string{name, v})
		}
	}
	return out
}
