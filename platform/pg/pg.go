// Package pg is the PostgreSQL plumbing services share: pools confined to a
// service's own schema, schema migrations, database administration and
// transaction helpers.
package pg

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgreSQL error codes this package recognises.
const (
	codeUniqueViolation   = "23505"
	codeDuplicateDatabase = "42P04"
	codeDuplicateSchema   = "42P06"
)

// schemaName is the form of schema names Connect accepts.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Connect returns a pool on the database at dbURL whose connections use schema
// as their search_path, after checking the server answers and creating the
// schema if it is missing. Error messages mask the URL's password.
func Connect(ctx context.Context, dbURL, schema string) (*pgxpool.Pool, error) {
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("pg: invalid schema name %q: want lower-case letters, digits and underscores", schema)
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("pg: parse database URL: %w", redact(err, dbURL))
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pg: create pool: %w", redact(err, dbURL))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pg: ping: %w", redact(err, dbURL))
	}
	if err := createSchema(ctx, pool, schema); err != nil {
		pool.Close()
		return nil, redact(err, dbURL)
	}
	return pool, nil
}

// createSchema creates schema unless it exists; concurrent creators can
// collide on the catalog's unique index, which also means it exists now.
func createSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	// Look first: a role without CREATE on the database may use a schema an
	// administrator made, but CREATE SCHEMA IF NOT EXISTS checks the privilege.
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		return fmt.Errorf("pg: look up schema %s: %w", schema, err)
	}
	if exists {
		return nil
	}
	_, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	if err != nil && !hasCode(err, codeDuplicateSchema, codeUniqueViolation) {
		return fmt.Errorf("pg: create schema %s: %w", schema, err)
	}
	return nil
}

// CreateDatabase creates database name on the server at adminURL; a database
// that already exists is left alone.
func CreateDatabase(ctx context.Context, adminURL, name string) error {
	err := adminExec(ctx, adminURL, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil && !hasCode(err, codeDuplicateDatabase, codeUniqueViolation) {
		return fmt.Errorf("pg: create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name on the server at adminURL if it exists,
// disconnecting its clients.
func DropDatabase(ctx context.Context, adminURL, name string) error {
	if err := adminExec(ctx, adminURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pg: drop database %s: %w", name, err)
	}
	return nil
}

// adminExec runs one statement on its own connection, as CREATE and DROP
// DATABASE cannot run inside a transaction.
func adminExec(ctx context.Context, adminURL, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect: %w", redact(err, adminURL))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return redact(err, adminURL)
	}
	return nil
}

// IsUniqueViolation reports whether err is PostgreSQL's unique_violation (23505).
func IsUniqueViolation(err error) bool {
	return hasCode(err, codeUniqueViolation)
}

// hasCode reports whether err is a PostgreSQL error with one of codes.
func hasCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	for _, c := range codes {
		if pgErr.Code == c {
			return true
		}
	}
	return false
}

// InTx runs fn in a transaction, committing if it returns nil and rolling back
// otherwise (also if it panics). fn's error is returned as is.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: begin: %w", err)
	}
	defer tx.Rollback(ctx) // a no-op once committed
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: commit: %w", err)
	}
	return nil
}

// Patterns that find passwords in connection strings: URL userinfo, URL
// query parameters, and keyword/value settings.
var (
	urlUserinfoPassword = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:([^@/?#]*)@`)
	urlQueryPassword    = regexp.MustCompile(`[?&]password=([^&#]*)`)
	keywordPassword     = regexp.MustCompile(`(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)
)

// redact returns err with any password found in connString masked in its
// message; errors.Is and errors.As still see the original.
func redact(err error, connString string) error {
	if err == nil {
		return nil
	}
	var secrets []string
	for _, re := range []*regexp.Regexp{urlUserinfoPassword, urlQueryPassword, keywordPassword} {
		for _, m := range re.FindAllStringSubmatch(connString, -1) {
			raw := m[1]
			secrets = append(secrets, raw, strings.Trim(raw, "'"))
			if dec, derr := url.QueryUnescape(raw); derr == nil {
				secrets = append(secrets, dec)
			}
			if dec, derr := url.PathUnescape(raw); derr == nil {
				secrets = append(secrets, dec)
			}
		}
	}
	msg := err.Error()
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

// redactedError is an error whose message had secrets masked.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
