package pg

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"path"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrate applies the *.sql files at the root of migrations, in lexical order
// of their names (0001_users.sql, 0002_...), to the pool's current schema.
//
// Each file runs in its own transaction together with its row in
// schema_migrations (version is the file name without .sql), so it applies
// completely or not at all; applied files are skipped. Concurrent callers on the same schema (replicas starting together)
// are serialized by an advisory lock, so every file applies exactly once.
// Statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY) are
// not supported. A failing file stops the run with an error naming it.
func Migrate(ctx context.Context, pool *pgxpool.Pool, migrations fs.FS) error {
	files, err := migrationFiles(migrations)
	if err != nil {
		return err
	}
	var schema *string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("pg: migrate: current schema: %w", err)
	}
	if schema == nil {
		return errors.New("pg: migrate: no schema on the search_path exists")
	}
	key := lockKey(*schema)
	for _, name := range files {
		sql, err := fs.ReadFile(migrations, name)
		if err != nil {
			return fmt.Errorf("pg: migrate: %w", err)
		}
		applied, err := applyMigration(ctx, pool, key, strings.TrimSuffix(name, ".sql"), string(sql))
		if err != nil {
			return fmt.Errorf("pg: migrate %s (schema %s): %w", name, *schema, err)
		}
		if applied {
			slog.InfoContext(ctx, "applied migration", "schema", *schema, "file", name)
		}
	}
	return nil
}

// migrationFiles lists the *.sql files at the root of fsys, sorted.
func migrationFiles(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("pg: migrate: list migrations: %w", err)
	}
	var files []string
	for _, e := range entries { // fs.ReadDir sorts by name
		if !e.IsDir() && path.Ext(e.Name()) == ".sql" {
			files = append(files, e.Name())
		}
	}
	return files, nil
}

// lockKey derives the advisory lock key that serializes migrations of schema.
func lockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("gatehouse.dev/platform/pg.Migrate:" + schema))
	return int64(h.Sum64())
}

// applyMigration applies one migration under the schema's advisory lock unless
// it was applied before, and reports whether it applied it. The lock is held
// until the transaction ends, so a concurrent caller waits and then sees the
// version recorded.
func applyMigration(ctx context.Context, pool *pgxpool.Pool, key int64, version, sql string) (applied bool, err error) {
	err = InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", key); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version text PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var done bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", version).Scan(&done); err != nil {
			return fmt.Errorf("check applied: %w", err)
		}
		if done {
			return nil
		}
		if _, err := tx.Exec(ctx, sql); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())", version); err != nil {
			return fmt.Errorf("record version: %w", err)
		}
		applied = true
		return nil
	})
	return applied, err
}
