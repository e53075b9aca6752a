package token

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// grpcServer adapts the service to gatehouse.token.v1.TokenService. The
// platform's interceptor lets through only the callers each method's access
// option names; calls the web service makes for a signed-in person concern
// only that person.
type grpcServer struct {
	tokenv1.UnimplementedTokenServiceServer
	svc *Service
}

// Introspect answers as HTTP introspection does, for the caller the platform
// authenticated (viewerOf): to the homeserver, only access tokens are active.
func (g *grpcServer) Introspect(ctx context.Context, req *tokenv1.IntrospectRequest) (*tokenv1.IntrospectResponse, error) {
	if req.GetToken() == "" {
		return nil, errs.InvalidField("token", "token is required")
	}
	began, v := time.Now(), viewerOf(ctx)
	res, err := g.svc.introspectFor(ctx, req.GetToken(), v)
	g.svc.measures.introspected(ctx, v, "grpc", res, err, began)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Introspection is unavailable right now.", err)
	}
	return res.toProto(), nil
}

func (g *grpcServer) Revoke(ctx context.Context, req *tokenv1.RevokeRequest) (*tokenv1.RevokeResponse, error) {
	if req.GetToken() == "" {
		return nil, errs.InvalidField("token", "token is required")
	}
	if err := g.svc.revoke(ctx, req.GetToken(), ""); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The token could not be revoked right now.", err)
	}
	return &tokenv1.RevokeResponse{}, nil
}

func (g *grpcServer) ListSessions(ctx context.Context, req *tokenv1.ListSessionsRequest) (*tokenv1.ListSessionsResponse, error) {
	userID, err := caller.UserFor(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if !ids.Valid(userID) {
		return nil, errs.InvalidField("user_id", "user_id is not a user id")
	}
	rows, err := g.svc.pool.Query(ctx, `
		SELECT session_id, kind, client_id, user_id, scope, device_id, created_at, ended_at, device_display_name,
		       last_active_at, ip_address, user_agent FROM sessions
		WHERE user_id = $1 AND ($2 OR ended_at IS NULL) ORDER BY created_at DESC LIMIT 1000`, userID, req.GetIncludeEnded())
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Sessions cannot be read right now.", err)
	}
	defer rows.Close()
	resp := &tokenv1.ListSessionsResponse{}
	for rows.Next() {
		var (
			s          tokenv1.Session
			start      time.Time
			end        *time.Time
			lastActive *time.Time
		)
		if err := rows.Scan(&s.SessionId, &s.Kind, &s.ClientId, &s.UserId, &s.Scope, &s.DeviceId, &start, &end, &s.DeviceDisplayName,
			&lastActive, &s.IpAddress, &s.UserAgent); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "Sessions cannot be read right now.", err)
		}
		s.CreatedAt = timestamp(start)
		if end != nil {
			s.EndedAt = timestamp(*end)
		}
		// What this replica noted but has not written yet shows at once.
		if n, ok := g.svc.activity.Last(s.SessionId); ok && end == nil && (lastActive == nil || n.At.After(*lastActive)) {
			at := n.At
			if at.Before(start) {
				at = start
			}
			lastActive = &at
			if n.IP != "" {
				s.IpAddress = n.IP
			}
		}
		if lastActive != nil {
			s.LastActiveAt = timestamp(*lastActive)
		}
		resp.Sessions = append(resp.Sessions, &s)
	}
	if err := rows.Err(); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Sessions cannot be read right now.", err)
	}
	return resp, nil
}

// EndSession ends a session: any for an administrator, only one of their own
// for a signed-in person.
func (g *grpcServer) EndSession(ctx context.Context, req *tokenv1.EndSessionRequest) (*tokenv1.EndSessionResponse, error) {
	reason := req.GetReason()
	if reason == "" {
		reason = "ended"
	}
	if err := g.svc.checkOwner(ctx, req.GetSessionId()); err != nil {
		return nil, err
	}
	if err := g.svc.endSession(ctx, req.GetSessionId(), reason, caller.Actor(ctx)); err != nil {
		return nil, err
	}
	return &tokenv1.EndSessionResponse{}, nil
}

// checkOwner refuses a call the web service makes for a signed-in person
// about a session that is not theirs (or that does not exist: the same
// answer, so nobody learns other people's session ids).
func (s *Service) checkOwner(ctx context.Context, sessionID string) error {
	user, err := caller.SignedIn(ctx)
	if err != nil {
		return nil // an administrator: any session
	}
	if !ids.Valid(sessionID) {
		return errs.InvalidField("session_id", "session_id is not a session id")
	}
	var owner string
	err = s.pool.QueryRow(ctx, `SELECT user_id FROM sessions WHERE session_id = $1`, sessionID).Scan(&owner)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return errs.Wrap(errs.KindUnavailable, "Sessions cannot be read right now.", err)
	}
	if owner != user.ID {
		return errs.NotFound("There is no such session.")
	}
	return nil
}
