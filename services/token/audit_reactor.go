package token

import (
	"context"
	"fmt"

	"gatehouse.dev/platform/audittrail"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/session"
)

// auditReactor appends to AUDIT the entry of each session and login token
// event worth auditing (auditRecordOf decides which), on the subject of the
// audited event's id, which must be new: an event delivered again (a crash
// before the checkpoint) appends nothing twice. The entry's address is
// sealed under its user's personal key; an erased user's is dropped.
// Events older than the retention make no entry: the stream would drop it.
// Entries are appended by runs (HandleBatch): an import's bulk of sessions
// does not wait for a round trip each.
func (s *Service) auditReactor() projection.Reactor {
	return projection.Reactor{
		Name:     auditReactorName,
		Subjects: []string{eventsv1.TokenSession.Subjects(), eventsv1.TokenLoginToken.Subjects()},
		Relevant: func(rec eventlog.Record) bool {
			if s.auditRetention().Past(rec.OccurredAt()) {
				return false
			}
			//eventcheck:partial — a rotation of any session but a personal one is routine, no entry; the rest are decided by auditRecordOf
			if ev, ok := rec.Event.(*eventsv1.TokensIssued); ok && ev.GetState() != nil {
				return ev.GetState().GetSession().GetKind() == session.PersonalKind
			}
			return true
		},
		HandleBatch: s.recordAudit,
		Batch:       auditBatch,
	}
}

// recordAudit appends the entries of a run of events to AUDIT, pipelined
// (eventlog.Log.AppendEach): a bulk of sessions (an import) costs no round
// trip per entry.
func (s *Service) recordAudit(ctx context.Context, recs []eventlog.Record) error {
	var writes []eventlog.Write
	for _, rec := range recs {
		records, err := s.auditRecordsOf(ctx, rec)
		if err != nil {
			return err
		}
		for _, r := range records {
			w, err := s.auditWrite(ctx, r)
			if err != nil {
				return err
			}
			writes = append(writes, w)
		}
	}
	return audittrail.Append(ctx, s.auditLog, writes)
}

// auditRecordsOf are the entries one event adds to the trail, its personal
// data opened: its own, if any, and those of the earlier events a
// compaction's snapshot carries. Entries past the retention are left out.
func (s *Service) auditRecordsOf(ctx context.Context, rec eventlog.Record) ([]*eventsv1.AuditRecord, error) {
	if rec.Event == nil {
		return nil, nil // a type this binary does not know
	}
	if err := s.personal.UnsealRecord(ctx, &rec); err != nil {
		return nil, err
	}
	var records []*eventsv1.AuditRecord
	//eventcheck:partial — only a compaction's snapshot brings earlier entries; auditRecordOf handles every event
	if ev, ok := rec.Event.(*eventsv1.SessionSnapshotted); ok {
		records = snapshotAuditRecords(ev.GetState())
	}
	r, err := auditRecordOf(ctx, rec, s.auditSubject)
	if err != nil {
		return nil, err
	}
	if r != nil {
		records = append(records, r)
	}
	out := records[:0]
	for _, r := range records {
		if !s.auditRetention().Past(r.GetOccurredAt().AsTime()) {
			out = append(out, r)
		}
	}
	return out, nil
}

// auditWrite is the append of one entry on its own subject, once (the
// subject must be new; the audited event's id is the message id).
func (s *Service) auditWrite(ctx context.Context, r *eventsv1.AuditRecord) (eventlog.Write, error) {
	ref := eventlog.Ref{Type: eventsv1.AuditToken.Type, ID: r.GetEventId()}
	sealed, err := s.personal.SealDroppingErased(ctx, &eventsv1.TokenAuditRecorded{Entry: r}, s.auditLog.Subject(ref), personal.NoOwner)
	if err != nil {
		return eventlog.Write{}, fmt.Errorf("audit: seal the entry of %s: %w", r.GetEventId(), err)
	}
	return audittrail.Write(eventsv1.AuditToken.Type, r, sealed), nil
}

// auditSubject finds whose the session or login token of an event is, and
// its kind: from the session's state the event carries, else from the
// aggregate's first events in the TOKEN stream.
func (s *Service) auditSubject(ctx context.Context, rec eventlog.Record) (userID, kind string, err error) {
	if _, start, _, ok := eventsv1.SessionOf(rec.Event); ok && start != nil {
		return start.GetUserId(), start.GetKind(), nil
	}
	history, _, err := s.log.Load(ctx, rec.Aggregate())
	if err != nil {
		return "", "", fmt.Errorf("audit: load %s: %w", rec.Subject, err)
	}
	for _, h := range history {
		if _, start, _, ok := eventsv1.SessionOf(h.Event); ok && start != nil {
			return start.GetUserId(), start.GetKind(), nil
		}
		//eventcheck:partial — a login token's user is in its issue
		if ev, ok := h.Event.(*eventsv1.LoginTokenIssued); ok {
			return ev.GetUserId(), "login_token", nil
		}
	}
	return "", "", nil // its start is gone (expired, compacted): an entry that names no user
}
