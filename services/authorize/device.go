package authorize

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/oautherr"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/clientmeta"
	"gatehouse.dev/services/authorize/internal/device"
	"gatehouse.dev/services/authorize/internal/grant"
	"gatehouse.dev/services/authorize/internal/scope"
)

// handleDeviceAuthorization is the device authorization endpoint (RFC 8628
// §3.1–3.2): a device asks for access and gets a device code to poll the
// token endpoint with and a user code for the person to type at /link. Its
// client authenticates as at the token endpoint (platform/clientauth).
func (s *Service) handleDeviceAuthorization(w http.ResponseWriter, r *http.Request) (any, error) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	form, err := httpx.ReadForm(w, r)
	if err != nil {
		return nil, err
	}
	if err := s.admit(r, s.cfg.Limits.DeviceAuthorization, tooMany("device authorization requests")); err != nil {
		return nil, err
	}
	ctx := r.Context()
	c, err := s.clientAuth.Authenticate(ctx, r, form)
	if err != nil {
		return nil, err
	}
	if !contains(c.Meta.GrantTypes, clientmeta.GrantDeviceCode) {
		return nil, oautherr.New(oautherr.UnauthorizedClient, "this client is not registered for the "+clientmeta.GrantDeviceCode+" grant")
	}
	scopes, err := scope.Parse(form.Get("scope"))
	if err == nil {
		_, err = scope.Interpret(scopes)
	}
	if err != nil {
		return nil, err
	}
	if err := s.room.check(ctx, s.now()); err != nil {
		return nil, err
	}
	now := s.now()
	userCode, err := s.freshUserCode(ctx)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "the device authorization cannot be recorded right now; try again", fmt.Errorf("draw a user code: %w", err))
	}
	id, deviceCode := ids.New(), device.NewDeviceCode()
	req := &eventsv1.DeviceAuthorizationRequested{
		DeviceGrantId: id, ClientId: c.ID, Scope: scopes.String(),
		DeviceCodeHash: device.Hash(deviceCode), UserCodeHash: device.Hash(userCode),
		ExpiresAt: grant.Timestamp(now.Add(s.cfg.DeviceTTL)), Interval: int32(device.Interval.Seconds()),
	}
	appended, err := s.pending.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), TTL: s.ttl(s.deviceEnd(req)), Event: eventlog.Event{
		Aggregate: deviceRef(id), Actor: "client:" + c.ID, Payload: req,
	}})
	if err == nil {
		// The person may type the code before the device shows it twice.
		err = s.projections.WaitFor(ctx, devicesProjection, appended.Last())
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "the device authorization cannot be recorded right now; try again", fmt.Errorf("record device authorization: %w", err))
	}
	shown := device.FormatUserCode(userCode)
	return map[string]any{
		"device_code":               deviceCode,
		"user_code":                 shown,
		"verification_uri":          s.endpoint("link"),
		"verification_uri_complete": s.endpoint("link") + "?" + url.Values{"code": {shown}}.Encode(),
		"expires_in":                int(s.cfg.DeviceTTL.Seconds()),
		"interval":                  int(device.Interval.Seconds()),
	}, nil
}

// freshUserCode draws a user code no live device grant has.
func (s *Service) freshUserCode(ctx context.Context) (string, error) {
	for range 5 {
		code := device.NewUserCode()
		var taken bool
		err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pending_devices WHERE user_code_hash = $1 AND expires_at > $2)`,
			device.Hash(code), s.now()).Scan(&taken)
		if err != nil {
			return "", err
		}
		if !taken {
			return code, nil
		}
	}
	return "", errors.New("no free user code after 5 draws")
}

// deviceRef names a device grant's aggregate.
func deviceRef(id string) eventlog.Ref {
	return eventlog.Ref{Type: eventsv1.AuthorizeDevice.Type, ID: id}
}
