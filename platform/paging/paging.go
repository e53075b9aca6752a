// Package paging lists read-model rows one page at a time, by cursors on an
// ordered key (ULIDs, so time of creation), as the administration API's
// page[first], page[last], page[after] and page[before] parameters ask: the
// rows after one cursor and before another, the first or the last N of
// them, always returned in ascending key order, with whether more rows lie
// beyond the page and, on request, how many rows match the filters.
//
// Every service's list RPC that takes a gatehouse.paging.v1.PageRequest
// builds its query with a Query and runs it with List, so paging means the
// same everywhere.
package paging

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/errs"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
)

// Page sizes.
const (
	// DefaultSize is the size of a page that names none (as MAS: 10).
	DefaultSize = 10
	// MaxSize is the largest page.
	MaxSize = 1000
)

// Page is a checked page request.
type Page struct {
	// After and Before are exclusive cursors; empty for none.
	After, Before string
	// Size is how many items at most.
	Size int
	// Backward takes the last Size items rather than the first.
	Backward bool
	// Count asks for the total; Items is false when only the total is wanted.
	Count, Items bool
}

// From checks a page request: first and last exclusive, sizes within
// 1..MaxSize, cursors accepted by valid (nil accepts any non-empty one).
func From(req *pagingv1.PageRequest, valid func(string) bool) (Page, error) {
	p := Page{After: req.GetAfter(), Before: req.GetBefore(), Size: DefaultSize, Items: true}
	switch first, last := req.GetFirst(), req.GetLast(); {
	case first != 0 && last != 0:
		return Page{}, errs.InvalidField("page", "first and last cannot be given together")
	case first < 0 || last < 0 || first > MaxSize || last > MaxSize:
		return Page{}, errs.InvalidField("page", fmt.Sprintf("a page holds 1 to %d items", MaxSize))
	case first > 0:
		p.Size = int(first)
	case last > 0:
		p.Size, p.Backward = int(last), true
	}
	for _, c := range []string{p.After, p.Before} {
		if c != "" && valid != nil && !valid(c) {
			return Page{}, errs.InvalidField("page", fmt.Sprintf("%q is not a cursor of this list", c))
		}
	}
	switch req.GetCount() {
	case pagingv1.Count_COUNT_UNSPECIFIED:
	case pagingv1.Count_COUNT_INCLUDE:
		p.Count = true
	case pagingv1.Count_COUNT_ONLY:
		p.Count, p.Items = true, false
	default:
		return Page{}, errs.InvalidField("page", "unknown count mode")
	}
	return p, nil
}

// Query is a SELECT of one table (or join) with filters, built with "?"
// placeholders that become $1, $2, ... in order.
type Query struct {
	// From is the FROM clause, e.g. "sessions" or "tokens t JOIN sessions s USING (session_id)".
	From string
	// Columns are the selected columns, scanned by List's scan function.
	Columns string
	// Key is the ordered, unique column the cursors are values of.
	Key string

	where []string
	args  []any
}

// Where adds a condition, with one "?" per argument.
func (q *Query) Where(cond string, args ...any) *Query {
	if strings.Count(cond, "?") != len(args) {
		panic(fmt.Sprintf("paging: %q takes %d arguments, given %d", cond, strings.Count(cond, "?"), len(args)))
	}
	q.where = append(q.where, cond)
	q.args = append(q.args, args...)
	return q
}

// WhereIf adds a condition when ok.
func (q *Query) WhereIf(ok bool, cond string, args ...any) *Query {
	if ok {
		q.Where(cond, args...)
	}
	return q
}

// sql renders the statement with conditions extra after the filters.
func (q *Query) sql(head, tail string, extra []string, extraArgs []any) (string, []any) {
	conds := append(slices.Clone(q.where), extra...)
	args := append(slices.Clone(q.args), extraArgs...)
	var b strings.Builder
	b.WriteString(head + " FROM " + q.From)
	if len(conds) > 0 {
		b.WriteString(" WHERE (" + strings.Join(conds, ") AND (") + ")")
	}
	b.WriteString(tail)
	// Number the placeholders.
	out, n := strings.Builder{}, 0
	for _, r := range b.String() {
		if r == '?' {
			n++
			fmt.Fprintf(&out, "$%d", n)
			continue
		}
		out.WriteRune(r)
	}
	return out.String(), args
}

// Querier runs queries: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// List runs the page of q: the items (scanned by scan, in ascending key
// order), where the page stands, and the total when asked.
func List[T any](ctx context.Context, db Querier, q *Query, p Page, scan func(pgx.Rows) (T, error)) ([]T, *pagingv1.PageInfo, error) {
	info := &pagingv1.PageInfo{}
	if p.Count {
		sql, args := q.sql("SELECT count(*)", "", nil, nil)
		var total int64
		if err := db.QueryRow(ctx, sql, args...).Scan(&total); err != nil {
			return nil, nil, fmt.Errorf("paging: count: %w", err)
		}
		info.Total = &total
	}
	if !p.Items {
		return nil, info, nil
	}
	var (
		extra     []string
		extraArgs []any
	)
	if p.After != "" {
		extra, extraArgs = append(extra, q.Key+" > ?"), append(extraArgs, p.After)
	}
	if p.Before != "" {
		extra, extraArgs = append(extra, q.Key+" < ?"), append(extraArgs, p.Before)
	}
	order := " ORDER BY " + q.Key
	if p.Backward {
		order += " DESC"
	}
	sql, args := q.sql("SELECT "+q.Columns, order+fmt.Sprintf(" LIMIT %d", p.Size+1), extra, extraArgs)
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("paging: %w", err)
	}
	defer rows.Close()
	var items []T
	for rows.Next() {
		item, err := scan(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("paging: scan: %w", err)
		}
		items = append(items, item)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("paging: %w", err)
	}
	full := len(items) > p.Size
	if full {
		items = items[:p.Size]
	}
	if p.Backward {
		slices.Reverse(items)
		info.HasPreviousPage = full
	} else {
		info.HasNextPage = full
	}
	return items, info, nil
}
