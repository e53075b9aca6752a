package token

import (
	"context"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/homeserver"
	"gatehouse.dev/services/token/internal/session"
)

// applyUserEvent makes the calls one event of a user needs, deciding them on
// the user's state as of that event (folded from the user's own events), so a
// replay decides exactly as the first pass did.
func (p *provisioner) applyUserEvent(ctx context.Context, rec eventlog.Record) error {
	if !homeserver.Concerns(rec.Event) {
		return nil
	}
	// The event's addresses and display name, sealed under the user's
	// personal key: empty once the user is erased.
	if err := p.svc.personal.UnsealRecord(ctx, &rec); err != nil {
		return err
	}
	st, err := p.userState(ctx, rec.Aggregate().ID, rec.Seq)
	if err != nil {
		return err
	}
	for _, ch := range homeserver.UserChanges(st, rec.Event) {
		err := ch.Do(ctx, p.hs)
		if homeserver.IsNotFound(err) && (ch.Op == "delete_user" || ch.Op == "reactivate_user") {
			// Unknown to the homeserver: nothing to deactivate; and a
			// reactivated user is created by the provision_user that follows.
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// applySessionEvent creates the device of a session that starts and deletes
// it when the session ends.
func (p *provisioner) applySessionEvent(ctx context.Context, rec eventlog.Record) error {
	switch ev := rec.Event.(type) {
	case *eventsv1.SessionStarted:
		if ev.GetDeviceId() == "" || ev.GetUsername() == "" {
			return nil
		}
		st, err := p.session(ctx, ev.GetSessionId())
		if err != nil {
			return err
		}
		if st.Ended {
			return nil // already over (its SessionEnded follows): no device to create
		}
		return p.upsertDevice(ctx, ev)
	case *eventsv1.SessionRenamed:
		st, err := p.session(ctx, ev.GetSessionId())
		if err != nil || st.Ended || st.Started.GetDeviceId() == "" || st.Started.GetUsername() == "" {
			return err
		}
		err = p.hs.UpdateDeviceDisplayName(ctx, st.Started.GetUsername(), st.Started.GetDeviceId(), ev.GetDeviceDisplayName())
		if homeserver.IsNotFound(err) {
			return nil // the device is gone from the homeserver: nothing to rename
		}
		return err
	case *eventsv1.SessionEnded:
		st, err := p.session(ctx, ev.GetSessionId())
		if err != nil {
			return err
		}
		started := st.Started
		if started.GetDeviceId() == "" || started.GetUsername() == "" {
			return nil
		}
		inUse, err := p.deviceInUse(ctx, rec.Seq, started)
		if err != nil || inUse {
			return err
		}
		err = p.hs.DeleteDevice(ctx, started.GetUsername(), started.GetDeviceId())
		if homeserver.IsNotFound(err) {
			return nil // the user is unknown to the homeserver: no device either
		}
		return err
	case *eventsv1.TokensIssued:
		return nil // a rotation: the device stays
	case *eventsv1.SessionImported:
		return nil // imported from the homeserver, which has the device already
	default:
		return eventlog.Unhandled(rec)
	}
}

func (p *provisioner) session(ctx context.Context, id string) (session.State, error) {
	history, _, err := p.svc.log.Load(ctx, sessionRef(id))
	if err != nil {
		return session.State{}, err
	}
	return session.Fold(history), nil
}

// deviceInUse reports whether another live session of the user holds the
// device of a session that ended at sequence endedAt. The sessions read model
// is read once it has applied that end, so it knows every session started
// before it.
func (p *provisioner) deviceInUse(ctx context.Context, endedAt uint64, started *eventsv1.SessionStarted) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.svc.projections.WaitFor(wctx, sessionsProjection, endedAt); err != nil {
		return false, err
	}
	var inUse bool
	err := p.svc.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM sessions
		WHERE user_id = $1 AND device_id = $2 AND ended_at IS NULL AND session_id <> $3)`,
		started.GetUserId(), started.GetDeviceId(), started.GetSessionId()).Scan(&inUse)
	return inUse, err
}

// upsertDevice makes sure the user exists on the homeserver (a bare
// provision_user creates it when missing and changes nothing otherwise: its
// profile is the ACCOUNTS feed's business), then creates the device.
func (p *provisioner) upsertDevice(ctx context.Context, ev *eventsv1.SessionStarted) error {
	if _, err := p.hs.ProvisionUser(ctx, homeserver.ProvisionRequest{Localpart: ev.GetUsername()}); err != nil {
		return err
	}
	return p.hs.UpsertDevice(ctx, ev.GetUsername(), ev.GetDeviceId(), p.deviceName(ctx, ev))
}

// deviceName is the display name a new device gets: the one a compat client
// asked for, else the OAuth client's name, else none (the homeserver's default).
func (p *provisioner) deviceName(ctx context.Context, ev *eventsv1.SessionStarted) string {
	if name := ev.GetDeviceDisplayName(); name != "" {
		return name
	}
	if ev.GetKind() != "oauth" || ev.GetClientId() == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := p.svc.clients.get(ctx, ev.GetClientId())
	if err != nil {
		return "" // a name is a nicety: never hold a device back for it
	}
	return c.Meta.ClientName
}

// syncProvisionTimeout bounds the homeserver calls a token request waits for.
const syncProvisionTimeout = 10 * time.Second

// provisionStarted creates a just-started session's device on the homeserver
// before its tokens are handed out, so the first request with them works.
// When the homeserver cannot take it, the session is ended at once (reason
// "homeserver_unavailable": no usable token is left behind that the client
// never received) and the request fails with 503 temporarily_unavailable.
func (s *Service) provisionStarted(ctx context.Context, ev *eventsv1.SessionStarted) error {
	p := s.provisioner
	if p == nil || ev.GetDeviceId() == "" || ev.GetUsername() == "" {
		return nil
	}
	callCtx, cancel := context.WithTimeout(ctx, syncProvisionTimeout)
	err := p.upsertDevice(callCtx, ev)
	cancel()
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
