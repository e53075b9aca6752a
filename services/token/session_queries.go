package token

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/paging"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// Reading sessions: a user's (ListSessions, for the account page and the
// admin CLI), any page of all of them with the admin API's filters
// (QuerySessions), one (GetSession). Each session shows its current access
// token's expiry (personal tokens) and the activity this replica noted but
// has not written yet.

// sessionsFrom is the sessions read model with each session's activity
// (activity_projection.go) and current access token's expiry (NULL: none,
// or it never expires).
const sessionsFrom = `sessions s` + activityJoin + ` LEFT JOIN LATERAL (
	SELECT max(t.expires_at) AS expires_at FROM tokens t
	WHERE t.session_id = s.session_id AND t.kind = 'access_token' AND NOT t.revoked) x ON true`

// sessionColumns are the columns scanSession reads.
const sessionColumns = `s.session_id, s.kind, s.client_id, s.user_id, s.scope, s.device_id, s.created_at, s.ended_at,
	s.device_display_name, ` + lastActiveSQL + `, ` + lastAddressSQL + `, s.user_agent, s.owner_user_id, s.end_reason, x.expires_at, s.browser_session_id`

// scanSession reads one row of sessionColumns.
func (s *Service) scanSession(row pgx.Row) (*tokenv1.Session, error) {
	var (
		out                      tokenv1.Session
		start                    time.Time
		end, lastActive, expires *time.Time
	)
	if err := row.Scan(&out.SessionId, &out.Kind, &out.ClientId, &out.UserId, &out.Scope, &out.DeviceId, &start, &end,
		&out.DeviceDisplayName, &lastActive, &out.IpAddress, &out.UserAgent, &out.OwnerUserId, &out.EndReason, &expires, &out.BrowserSessionId); err != nil {
		return nil, err
	}
	out.CreatedAt = timestamp(start)
	if end != nil {
		out.EndedAt = timestamp(*end)
	} else if expires != nil {
		out.ExpiresAt = timestamp(*expires)
	}
	// What this replica noted but has not written yet shows at once.
	if n, ok := s.activity.Last(out.SessionId); ok && end == nil && (lastActive == nil || n.At.After(*lastActive)) {
		at := n.At
		if at.Before(start) {
			at = start
		}
		lastActive = &at
		if n.IP != "" {
			out.IpAddress = n.IP
		}
	}
	if lastActive != nil {
		out.LastActiveAt = timestamp(*lastActive)
	}
	return &out, nil
}

// sessionsUnavailable is the error of the read model failing.
func sessionsUnavailable(err error) error {
	return errs.Wrap(errs.KindUnavailable, "Sessions cannot be read right now.", err)
}

