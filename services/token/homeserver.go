package token

import (
	"context"
	"time"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/homeserver"
	"gatehouse.dev/services/token/internal/provision"
)

// The service's side of homeserver provisioning (internal/provision): what
// the provisioner reads of the service, the token endpoint's wait for a
// session's device, and the RPCs that ask the homeserver.

// newProvisioner returns the provisioner, or nil when matrix.homeserver_url
// or matrix.secret is not set.
func (s *Service) newProvisioner(cfg Config) (*provision.Provisioner, error) {
	return provision.New(provision.Config{HomeserverURL: cfg.HomeserverURL, Secret: cfg.MatrixSecret}, provision.Deps{
		AccountsLog: s.accountsLog, TokenLog: s.log, Personal: s.personal, Users: s.accounts,
		Sessions: provisionSessions{s}, ClientName: s.clientName,
		Logger: s.logger, Homeserver: s.measures.homeserver(),
	})
}

// clientName is an OAuth client's name, "" when it cannot be had.
func (s *Service) clientName(ctx context.Context, id string) string {
	c, err := s.clients.get(ctx, id)
	if err != nil {
		return ""
	}
	return c.Meta.ClientName
}

// provisionSessions answers the provisioner from the sessions read model.
type provisionSessions struct{ s *Service }

// DeviceInUse reports whether another live session of the user holds the
// device of a session that ended at sequence endedAt. The sessions read model
// is read once it has applied that end, so it knows every session started
// before it.
func (ps provisionSessions) DeviceInUse(ctx context.Context, endedAt uint64, started *eventsv1.SessionStarted) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ps.s.projections.WaitFor(wctx, sessionsProjection, endedAt); err != nil {
		return false, err
	}
	var inUse bool
	err := ps.s.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM sessions
		WHERE user_id = $1 AND device_id = $2 AND ended_at IS NULL AND session_id <> $3)`,
		started.GetUserId(), started.GetDeviceId(), started.GetSessionId()).Scan(&inUse)
	return inUse, err
}

// LiveDevices are the device ids of a user's sessions that have not ended.
func (ps provisionSessions) LiveDevices(ctx context.Context, userID string) ([]string, error) {
	rows, err := ps.s.pool.Query(ctx, `
		SELECT DISTINCT device_id FROM sessions
		WHERE user_id = $1 AND ended_at IS NULL AND device_id <> '' ORDER BY device_id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	devices := []string{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		devices = append(devices, d)
	}
	return devices, rows.Err()
}

// provisionStarted creates a just-started session's device on the homeserver
// before its tokens are handed out (provision.Provisioner.Started). When the
// homeserver cannot take it, the session is ended at once (reason
// "homeserver_unavailable": no usable token is left behind that the client
// never received) and the request fails with 503 temporarily_unavailable.
func (s *Service) provisionStarted(ctx context.Context, ev *eventsv1.SessionStarted) error {
	err := s.provisioner.Started(ctx, ev)
	if err == nil {
		return nil
	}
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if endErr := s.endSession(endCtx, ev.GetSessionId(), "homeserver_unavailable", "system:homeserver"); endErr != nil {
		s.logger.ErrorContext(ctx, "ending a session whose device the homeserver did not create", "session_id", ev.GetSessionId(), "err", endErr)
	}
	s.logger.WarnContext(ctx, "homeserver did not create the device; no token issued", "session_id", ev.GetSessionId(),
		"username", ev.GetUsername(), "device_id", ev.GetDeviceId(), "err", err)
	// The code (or device code) is spent: the client signs in again.
	desc := "The homeserver could not be reached to set up this device, so no token was issued; sign in again in a moment."
	if homeserver.IsPermanent(err) {
		desc = "The homeserver refused to set up this device, so no token was issued; sign in again later or ask the administrator."
	}
	return errs.Wrap(errs.KindUnavailable, desc, err)
}

// SyncHomeserver reconciles the homeserver with Gatehouse: see
// provision.Provisioner.SyncAll.
func (g *grpcServer) SyncHomeserver(ctx context.Context, _ *tokenv1.SyncHomeserverRequest) (*tokenv1.SyncHomeserverResponse, error) {
	p := g.svc.provisioner
	if p == nil {
		return nil, errs.FailedPrecondition("Homeserver provisioning is off: set matrix.homeserver_url and matrix.secret.")
	}
	return p.SyncAll(ctx)
}

// IsLocalpartAvailable asks the homeserver about a username before it is registered.
func (g *grpcServer) IsLocalpartAvailable(ctx context.Context, req *tokenv1.IsLocalpartAvailableRequest) (*tokenv1.IsLocalpartAvailableResponse, error) {
	if req.GetLocalpart() == "" || len(req.GetLocalpart()) > 255 {
		return nil, errs.InvalidField("localpart", "localpart is required")
	}
	p := g.svc.provisioner
	if p == nil {
		return &tokenv1.IsLocalpartAvailableResponse{Available: true}, nil
	}
	ok, err := p.IsLocalpartAvailable(ctx, req.GetLocalpart())
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
	if err := p.AllowCrossSigningReset(ctx, req.GetLocalpart()); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The homeserver cannot be reached right now; try again shortly.", err)
	}
	return &tokenv1.AllowCrossSigningResetResponse{}, nil
}
