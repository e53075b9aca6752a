package pg

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, connString, secret string
	}{
		{"url userinfo", "postgres://svc:hunter2@db:5432/app", "hunter2"},
		{"url userinfo escaped", "postgres://svc:p%40ss%2Fw@db/app", "p@ss/w"},
		{"url query", "postgres://db/app?user=svc&password=hunter2&sslmode=require", "hunter2"},
		{"keyword", "host=db user=svc password=hunter2 dbname=app", "hunter2"},
		{"keyword quoted", "host=db password='hun ter2' dbname=app", "hun ter2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cause := &pgconn.PgError{Code: "28P01", Message: "auth failed for " + tt.secret}
			err := redact(fmt.Errorf("connect %s: %w", tt.connString, cause), tt.connString)
			if strings.Contains(err.Error(), tt.secret) {
				t.Fatalf("redacted error %q still contains the password", err)
			}
			if !strings.Contains(err.Error(), "xxxxx") {
				t.Fatalf("redacted error %q has no mask", err)
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr != cause {
				t.Fatalf("redacted error no longer unwraps to the cause")
			}
		})
	}
	plain := errors.New("connection refused")
	if got := redact(plain, "host=db password=hunter2"); got != plain {
		t.Fatalf("error without the password was rewrapped: %v", got)
	}
}
