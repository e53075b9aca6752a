package authorize

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/device"
	"gatehouse.dev/services/authorize/internal/grant"
)

// deviceByUserCode finds the device grant a person's code names, through the
// read model: the newest grant with that code (codes repeat over time, never
// among live grants). It returns the grant id and the normalised code.
func (s *Service) deviceByUserCode(ctx context.Context, typed string) (string, string, error) {
	code, ok := device.NormalizeUserCode(typed)
	if !ok {
		return "", "", errs.InvalidField("user_code", "This is not a code: it has 8 letters, like BCDF-GHJK.")
	}
	var id string
	err := s.pool.QueryRow(ctx, `SELECT device_grant_id FROM pending_devices WHERE user_code_hash = $1 ORDER BY created_at DESC LIMIT 1`,
		device.Hash(code)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", errs.NotFound("This code is not valid. Check it and try again.")
	}
	if err != nil {
		return "", "", errs.Wrap(errs.KindUnavailable, "Codes cannot be checked right now.", err)
	}
	return id, code, nil
}

func (s *Service) loadDevice(ctx context.Context, id string) (device.State, error) {
	history, _, err := s.pending.Load(ctx, deviceRef(id))
	if err != nil {
		return device.State{}, errs.Wrap(errs.KindUnavailable, "The device authorization cannot be read right now.", err)
	}
	st := device.Fold(history)
	if st.Status == device.Unknown {
		return st, errs.NotFound("This code is not valid. Check it and try again.")
	}
	return st, nil
}

// deviceGrant describes a device grant for the /link page.
func (s *Service) deviceGrant(ctx context.Context, st device.State, userCode string) (*authorizev1.DeviceGrant, error) {
	c, err := s.client(ctx, st.Request.GetClientId())
	if err != nil {
		return nil, err
	}
	status := map[device.Status]authorizev1.DeviceGrantStatus{
		device.Pending:  authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_PENDING,
		device.Approved: authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_APPROVED,
		device.Denied:   authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_DENIED,
		device.Used:     authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_USED,
	}[st.Status]
	if (st.Status == device.Pending || st.Status == device.Approved) && st.Expired(s.now()) {
		status = authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_EXPIRED
	}
	return &authorizev1.DeviceGrant{
		DeviceGrantId: st.Request.GetDeviceGrantId(),
		Client: &authorizev1.ClientInfo{
			ClientId: c.ID, ClientName: c.Meta.ClientName, ClientUri: c.Meta.ClientURI,
			LogoUri: c.Meta.LogoURI, TosUri: c.Meta.TOSURI, PolicyUri: c.Meta.PolicyURI,
		},
		Scope: st.Request.GetScope(), Status: status, ExpiresAt: st.Request.GetExpiresAt(),
		UserCode: device.FormatUserCode(userCode),
	}, nil
}

func (g *grpcServer) GetDeviceGrant(ctx context.Context, req *authorizev1.GetDeviceGrantRequest) (*authorizev1.GetDeviceGrantResponse, error) {
	id, code, err := g.svc.deviceByUserCode(ctx, req.GetUserCode())
	if err != nil {
		return nil, err
	}
	st, err := g.svc.loadDevice(ctx, id)
	if err != nil {
		return nil, err
	}
	dg, err := g.svc.deviceGrant(ctx, st, code)
	if err != nil {
		return nil, err
	}
	return &authorizev1.GetDeviceGrantResponse{DeviceGrant: dg}, nil
}

// ApproveDeviceGrant approves a device for the signed-in person whose
// browser session came with the call.
func (g *grpcServer) ApproveDeviceGrant(ctx context.Context, req *authorizev1.ApproveDeviceGrantRequest) (*authorizev1.ApproveDeviceGrantResponse, error) {
	user, err := caller.SignedIn(ctx)
	if err != nil {
		return nil, err
	}
	id, code, err := g.svc.deviceByUserCode(ctx, req.GetUserCode())
	if err != nil {
		return nil, err
	}
	// A client a person approves is kept (pending.go).
	if st, err := g.svc.loadDevice(ctx, id); err != nil {
		return nil, err
	} else if st.Status == device.Pending && !st.Expired(g.svc.now()) {
		if err := g.svc.keepClient(ctx, st.Request.GetClientId()); err != nil {
			return nil, err
		}
	}
	ref := deviceRef(id)
	var (
		st       device.State
		approval *eventsv1.DeviceApproved
	)
	appended, err := g.svc.pending.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st = device.Fold(history)
		now := g.svc.now()
		if st.Status != device.Pending || st.Expired(now) {
			_, err := device.Approve(st, now, nil)
			return nil, err
		}
		granted, err := grantedScope(st.Request.GetScope(), user.Admin)
		if err != nil {
			return nil, err
		}
		authTime := user.AuthenticatedAt
		if authTime.IsZero() {
			authTime = now
		}
		approval = &eventsv1.DeviceApproved{
			DeviceGrantId: id, UserId: user.ID, Username: user.Username, Admin: user.Admin,
			Scope: granted, AuthTime: grant.Timestamp(authTime), BrowserSessionId: user.SessionID, AuthMethods: user.AuthMethods,
		}
		decided, err := device.Approve(st, now, approval)
		return g.svc.expiring(eventlog.Writes(ref, caller.Actor(ctx), version, decided...), g.svc.deviceEnd(st.Request)), err
	})
	if err != nil {
		return nil, recordErr(err)
	}
	if err := g.svc.projections.WaitFor(ctx, devicesProjection, appended.Last()); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The approval was recorded but is not visible yet; try again.", err)
	}
	st.Status, st.Approval = device.Approved, approval
	dg, err := g.svc.deviceGrant(ctx, st, code)
	if err != nil {
		return nil, err
	}
	return &authorizev1.ApproveDeviceGrantResponse{DeviceGrant: dg}, nil
}

