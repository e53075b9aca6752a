package token

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/audittrail"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// The AUDIT stream as the token service reads and writes it: its own
// entries (audit.token.<event id>), kept for the retention.

// Names of the audit reactor and read model (unique among the projections
// of every service that follows the stream they read).
const (
	auditReactorName = "token_audit_recorder"
	auditProjection  = "token_audit"
)

// auditBatch is how many events the audit reactor handles at once at most.
const auditBatch = 500

// auditReadModel keeps audit_entries from the service's entries in AUDIT,
// their addresses opened (an erased user's no longer open, and
// eraseSessions empties those already kept). Entries older than the
// retention are skipped and swept (audittrail.Sweep), as the stream forgets them.
func (s *Service) auditReadModel() projection.Projection {
	return projection.Projection{
		Name:     auditProjection,
		Source:   s.auditLog,
		Subjects: []string{eventsv1.AuditToken.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			if err := s.personal.UnsealRecord(ctx, &rec); err != nil {
				return err
			}
			ev, ok := rec.Event.(*eventsv1.TokenAuditRecorded)
			if !ok {
				return eventlog.Unhandled(rec)
			}
			e := ev.GetEntry()
			at := e.GetOccurredAt().AsTime()
			if s.auditRetention().Past(at) {
				return nil
			}
			summary := e.GetSummary()
			if summary == "" {
				summary = e.GetErasedSummary()
			}
			_, err := tx.Exec(ctx, `
				INSERT INTO audit_entries (event_id, event_type, user_id, session_id, actor, ip_address, occurred_at, summary)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING`,
				e.GetEventId(), e.GetEventType(), e.GetUserId(), e.GetSessionId(), e.GetActor(), e.GetIpAddress(), at, summary)
			if err != nil {
				return fmt.Errorf("audit: %w", err)
			}
			return nil
		},
		Tables: []string{"audit_entries"},
	}
}

// auditRetention is how long the trail keeps entries, by the service's clock.
func (s *Service) auditRetention() audittrail.Retention {
	return audittrail.Retention{Keep: s.cfg.AuditRetention, Now: s.now}
}

// catchUpAudit waits, briefly, until the trail holds the entry of every
// event the service appended before now (audittrail.CatchUp).
func (s *Service) catchUpAudit(ctx context.Context) error {
	return audittrail.CatchUp(ctx, s.projections, auditReactorName, auditProjection)
}
