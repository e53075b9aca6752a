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
