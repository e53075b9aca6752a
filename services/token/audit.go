package token

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
// are not audit events.

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
	switch ev := rec.Event.(type) {
	case *eventsv1.SessionStarted:
		if err = remember(ev.GetSessionId(), ev.GetUserId(), ev.GetKind()); err == nil {
			e = &auditEntry{userID: ev.GetUserId(), sessionID: ev.GetSessionId(), ip: ev.GetIpAddress(), summary: describeStart(ev)}
		}
	case *eventsv1.SessionImported:
		st := ev.GetSession()
		if err = remember(st.GetSessionId(), st.GetUserId(), st.GetKind()); err == nil {
			e = &auditEntry{userID: st.GetUserId(), sessionID: st.GetSessionId(), ip: st.GetIpAddress(),
				summary: fmt.Sprintf("%s session %s (device %s) imported from %s", kindName(st.GetKind()), st.GetSessionId(), st.GetDeviceId(), ev.GetSource())}
		}
	case *eventsv1.TokensIssued:
		// A rotation is routine; a personal token regenerated is an act.
		user, kind, serr := subject(ev.GetSessionId())
		if err = serr; err == nil && kind == session.PersonalKind {
			e = &auditEntry{userID: user, sessionID: ev.GetSessionId(), summary: "personal access token of session " + ev.GetSessionId() + " regenerated" + expiry(ev)}
		}
	case *eventsv1.SessionRenamed:
		user, _, serr := subject(ev.GetSessionId())
		if err = serr; err == nil {
			e = &auditEntry{userID: user, sessionID: ev.GetSessionId(), summary: fmt.Sprintf("session %s renamed to %q", ev.GetSessionId(), ev.GetDeviceDisplayName())}
		}
	case *eventsv1.SessionEnded:
		user, kind, serr := subject(ev.GetSessionId())
		if err = serr; err == nil {
			e = &auditEntry{userID: user, sessionID: ev.GetSessionId(), summary: fmt.Sprintf("%s session %s ended: %s", kindName(kind), ev.GetSessionId(), ev.GetReason())}
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
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (seq) DO NOTHING`,
		int64(rec.Seq), rec.ID(), rec.Type(), e.userID, e.sessionID, rec.Envelope.GetActor(), e.ip, rec.OccurredAt(), e.summary)
	if err != nil {
		return fmt.Errorf("audit: %s: %w", rec.Type(), err)
	}
	return nil
}

// kindName names a kind of session for people.
func kindName(kind string) string {
	switch kind {
	case "oauth":
		return "OAuth"
	case "client_credentials":
		return "client credentials"
	case "":
		return "unknown"
	}
	return kind
}

// describeStart summarises a session's start (never its tokens' hashes).
func describeStart(ev *eventsv1.SessionStarted) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s session %s started", kindName(ev.GetKind()), ev.GetSessionId())
	if ev.GetKind() == session.PersonalKind {
		fmt.Fprintf(&b, " (personal access token %q", ev.GetDeviceDisplayName())
		if ev.GetOwnerUserId() != "" && ev.GetOwnerUserId() != ev.GetUserId() {
			b.WriteString(", created by user " + ev.GetOwnerUserId())
		}
		b.WriteString(")")
	}
	if ev.GetClientId() != "" {
		b.WriteString(" for client " + ev.GetClientId())
	}
	if ev.GetDeviceId() != "" {
		b.WriteString(" with device " + ev.GetDeviceId())
	}
	if ev.GetScope() != "" {
		fmt.Fprintf(&b, ", scope %q", ev.GetScope())
	}
	if ev.GetKind() == session.PersonalKind {
		b.WriteString(expiry(ev.GetTokens()))
	}
	return b.String() // never the address or user agent: personal data, kept apart (ip_address) and erasable
}

// expiry says when a personal token expires.
func expiry(t *eventsv1.TokensIssued) string {
	if t.GetAccessExpiresAt() == nil {
		return ", never expires"
	}
	return ", expires " + t.GetAccessExpiresAt().AsTime().UTC().Format(time.RFC3339)
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
