package accounts

import (
	"context"
	"time"

	"gatehouse.dev/platform/audittrail"
)

// EmailID is emailID, for the migration's test.
var EmailID = emailID

// DropOldAudit is the audit sweep once, for the retention's test.
func (s *Service) DropOldAudit(ctx context.Context) (int64, error) {
	return audittrail.Drop(ctx, s.pool, "audit_entries", s.auditRetention())
}

// Names of the audit reactor and read model, for their tests.
const (
	AuditReactorName = auditReactorName
	AuditProjection  = auditProjection
)

// DropOldBrowserSessions is the browser sessions' sweep once at now, for the
// retention's test.
func (s *Service) DropOldBrowserSessions(ctx context.Context, now time.Time) (int64, error) {
	return s.dropOldBrowserSessions(ctx, now)
}

// DropEndedTokenSessions is the users' token sessions sweep once at now, for
// its test.
func (s *Service) DropEndedTokenSessions(ctx context.Context, now time.Time) (int64, error) {
	return s.dropEndedTokenSessions(ctx, now)
}