// ListSessions lists a user's sessions (at most 1000), newest first.
func (g *grpcServer) ListSessions(ctx context.Context, req *tokenv1.ListSessionsRequest) (*tokenv1.ListSessionsResponse, error) {
	userID, err := caller.UserFor(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if !ids.Valid(userID) {
		return nil, errs.InvalidField("user_id", "user_id is not a user id")
	}
	rows, err := g.svc.pool.Query(ctx, `SELECT `+sessionColumns+` FROM `+sessionsFrom+`
		WHERE s.user_id = $1 AND ($2 OR s.ended_at IS NULL) ORDER BY s.created_at DESC LIMIT 1000`, userID, req.GetIncludeEnded())
	if err != nil {
		return nil, sessionsUnavailable(err)
	}
	defer rows.Close()
	resp := &tokenv1.ListSessionsResponse{}
	for rows.Next() {
		ts, err := g.svc.scanSession(rows)
		if err != nil {
			return nil, sessionsUnavailable(err)
		}
		resp.Sessions = append(resp.Sessions, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, sessionsUnavailable(err)
	}
	return resp, nil
}

// sessionKinds are the kinds each QuerySessions kind filter covers.
var sessionKinds = map[string][]string{
	"oauth":    {"oauth", "client_credentials"},
	"compat":   {"compat"},
	"personal": {"personal"},
}

// QuerySessions pages through every session with the admin API's filters.
func (g *grpcServer) QuerySessions(ctx context.Context, req *tokenv1.QuerySessionsRequest) (*tokenv1.QuerySessionsResponse, error) {
	p, err := paging.From(req.GetPage(), ids.Valid)
	if err != nil {
		return nil, err
	}
	for field, id := range map[string]string{"user_id": req.GetUserId(), "owner_user_id": req.GetOwnerUserId(), "browser_session_id": req.GetBrowserSessionId()} {
		if id != "" && !ids.Valid(id) {
			return nil, errs.InvalidField(field, field+" is not an id")
		}
	}
	q := &paging.Query{From: sessionsFrom, Columns: sessionColumns, Key: "s.session_id"}
	if k := req.GetKind(); k != "" {
		kinds, ok := sessionKinds[k]
		if !ok {
			return nil, errs.InvalidField("kind", "kind is oauth, compat or personal")
		}
		q.Where("s.kind = ANY(?)", kinds)
	}
	q.WhereIf(req.GetUserId() != "", "s.user_id = ?", req.GetUserId())
	q.WhereIf(req.GetClientId() != "", "s.client_id = ?", req.GetClientId())
	q.WhereIf(req.GetOwnerUserId() != "", "s.owner_user_id = ?", req.GetOwnerUserId())
	q.WhereIf(req.GetBrowserSessionId() != "", "s.browser_session_id = ?", req.GetBrowserSessionId())
	if ids := req.GetClientIds(); len(ids) > 0 {
		q.WhereIf(!req.GetExcludeClientIds(), "s.client_id = ANY(?)", ids)
		q.WhereIf(req.GetExcludeClientIds(), "NOT (s.client_id = ANY(?))", ids)
	}
	switch req.GetStatus() {
	case tokenv1.SessionStatus_SESSION_STATUS_UNSPECIFIED:
	case tokenv1.SessionStatus_SESSION_STATUS_ACTIVE:
		q.Where("s.ended_at IS NULL")
	case tokenv1.SessionStatus_SESSION_STATUS_FINISHED:
		q.Where("s.ended_at IS NOT NULL")
	default:
		return nil, errs.InvalidField("status", "unknown status")
	}
	for _, tok := range req.GetScopes() {
		q.Where("? = ANY(string_to_array(s.scope, ' '))", tok)
	}
	for _, f := range []struct {
		cond string
		at   interface{ AsTime() time.Time }
		set  bool
	}{
		{"s.created_at < ?", req.GetCreatedBefore(), req.GetCreatedBefore() != nil},
		{"s.created_at > ?", req.GetCreatedAfter(), req.GetCreatedAfter() != nil},
		{"(" + lastActiveSQL + ") < ?", req.GetLastActiveBefore(), req.GetLastActiveBefore() != nil},
		{"(" + lastActiveSQL + ") > ?", req.GetLastActiveAfter(), req.GetLastActiveAfter() != nil},
		{"x.expires_at < ?", req.GetExpiresBefore(), req.GetExpiresBefore() != nil},
		{"x.expires_at > ?", req.GetExpiresAfter(), req.GetExpiresAfter() != nil},
	} {
		if f.set {
			q.Where(f.cond, f.at.AsTime())
		}
	}
	if req.Expires != nil {
		q.WhereIf(req.GetExpires(), "x.expires_at IS NOT NULL").WhereIf(!req.GetExpires(), "x.expires_at IS NULL")
	}
	list, info, err := paging.List(ctx, g.svc.pool, q, p, func(r pgx.Rows) (*tokenv1.Session, error) { return g.svc.scanSession(r) })
	if err != nil {
		return nil, sessionsUnavailable(err)
	}
	return &tokenv1.QuerySessionsResponse{Sessions: list, Page: info}, nil
}

// GetSession returns one session.
func (g *grpcServer) GetSession(ctx context.Context, req *tokenv1.GetSessionRequest) (*tokenv1.GetSessionResponse, error) {
	ts, err := g.svc.getSession(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	return &tokenv1.GetSessionResponse{Session: ts}, nil
}

// getSession reads one session; NOT_FOUND when unknown.
func (s *Service) getSession(ctx context.Context, id string) (*tokenv1.Session, error) {
	if !ids.Valid(id) {
		return nil, errs.InvalidField("session_id", "session_id is not a session id")
	}
	ts, err := s.scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM `+sessionsFrom+` WHERE s.session_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.NotFound("There is no such session.")
	}
	if err != nil {
		return nil, sessionsUnavailable(err)
	}
	return ts, nil
}
