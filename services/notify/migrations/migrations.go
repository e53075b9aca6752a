// Package migrations holds the notify service's SQL schema.
package migrations

import "embed"

// FS holds the migration files, applied in name order.
//
//go:embed *.sql
var FS embed.FS
