package provision

import (
	"context"
	"time"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/homeserver"
	"gatehouse.dev/services/token/internal/session"
)

// applyUserEvent makes the calls one event of a user needs, deciding them on
// the user's state as of that event (folded from the user's own events), so a
// replay decides exactly as the first pass did.
func (p *Provisioner) applyUserEvent(ctx context.Context, rec eventlog.Record) error {
	if !homeserver.Concerns(rec.Event) {
		return nil
	}
	// The event's addresses and display name, sealed under the user's
	// personal key: empty once the user is erased.
	if err := p.deps.Personal.UnsealRecord(ctx, &rec); err != nil {
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
func (p *Provisioner) applySessionEvent(ctx context.Context, rec eventlog.Record) error {
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
		inUse, err := p.deps.Sessions.DeviceInUse(ctx, rec.Seq, started)
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
	case *eventsv1.SessionSnapshotted:
		return nil // the session's state written again: nothing changed
	default:
		return eventlog.Unhandled(rec)
	}
}

func (p *Provisioner) session(ctx context.Context, id string) (session.State, error) {
	history, _, err := p.deps.TokenLog.Load(ctx, eventlog.Ref{Type: eventsv1.TokenSession.Type, ID: id})
	if err != nil {
		return session.State{}, err
	}
	return session.Fold(history), nil
}

// upsertDevice makes sure the user exists on the homeserver (a bare
// provision_user creates it when missing and changes nothing otherwise: its
// profile is the ACCOUNTS feed's business), then creates the device.
func (p *Provisioner) upsertDevice(ctx context.Context, ev *eventsv1.SessionStarted) error {
	if _, err := p.hs.ProvisionUser(ctx, homeserver.ProvisionRequest{Localpart: ev.GetUsername()}); err != nil {
		return err
	}
	return p.hs.UpsertDevice(ctx, ev.GetUsername(), ev.GetDeviceId(), p.deviceName(ctx, ev))
}

// deviceName is the display name a new device gets: the one a compat client
// asked for, else the OAuth client's name, else none (the homeserver's default).
func (p *Provisioner) deviceName(ctx context.Context, ev *eventsv1.SessionStarted) string {
	if name := ev.GetDeviceDisplayName(); name != "" {
		return name
	}
	if ev.GetKind() != "oauth" || ev.GetClientId() == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return p.deps.ClientName(ctx, ev.GetClientId()) // a name is a nicety: "" never holds a device back
}
