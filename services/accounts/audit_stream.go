package accounts

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/audittrail"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// The accounts service's audit trail lives in the AUDIT stream, apart from
// the accounts' events: the audit reactor (audit_reactor.go) appends the
// entry of each event (auditEntryOf decides what it says) on
// audit.accounts.<event id>, and the audit read model follows those
// entries. Both the stream and the read model forget entries older than the
// retention (audit.retention), so the trail is bounded by time whatever
// ACCOUNTS keeps. The admin API merges it with the token service's by event
// id.

// Names of the audit reactor and read model (unique among the projections
// of every service that follows the stream they read).
const (
	auditReactorName = "accounts_audit_recorder"
	auditProjection  = "accounts_audit"
)

// auditReadModel keeps audit_entries from the service's entries in AUDIT,
// their personal data opened. An entry whose summary no longer opens (its
// user erased) shows its summary without personal data; the erasure's own
// entry replaces the summaries and addresses of the user's earlier entries
// with the same, so a rebuild after the erasure ends the same. Entries older
// than the retention are skipped and swept (audittrail.Sweep).
func (s *Service) auditReadModel() projection.Projection {
	return projection.Projection{
		Name:       auditProjection,
		Source:     s.auditLog,
		Subjects:   []string{eventsv1.AuditAccounts.Subjects()},
		Apply:      s.applyAuditEntry,
		ApplyBatch: s.applyAuditEntries,
		Batch:      importBatch,
		Tables:     []string{"audit_entries"},
	}
}

// auditRow is one row of audit_entries.
type auditRow struct {
	seq                                                           int64
	eventID, eventType, userID, actor, summary, erased, ipAddress string
	at                                                            time.Time
	erasure                                                       bool
}

// auditRowOf opens an AUDIT record into its row; ok is false for an entry
// past the retention.
func (s *Service) auditRowOf(ctx context.Context, rec eventlog.Record) (row auditRow, ok bool, err error) {
	if err := s.personal.UnsealRecord(ctx, &rec); err != nil {
		return auditRow{}, false, err
	}
	ev, isEntry := rec.Event.(*eventsv1.AccountsAuditRecorded)
	if !isEntry {
		return auditRow{}, false, eventlog.Unhandled(rec)
	}
	e := ev.GetEntry()
	row = auditRow{seq: int64(rec.Seq), eventID: e.GetEventId(), eventType: e.GetEventType(), userID: e.GetUserId(), actor: e.GetActor(),
		summary: e.GetSummary(), erased: e.GetErasedSummary(), ipAddress: e.GetIpAddress(), at: e.GetOccurredAt().AsTime(), erasure: e.GetErasure()}
	if row.summary == "" {
		row.summary = row.erased // none of its own, or no longer readable
	}
	return row, !s.auditRetention().Past(row.at), nil
}

// applyAuditEntry is the audit read model's Apply.
func (s *Service) applyAuditEntry(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
	row, ok, err := s.auditRowOf(ctx, rec)
	if err != nil || !ok {
		return err
	}
	if err := insertAuditRows(ctx, tx, []auditRow{row}); err != nil {
		return err
	}
	if row.erasure {
		if _, err := tx.Exec(ctx, `UPDATE audit_entries SET summary = erased_summary, ip_address = ''
			WHERE user_id = $1 AND (summary <> erased_summary OR ip_address <> '')`, row.userID); err != nil {
			return fmt.Errorf("audit: erase: %w", err)
		}
	}
	return nil
}

// applyAuditEntries is the audit read model's ApplyBatch: one statement for
// each run of entries, an erasure (which changes earlier entries) on its own.
func (s *Service) applyAuditEntries(ctx context.Context, tx pgx.Tx, recs []eventlog.Record) error {
	if err := s.personal.PrefetchRecords(ctx, recs); err != nil {
		return err
	}
	isErasure := func(rec eventlog.Record) bool {
		ev, ok := rec.Event.(*eventsv1.AccountsAuditRecorded)
		return ok && ev.GetEntry().GetErasure()
	}
	return projection.RunsOf(recs, func(rec eventlog.Record) bool { return !isErasure(rec) },
		func(run []eventlog.Record) error {
			rows := make([]auditRow, 0, len(run))
			for _, rec := range run {
				row, ok, err := s.auditRowOf(ctx, rec)
				if err != nil {
					return err
				}
				if ok {
					rows = append(rows, row)
				}
			}
			return insertAuditRows(ctx, tx, rows)
		},
		func(rec eventlog.Record) error { return s.applyAuditEntry(ctx, tx, rec) })
}

// insertAuditRows inserts rows, each once.
func insertAuditRows(ctx context.Context, tx pgx.Tx, rows []auditRow) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	seqs, at := make([]int64, 0, n), make([]time.Time, 0, n)
	eventIDs, types, users, actors, summaries, erased, ips := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n),
		make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	for _, r := range rows {
		seqs, at = append(seqs, r.seq), append(at, r.at)
		eventIDs, types, users, actors = append(eventIDs, r.eventID), append(types, r.eventType), append(users, r.userID), append(actors, r.actor)
		summaries, erased, ips = append(summaries, r.summary), append(erased, r.erased), append(ips, r.ipAddress)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO audit_entries (seq, event_id, event_type, user_id, actor, occurred_at, summary, erased_summary, ip_address)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[], $9::text[])
		ON CONFLICT DO NOTHING`, seqs, eventIDs, types, users, actors, at, summaries, erased, ips)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// auditRetention is how long the trail keeps entries, by the service's clock.
func (s *Service) auditRetention() audittrail.Retention {
	return audittrail.Retention{Keep: s.cfg.AuditRetention, Now: s.clock}
}

// catchUpAudit waits, briefly, until the trail holds the entry of every
// event the service appended before now (audittrail.CatchUp).
func (s *Service) catchUpAudit(ctx context.Context) error {
	return audittrail.CatchUp(ctx, s.projections, auditReactorName, auditProjection)
}
