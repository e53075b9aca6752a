package token

import (
	"context"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/session"
)

// RenameSession gives a session's device a display name; the provisioning
// runner passes it on to the homeserver (update_device_display_name).
func (g *grpcServer) RenameSession(ctx context.Context, req *tokenv1.RenameSessionRequest) (*tokenv1.RenameSessionResponse, error) {
	if !ids.Valid(req.GetSessionId()) {
		return nil, errs.InvalidField("session_id", "session_id is not a session id")
	}
	userID := req.GetUserId() // an administrator may leave it empty
	if id, _ := caller.From(ctx); id.User != nil {
		var err error
		if userID, err = caller.UserFor(ctx, userID); err != nil {
			return nil, err
		}
	}
	ref := sessionRef(req.GetSessionId())
	appended, err := g.svc.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := session.Fold(history)
		decided, err := session.Rename(st, userID, req.GetDeviceDisplayName())
		if err != nil {
			return nil, err
		}
		return g.svc.sessionWrites(ctx, ref, caller.Actor(ctx), st, version, decided...)
	})
	if err != nil {
		return nil, err
	}
	if appended.Last() > 0 {
		if err := g.svc.projections.WaitFor(ctx, sessionsProjection, appended.Last()); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The session was renamed but is not visible yet.", err)
		}
	}
	return &tokenv1.RenameSessionResponse{}, nil
}
