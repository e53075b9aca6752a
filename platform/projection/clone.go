package projection

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// cloneTables creates in schema to empty copies of the tables of schema
// from that exist there: columns with their types, defaults, NOT NULL and
// CHECK constraints (CREATE TABLE ... LIKE), then primary keys, unique and
// exclusion constraints, indexes and foreign keys under their own names, so
// that once moved into from they are what the migrations made. Foreign keys
// between the tables point at the copies.
//
// What a copy could not carry over is refused before anything is cloned:
// triggers, columns filled from a sequence (serial; identity columns are
// fine), and foreign keys from tables outside the set, which would keep
// pointing at the dropped tables.
func cloneTables(ctx context.Context, tx pgx.Tx, from, to string, tables []string) error {
	var present []string
	for _, t := range tables {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{from, t}.Sanitize()).Scan(&ok); err != nil {
			return fmt.Errorf("look up %s: %w", t, err)
		}
		if ok {
			present = append(present, t)
		}
	}
	if err := checkCloneable(ctx, tx, from, present); err != nil {
		return err
	}
	var foreignKeys []string
	for _, t := range present {
		src, dst := pgx.Identifier{from, t}.Sanitize(), pgx.Identifier{to, t}.Sanitize()
		if _, err := tx.Exec(ctx, `CREATE TABLE `+dst+` (LIKE `+src+` INCLUDING ALL EXCLUDING INDEXES)`); err != nil {
			return fmt.Errorf("copy %s: %w", t, err)
		}
		constraints, err := queryPairs(ctx, tx, `
			SELECT quote_ident(conname) || ' ' || pg_get_constraintdef(oid), contype::text
			FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x', 'f') ORDER BY conname`, src)
		if err != nil {
			return fmt.Errorf("constraints of %s: %w", t, err)
		}
		for _, c := range constraints {
			stmt := `ALTER TABLE ` + dst + ` ADD CONSTRAINT ` + c[0]
			if c[1] == "f" {
				foreignKeys = append(foreignKeys, stmt)
				continue
			}
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("copy a constraint of %s: %w", t, err)
			}
		}
		indexes, err := queryPairs(ctx, tx, `
			SELECT quote_ident(i.relname), pg_get_indexdef(x.indexrelid)
			FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
			WHERE x.indrelid = $1::regclass AND NOT EXISTS (
				SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x'))
			ORDER BY i.relname`, src)
		if err != nil {
			return fmt.Errorf("indexes of %s: %w", t, err)
		}
		for _, ix := range indexes {
			stmt, err := indexOn(ix[1], ix[0], dst)
			if err != nil {
				return fmt.Errorf("copy an index of %s: %w", t, err)
			}
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("copy index %s of %s: %w", ix[0], t, err)
			}
		}
	}
	// The definitions name referenced tables as the live schema sees them;
	// looked up from the copies' schema first, they reach the copies.
	if err := setSearchPath(ctx, tx, to, from); err != nil {
		return err
	}
	for _, stmt := range foreignKeys {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("copy a foreign key: %w", err)
		}
	}
	return setSearchPath(ctx, tx, from)
}

// indexOn rewrites an index definition from pg_get_indexdef ("CREATE
// [UNIQUE] INDEX name ON schema.table USING ...") to build the same index on
// table dst.
func indexOn(def, name, dst string) (string, error) {
	for _, head := range []string{"CREATE INDEX ", "CREATE UNIQUE INDEX "} {
		prefix := head + name + " ON "
		if rest, ok := strings.CutPrefix(def, prefix); ok {
			using := strings.Index(rest, " USING ")
			if using < 0 {
				break
			}
			return prefix + dst + rest[using:], nil
		}
	}
	return "", fmt.Errorf("unexpected index definition %q", def)
}

// checkCloneable refuses tables a copy would not reproduce faithfully.
func checkCloneable(ctx context.Context, tx pgx.Tx, schema string, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{schema, t}.Sanitize()
	}
	checks := []struct{ what, sql string }{
		{"has triggers, which a rebuild would not copy", `
			SELECT tgrelid::regclass::text || ' ' || tgname FROM pg_trigger
			WHERE tgrelid = ANY($1::regclass[]) AND NOT tgisinternal`},
		{"takes values from a sequence (use an identity column)", `
			SELECT d.adrelid::regclass::text || '.' || a.attname FROM pg_attrdef d
			JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
			WHERE d.adrelid = ANY($1::regclass[]) AND pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%'`},
		{"is referenced by a table outside the projection, which the swap would leave pointing at the old table", `
			SELECT conrelid::regclass::text || ' ' || conname FROM pg_constraint
			WHERE contype = 'f' AND confrelid = ANY($1::regclass[]) AND NOT conrelid = ANY($1::regclass[])`},
	}
	for _, c := range checks {
		rows, err := tx.Query(ctx, c.sql, names)
		if err != nil {
			return fmt.Errorf("check the tables: %w", err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("check the tables: %w", err)
		}
		if len(found) > 0 {
			return fmt.Errorf("cannot rebuild beside the live tables: %s %s", strings.Join(found, ", "), c.what)
		}
	}
	return nil
}

// queryPairs runs a query of two text columns.
func queryPairs(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([][2]string, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) ([2]string, error) {
		var p [2]string
		err := row.Scan(&p[0], &p[1])
		return p, err
	})
}
