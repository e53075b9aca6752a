package token

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/paging"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/session"
)

// The token service's audit trail: who started, renamed and ended which
// session, from where, and the personal tokens regenerated and login tokens
// used. The accounts service keeps the audit of its own events (sign-ins,
// locks, passwords, emails, admin actions on users); the admin API merges
// both by event id — ULIDs, so by time — into one trail per user.
// Rotations and activity, which happen every few minutes of every session,
// are not audit events.
//
// The trail lives in the AUDIT stream (audit_stream.go), apart from the
// sessions: the audit reactor appends the entry of each session and login
// token event worth auditing (audit_reactor.go), and the audit read model
// follows those entries. Both the stream and the read model forget entries
// older than the retention (audit.retention), so the trail is bounded by
// time whatever the TOKEN stream keeps.

// sessionSubject is whose a session or login token is, and its kind.
type sessionSubject func(ctx context.Context, rec eventlog.Record) (userID, kind string, err error)

// auditRecordOf makes the audit entry of one session or login token event,
// its personal data (the session's address) in clear; nil for an event that
// is no audit entry (a rotation, a snapshot). subject finds whose the
// session or login token is, for the events that name only it.
func auditRecordOf(ctx context.Context, rec eventlog.Record, subject sessionSubject) (*eventsv1.AuditRecord, error) {
	var userID, sessionID, ip, summary string
	switch ev := rec.Event.(type) {
	case *eventsv1.SessionStarted:
		userID, sessionID, ip, summary = ev.GetUserId(), ev.GetSessionId(), ev.GetIpAddress(), session.DescribeStart(ev)
	case *eventsv1.SessionImported:
		st := ev.GetSession()
		userID, sessionID, ip = st.GetUserId(), st.GetSessionId(), st.GetIpAddress()
		summary = fmt.Sprintf("%s session %s (device %s) imported from %s", session.KindName(st.GetKind()), st.GetSessionId(), st.GetDeviceId(), ev.GetSource())
	case *eventsv1.TokensIssued:
		// A rotation is routine; a personal token regenerated is an act.
		user, kind, err := subject(ctx, rec)
		if err != nil || kind != session.PersonalKind {
			return nil, err
		}
		userID, sessionID = user, ev.GetSessionId()
		summary = "personal access token of session " + ev.GetSessionId() + " regenerated" + session.DescribeExpiry(ev)
	case *eventsv1.SessionRenamed:
		user, _, err := subject(ctx, rec)
		if err != nil {
			return nil, err
		}
		userID, sessionID = user, ev.GetSessionId()
		summary = fmt.Sprintf("session %s renamed to %q", ev.GetSessionId(), ev.GetDeviceDisplayName())
	case *eventsv1.SessionEnded:
		user, kind, err := subject(ctx, rec)
		if err != nil {
			return nil, err
		}
		userID, sessionID = user, ev.GetSessionId()
		summary = fmt.Sprintf("%s session %s ended: %s", session.KindName(kind), ev.GetSessionId(), ev.GetReason())
	case *eventsv1.SessionSnapshotted:
		// A session's state written again (compaction, a fold of its
		// activity): nothing happened (its earlier entries:
		// snapshotAuditRecords).
		return nil, nil
	case *eventsv1.LoginTokenIssued:
		userID, summary = ev.GetUserId(), "single-use login token issued (compat SSO)"
	case *eventsv1.LoginTokenUsed:
		user, _, err := subject(ctx, rec)
		if err != nil {
			return nil, err
		}
		userID, sessionID = user, ev.GetSessionId()
		summary = "login token exchanged for compat session " + ev.GetSessionId()
	default:
		return nil, eventlog.Unhandled(rec)
	}
	// Summaries hold no personal data (never the address, nor the user
	// agent): they read the same once the user is erased.
	return &eventsv1.AuditRecord{
		EventId: rec.ID(), EventType: rec.Type(), Actor: rec.Envelope.GetActor(), OccurredAt: timestamppb.New(rec.OccurredAt()),
		UserId: userID, SessionId: sessionID, ErasedSummary: summary, IpAddress: ip,
	}, nil
}

// snapshotAuditRecords are the entries of a session's earlier events that
// its snapshot carries (the start and the newest ones), as the audit read
// model made them before the trail had a stream of its own: what a TOKEN
// stream compacted before the audit reactor first ran holds of them.
func snapshotAuditRecords(snap *eventsv1.SessionSnapshot) []*eventsv1.AuditRecord {
	st := snap.GetSession()
	out := make([]*eventsv1.AuditRecord, 0, len(snap.GetAudit()))
	for _, a := range snap.GetAudit() {
		if a.GetEventId() == "" {
			continue // no event to key it by
		}
		r := &eventsv1.AuditRecord{
			EventId: a.GetEventId(), EventType: a.GetEventType(), Actor: a.GetActor(), OccurredAt: a.GetOccurredAt(),
			UserId: st.GetUserId(), SessionId: st.GetSessionId(), ErasedSummary: a.GetSummary(),
		}
		if a.GetStart() {
			r.IpAddress = st.GetIpAddress()
		}
		out = append(out, r)
	}
	return out
}

// ListAuditEntries pages through the trail in event id order, once the
// trail holds every event appended before the call (catchUpAudit).
func (g *grpcServer) ListAuditEntries(ctx context.Context, req *tokenv1.ListAuditEntriesRequest) (*tokenv1.ListAuditEntriesResponse, error) {
	if req.GetUserId() != "" && !ids.Valid(req.GetUserId()) {
		return nil, errs.InvalidField("user_id", "user_id is not a user id")
	}
	p, err := paging.From(req.GetPage(), ids.Valid)
	if err != nil {
		return nil, err
	}
	if err := g.svc.catchUpAudit(ctx); err != nil {
		return nil, err
	}
	q := &paging.Query{From: "audit_entries", Key: "event_id",
		Columns: "event_id, event_type, user_id, session_id, actor, ip_address, occurred_at, summary"}
	q.WhereIf(req.GetUserId() != "", "user_id = ?", req.GetUserId())
	if r := g.svc.cfg.AuditRetention; r > 0 {
		q.Where("occurred_at >= ?", g.svc.now().Add(-r)) // swept hourly; never shown past it
	}
	entries, info, err := paging.List(ctx, g.svc.pool, q, p, func(r pgx.Rows) (*tokenv1.AuditEntry, error) {
		var (
			e  tokenv1.AuditEntry
			at time.Time
		)
		err := r.Scan(&e.EventId, &e.EventType, &e.UserId, &e.SessionId, &e.Actor, &e.IpAddress, &at, &e.Summary)
		e.OccurredAt = timestamp(at)
		return &e, err
	})
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The audit trail cannot be read right now.", err)
	}
	return &tokenv1.ListAuditEntriesResponse{Entries: entries, Page: info}, nil
}
