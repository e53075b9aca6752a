package accounts

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/audittrail"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// auditReactor appends to AUDIT the entry of each accounts event (but a
// registration's start, which expires from ACCOUNTS: its completion is the
// entry; and the claims, auditedSubjects), on the subject of the event's id,
// which must be new: an event delivered again (a crash before the
// checkpoint) appends nothing twice.
// The entry's summary, when it names personal data, and its address are
// sealed under the user's personal key (an erased user's are dropped).
// Events older than the retention make no entry: the stream would drop it.
// Entries are appended by runs (HandleBatch): an import's bulk of events
// does not wait for a round trip each.
func (s *Service) auditReactor() projection.Reactor {
	return projection.Reactor{
		Name:     auditReactorName,
		Subjects: auditedSubjects(),
		Relevant: func(rec eventlog.Record) bool {
			//eventcheck:partial — a registration's start expires from the log, so it is no entry; every other event is one
			_, started := rec.Event.(*eventsv1.RegistrationStarted)
			return !started && !s.auditRetention().Past(rec.OccurredAt())
		},
		HandleBatch: s.recordAudit,
		Batch:       importBatch,
	}
}

// auditedSubjects are the ACCOUNTS subjects the audit reactor follows: every
// aggregate's but the claims' (a username, an address or an upstream
// identity held unique: UsernameReserved, EmailReserved and EmailReleased,
// UpstreamLinkReserved and UpstreamLinkReleased). A claim only serves the
// event that follows it — a registration or an import, an address added or
// removed, a link, an erasure — whose entry names the same, so an entry of
// its own said it twice (three entries a registration or an imported user,
// each kept for the audit retention), and an import paid for it.
func auditedSubjects() []string {
	var out []string
	for _, a := range eventsv1.Accounts.Aggregates {
		switch a.Type {
		case eventsv1.AccountsUsername.Type, eventsv1.AccountsEmail.Type, eventsv1.AccountsUpstream.Type:
			continue
		}
		out = append(out, a.Subjects())
	}
	return out
}

// recordAudit appends the entries of a run of events to AUDIT, pipelined
// (eventlog.Log.AppendEach): a bulk of events (an import) costs no round
// trip per entry.
func (s *Service) recordAudit(ctx context.Context, recs []eventlog.Record) error {
	if err := s.personal.PrefetchRecords(ctx, recs); err != nil {
		return err
	}
	writes := make([]eventlog.Write, 0, len(recs))
	for _, rec := range recs {
		r, err := s.auditRecordOf(ctx, rec)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		w, err := s.auditWrite(ctx, r)
		if err != nil {
			return err
		}
		writes = append(writes, w)
	}
	return audittrail.Append(ctx, s.auditLog, writes)
}

// auditWrite is the append of one entry on its own subject, once (the
// subject must be new; the audited event's id is the message id), its
// personal data sealed under its user's key.
func (s *Service) auditWrite(ctx context.Context, r *eventsv1.AuditRecord) (eventlog.Write, error) {
	ref := eventlog.Ref{Type: eventsv1.AuditAccounts.Type, ID: r.GetEventId()}
	payload := &eventsv1.AccountsAuditRecorded{Entry: r}
	if ids.Valid(r.GetUserId()) {
		sealed, err := s.personal.SealDroppingErased(ctx, payload, s.auditLog.Subject(ref), personal.NoOwner)
		if err != nil {
			return eventlog.Write{}, fmt.Errorf("audit: seal the entry of %s: %w", r.GetEventId(), err)
		}
		payload = sealed.(*eventsv1.AccountsAuditRecorded)
	}
	return audittrail.Write(eventsv1.AuditAccounts.Type, r, payload), nil
}

// auditRecordOf makes the audit entry of one event, its personal data in
// clear (auditEntryOf); nil for an event that is none (a type this binary
// does not know, a registration's start, one past the retention).
func (s *Service) auditRecordOf(ctx context.Context, rec eventlog.Record) (*eventsv1.AuditRecord, error) {
	if rec.Event == nil || s.auditRetention().Past(rec.OccurredAt()) {
		return nil, nil
	}
	//eventcheck:partial — a registration's start expires from the log, so it is no entry; every other event is one
	if _, ok := rec.Event.(*eventsv1.RegistrationStarted); ok {
		return nil, nil
	}
	e, err := s.auditEntryOf(ctx, rec)
	if err != nil {
		return nil, err
	}
	r := &eventsv1.AuditRecord{
		EventId: rec.ID(), EventType: rec.Type(), Actor: rec.Envelope.GetActor(), OccurredAt: timestamppb.New(rec.OccurredAt()),
		UserId: e.userID, ErasedSummary: e.erased, IpAddress: e.ip,
	}
	if e.summary != e.erased {
		r.Summary = e.summary // it names personal data: sealed
	}
	//eventcheck:partial — only an erasure changes earlier entries
	if ev, ok := rec.Event.(*eventsv1.UserDeactivated); ok && ev.GetErase() {
		r.Erasure = true
	}
	return r, nil
}
