package paging_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/paging"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/testkit"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// Pages over real PostgreSQL: 25 rows k01..k25, every odd one "odd".
func TestList(t *testing.T) {
	ctx := context.Background()
	pool, err := pg.Connect(ctx, testkit.Postgres(t), "public")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE items (id text PRIMARY KEY, odd boolean NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 25; i++ {
		if _, err := pool.Exec(ctx, `INSERT INTO items VALUES ($1, $2)`, fmt.Sprintf("k%02d", i), i%2 == 1); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(from, to, step int) []string {
		var out []string
		for i := from; i <= to; i += step {
			out = append(out, fmt.Sprintf("k%02d", i))
		}
		return out
	}
	scan := func(r pgx.Rows) (string, error) {
		var id string
		return id, r.Scan(&id)
	}
	tests := []struct {
		name       string
		req        *pagingv1.PageRequest
		odd        bool
		want       []string
		next, prev bool
		total      int64 // -1: not counted
	}{
		{"default: the first 10", &pagingv1.PageRequest{}, false, keys(1, 10, 1), true, false, -1},
		{"first 3", &pagingv1.PageRequest{First: 3, Count: pagingv1.Count_COUNT_INCLUDE}, false, keys(1, 3, 1), true, false, 25},
		{"first 3 after k03", &pagingv1.PageRequest{First: 3, After: "k03"}, false, keys(4, 6, 1), true, false, -1},
		{"the first 5 of the rest, all", &pagingv1.PageRequest{First: 5, After: "k20"}, false, keys(21, 25, 1), false, false, -1},
		{"last 4, ascending", &pagingv1.PageRequest{Last: 4}, false, keys(22, 25, 1), false, true, -1},
		{"last 4 before k10", &pagingv1.PageRequest{Last: 4, Before: "k10"}, false, keys(6, 9, 1), false, true, -1},
		{"last 20 before k10: all", &pagingv1.PageRequest{Last: 20, Before: "k10"}, false, keys(1, 9, 1), false, false, -1},
		{"between cursors", &pagingv1.PageRequest{First: 100, After: "k05", Before: "k09"}, false, keys(6, 8, 1), false, false, -1},
		{"filtered", &pagingv1.PageRequest{First: 2, After: "k01", Count: pagingv1.Count_COUNT_INCLUDE}, true, []string{"k03", "k05"}, true, false, 13},
		{"count only", &pagingv1.PageRequest{Count: pagingv1.Count_COUNT_ONLY}, true, nil, false, false, 13},
		{"past the end", &pagingv1.PageRequest{After: "k99"}, false, nil, false, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := paging.From(tt.req, nil)
			if err != nil {
				t.Fatal(err)
			}
			q := &paging.Query{From: "items", Columns: "id", Key: "id"}
			q.WhereIf(tt.odd, "odd = ?", true)
			got, info, err := paging.List(ctx, pool, q, p, scan)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) || info.GetHasNextPage() != tt.next || info.GetHasPreviousPage() != tt.prev {
				t.Fatalf("got %v next=%v prev=%v, want %v next=%v prev=%v", got, info.GetHasNextPage(), info.GetHasPreviousPage(), tt.want, tt.next, tt.prev)
			}
			if (tt.total < 0) != (info.Total == nil) || (info.Total != nil && *info.Total != tt.total) {
				t.Fatalf("total %v, want %d", info.Total, tt.total)
			}
		})
	}
}

func TestFromRefuses(t *testing.T) {
	for name, req := range map[string]*pagingv1.PageRequest{
		"first and last":   {First: 1, Last: 1},
		"negative":         {First: -1},
		"too large":        {Last: paging.MaxSize + 1},
		"a foreign cursor": {After: "not-a-key"},
		"unknown count":    {Count: 9},
	} {
		if _, err := paging.From(req, func(c string) bool { return c[0] == 'k' }); errs.KindOf(err) != errs.KindInvalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}
