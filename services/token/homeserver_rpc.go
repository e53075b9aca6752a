package token

import (
	"context"
	"time"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// IsLocalpartAvailable asks the homeserver about a username before it is registered.
func (g *grpcServer) IsLocalpartAvailable(ctx context.Context, req *tokenv1.IsLocalpartAvailableRequest) (*tokenv1.IsLocalpartAvailableResponse, error) {
	if req.GetLocalpart() == "" || len(req.GetLocalpart()) > 255 {
		return nil, errs.InvalidField("localpart", "localpart is required")
	}
	p := g.svc.provisioner
	if p == nil {
		return &tokenv1.IsLocalpartAvailableResponse{Available: true}, nil
	}
	ok, err := p.hs.IsLocalpartAvailable(ctx, req.GetLocalpart())
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The homeserver cannot be asked right now; try again shortly.", err)
	}
	return &tokenv1.IsLocalpartAvailableResponse{Available: ok}, nil
}

// AllowCrossSigningReset tells the homeserver the user may reset their cross-signing keys.
func (g *grpcServer) AllowCrossSigningReset(ctx context.Context, req *tokenv1.AllowCrossSigningResetRequest) (*tokenv1.AllowCrossSigningResetResponse, error) {
	if req.GetLocalpart() == "" || len(req.GetLocalpart()) > 255 {
		return nil, errs.InvalidField("localpart", "localpart is required")
	}
	if user, err := caller.SignedIn(ctx); err == nil && user.Username != req.GetLocalpart() {
		return nil, errs.PermissionDenied("a cross-signing reset may only be allowed for the signed-in user")
	}
	// A sensitive action: the person authenticated recently (a step-up).
	if err := caller.RequireRecentAuth(ctx, g.svc.cfg.StepUpWindow, time.Now()); err != nil {
		return nil, err
	}
	p := g.svc.provisioner
	if p == nil {
		return nil, errs.FailedPrecondition("There is no homeserver connected to allow a cross-signing reset on.")
	}
	if err := p.hs.AllowCrossSigningReset(ctx, req.GetLocalpart()); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The homeserver cannot be reached right now; try again shortly.", err)
	}
	return &tokenv1.AllowCrossSigningResetResponse{}, nil
}
