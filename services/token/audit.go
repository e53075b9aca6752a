package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/paging"
	"gatehouse.dev/platform/projection"
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
// are not audit events. A session's snapshot carries the entries of its
// earlier events (session.Summary), which a rebuild from a compacted TOKEN
// stream (compaction.go) finds only there.

const auditProjection = "audit"

// auditReadModel keeps audit_log (and audit_subjects, whose each session
// and login token is). A session's address is sealed under its user's
// personal key in the event: it is opened to be recorded (in ip_address
// only, never in a summary), an erasure empties it (eraseSessions), and a
// rebuild after the erasure, whose key is destroyed, finds it unknown.
func (s *Service) auditReadModel() projection.Projection {
	return projection.Projection{
		Name:     auditProjection,
		Subjects: []string{eventsv1.TokenSession.Subjects(), eventsv1.TokenLoginToken.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			if err := s.personal.UnsealRecord(ctx, &rec); err != nil {
				return err
			}
			return applyAuditEvent(ctx, tx, rec)
		},
		Tables: []string{"audit_log", "audit_subjects"},
	}
}

// auditEntry is what one event adds to the trail.
type auditEntry struct {
	userID, sessionID, ip, summary string
}

// applyAuditEvent records one event. Rows are inserted once (by stream
// sequence), so an event delivered again changes nothing.
func applyAuditEvent(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
	subject := func(id string) (user, kind string, err error) {
		err = tx.QueryRow(ctx, `SELECT user_id, kind FROM audit_subjects WHERE aggregate_id = $1`, id).Scan(&user, &kind)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		return user, kind, err
	}
	remember := func(id, user, kind string) error {
		_, err := tx.Exec(ctx, `INSERT INTO audit_subjects (aggregate_id, user_id, kind) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, id, user, kind)
		return err
	}
	var (
		e   *auditEntry
		err error
	)
	if snap := eventsv1.SnapshotOf(rec.Event); snap != nil {
		// The trail of the session's earlier events, which a rebuild from a
		// compacted stream finds only here (as the live trail has them: once).
		st := snap.GetSession()
		if err := remember(st.GetSessionId(), st.GetUserId(), st.GetKind()); err != nil {
			return fmt.Errorf("audit: %s: %w", rec.Type(), err)
		}
		for _, a := range snap.GetAudit() {
			ip := ""
			if a.GetStart() {
				ip = st.GetIpAddress()
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO audit_log (seq, event_id, event_type, user_id, session_id, actor, ip_address, occurred_at, summary)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
				int64(a.GetSeq()), a.GetEventId(), a.GetEventType(), st.GetUserId(), st.GetSessionId(), a.GetActor(), ip, a.GetOccurredAt().AsTime(), a.GetSummary()); err != nil {
				return fmt.Errorf("audit: %s: %w", rec.Type(), err)
			}
		}
	}
	switch ev := rec.Event.(type) {
	case *eventsv1.SessionStarted:
		if err = remember(ev.GetSessionId(), ev.GetUserId(), ev.GetKind()); err == nil {
			e = &auditEntry{userID: ev.GetUserId(), sessionID: ev.GetSessionId(), ip: ev.GetIpAddress(), summary: session.DescribeStart(ev)}
		}
	case *eventsv1.SessionImported:
		st := ev.GetSession()
		if err = remember(st.GetSessionId(), st.GetUserId(), st.GetKind()); err == nil {
			e = &auditEntry{userID: st.GetUserId(), sessionID: st.GetSessionId(), ip: st.GetIpAddress(),
				summary: fmt.Sprintf("%s session %s (device %s) imported from %s", session.KindName(st.GetKind()), st.GetSessionId(), st.GetDeviceId(), ev.GetSource())}
		}
	case *eventsv1.TokensIssued:
		// A rotation is routine; a personal token regenerated is an act.
		user, kind, serr := subject(ev.GetSessionId())
		if err = serr; err == nil && kind == session.PersonalKind {
			e = &auditEntry{userID: user, sessionID: ev.GetSessionId(), summary: "personal access token of session " + ev.GetSessionId() + " regenerated" + session.DescribeExpiry(ev)}
		}
	case *eventsv1.SessionRenamed:
		user, _, serr := subject(ev.GetSessionId())
		if err = serr; err == nil {
			e = &auditEntry{userID: user, sessionID: ev.GetSessionId(), summary: fmt.Sprintf("session %s renamed to %q", ev.GetSessionId(), ev.GetDeviceDisplayName())}
		}
	case *eventsv1.SessionEnded:
		user, kind, serr := subject(ev.GetSessionId())
		if err = serr; err == nil {
			e = &auditEntry{userID: user, sessionID: ev.GetSessionId(), summary: fmt.Sprintf("%s session %s ended: %s", session.KindName(kind), ev.GetSessionId(), ev.GetReason())}
		}
	case *eventsv1.SessionSnapshotted:
		// A session's state written again when its stream was compacted: nothing happened.
	case *eventsv1.LoginTokenIssued:
		if err = remember(rec.Aggregate().ID, ev.GetUserId(), "login_token"); err == nil {
			e = &auditEntry{userID: ev.GetUserId(), summary: "single-use login token issued (compat SSO)"}
		}
	case *eventsv1.LoginTokenUsed:
		user, _, serr := subject(rec.Aggregate().ID)
		if err = serr; err == nil {
			e = &auditEntry{userID: user, sessionID: ev.GetSessionId(), summary: "login token exchanged for compat session " + ev.GetSessionId()}
		}
	default:
		return eventlog.Unhandled(rec)
	}
	if err != nil {
		return fmt.Errorf("audit: %s: %w", rec.Type(), err)
	}
	if e == nil {
		return nil
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO audit_log (seq, event_id, event_type, user_id, session_id, actor, ip_address, occurred_at, summary)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
		int64(rec.Seq), rec.ID(), rec.Type(), e.userID, e.sessionID, rec.Envelope.GetActor(), e.ip, rec.OccurredAt(), e.summary)
	if err != nil {
		return fmt.Errorf("audit: %s: %w", rec.Type(), err)
	}
	return nil
}

// ListAuditEntries pages through the trail in event id order.
func (g *grpcServer) ListAuditEntries(ctx context.Context, req *tokenv1.ListAuditEntriesRequest) (*tokenv1.ListAuditEntriesResponse, error) {
	if req.GetUserId() != "" && !ids.Valid(req.GetUserId()) {
		return nil, errs.InvalidField("user_id", "user_id is not a user id")
	}
	p, err := paging.From(req.GetPage(), ids.Valid)
	if err != nil {
		return nil, err
	}
	q := &paging.Query{From: "audit_log", Key: "event_id",
		Columns: "event_id, event_type, user_id, session_id, actor, ip_address, occurred_at, summary"}
	q.WhereIf(req.GetUserId() != "", "user_id = ?", req.GetUserId())
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