func (g *grpcServer) DenyDeviceGrant(ctx context.Context, req *authorizev1.DenyDeviceGrantRequest) (*authorizev1.DenyDeviceGrantResponse, error) {
	id, _, err := g.svc.deviceByUserCode(ctx, req.GetUserCode())
	if err != nil {
		return nil, err
	}
	actor := caller.Actor(ctx)
	ref := deviceRef(id)
	appended, err := g.svc.pending.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := device.Fold(history)
		decided, err := device.Deny(st, g.svc.now())
		return g.svc.expiring(eventlog.Writes(ref, actor, version, decided...), g.svc.deviceEnd(st.Request)), err
	})
	if err != nil {
		return nil, recordErr(err)
	}
	if appended.Last() > 0 {
		if err := g.svc.projections.WaitFor(ctx, devicesProjection, appended.Last()); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The refusal was recorded but is not visible yet.", err)
		}
	}
	return &authorizev1.DenyDeviceGrantResponse{}, nil
}

// PollDeviceCode answers one poll of a device. The grant is found through
// the read model and decided on its aggregate, so of two concurrent polls of
// an approved code one gets the tokens and the other "already used".
func (g *grpcServer) PollDeviceCode(ctx context.Context, req *authorizev1.PollDeviceCodeRequest) (*authorizev1.PollDeviceCodeResponse, error) {
	invalid := errs.FailedPrecondition("The device code is invalid.")
	if req.GetDeviceCode() == "" || len(req.GetDeviceCode()) > 128 || !ids.Valid(req.GetSessionId()) {
		return nil, invalid
	}
	var id string
	err := g.svc.pool.QueryRow(ctx, `SELECT device_grant_id FROM pending_devices WHERE device_code_hash = $1`, device.Hash(req.GetDeviceCode())).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, invalid
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Device codes cannot be checked right now.", err)
	}
	ref := deviceRef(id)
	var (
		st      device.State
		outcome device.Outcome
		now     time.Time
	)
	_, err = g.svc.pending.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st = device.Fold(history)
		now = g.svc.now()
		decided, o, err := device.DecidePoll(st, device.Poll{ClientID: req.GetClientId(), SessionID: req.GetSessionId(), Now: now})
		outcome = o
		return g.svc.expiring(eventlog.Writes(ref, "client:"+req.GetClientId(), version, decided...), g.svc.deviceEnd(st.Request)), err
	})
	if err != nil {
		return nil, recordErr(err)
	}
	pacer := g.svc.devicePacer
	resp := &authorizev1.PollDeviceCodeResponse{Interval: seconds(pacer.Interval(id))}
	switch outcome {
	case device.OutcomePending:
		slow, interval := pacer.Poll(id, now, st.Request.GetExpiresAt().AsTime())
		resp.Status, resp.Interval = authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_PENDING, seconds(interval)
		if slow {
			resp.Status = authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_SLOW_DOWN
		}
		return resp, nil
	case device.OutcomeDenied:
		resp.Status = authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_DENIED
	case device.OutcomeExpired:
		resp.Status = authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_EXPIRED
	case device.OutcomeUsed:
		resp.Status = authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_USED
	case device.OutcomeApproved:
		a := st.Approval
		resp.Status = authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_APPROVED
		resp.DeviceGrantId, resp.UserId, resp.Username, resp.Scope, resp.AuthTime, resp.Admin =
			id, a.GetUserId(), a.GetUsername(), a.GetScope(), a.GetAuthTime(), a.GetAdmin()
		resp.BrowserSessionId, resp.AuthMethods = a.GetBrowserSessionId(), a.GetAuthMethods()
	default:
		return nil, errs.Internalf("device poll of %s without an outcome", id)
	}
	pacer.Forget(id)
	return resp, nil
}

func seconds(d time.Duration) int32 { return int32(d / time.Second) }
