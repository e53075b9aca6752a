package token

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// deviceCodeGrant is RFC 8628's grant type.
const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceCode is the device_code grant (RFC 8628 §3.4–3.5): the authorize
// service says where the device grant stands; approved, this starts an
// "oauth" session and answers exactly as the authorization_code grant does.
// Every error is HTTP 400, as RFC 8628 §3.5 and RFC 6749 §5.2 have it.
func (s *Service) deviceCode(ctx context.Context, c *client, form url.Values, from origin) (map[string]any, error) {
	code := form.Get("device_code")
	if code == "" {
		return nil, invalidRequest("device_code is required")
	}
	sessionID := ids.New()
	poll, err := s.authorize.PollDeviceCode(ctx, &authorizev1.PollDeviceCodeRequest{DeviceCode: code, ClientId: c.ID, SessionId: sessionID})
	if err != nil {
		return nil, err // an unknown code or another client's: invalid_grant
	}
	deviceErr := func(code, desc string) error {
		return &oauthError{status: http.StatusBadRequest, code: code, description: desc}
	}
	switch poll.GetStatus() {
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_PENDING:
		return nil, deviceErr("authorization_pending", "The user has not answered yet; keep polling.")
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_SLOW_DOWN:
		return nil, deviceErr("slow_down", fmt.Sprintf("Polling too fast: wait %d seconds between requests from now on.", poll.GetInterval()))
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_DENIED:
		return nil, deviceErr("access_denied", "The user refused access.")
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_EXPIRED:
		return nil, deviceErr("expired_token", "The device code has expired; start again.")
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_USED:
		return nil, deviceErr("invalid_grant", "The device code has already been used.")
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_APPROVED:
	default:
		return nil, errs.Internalf("device poll answered %v", poll.GetStatus())
	}
	p := s.mint(sessionID, c.Meta.allows("refresh_token"))
	start := &eventsv1.SessionStarted{
		SessionId: sessionID, Kind: "oauth", ClientId: c.ID, UserId: poll.GetUserId(), Username: poll.GetUsername(),
		Scope: poll.GetScope(), DeviceId: deviceOf(poll.GetScope()), GrantId: poll.GetDeviceGrantId(), Tokens: p.issued,
		IpAddress: from.ip, UserAgent: from.userAgent,
	}
	if err := s.start(ctx, start, "user:"+poll.GetUserId()); err != nil {
		return nil, err
	}
	resp := s.tokenResponse(p, poll.GetScope())
	if hasScope(poll.GetScope(), "openid") {
		idt, err := s.idToken(c.ID, &authorizev1.ExchangeCodeResponse{
			GrantId: poll.GetDeviceGrantId(), UserId: poll.GetUserId(), Username: poll.GetUsername(),
			Scope: poll.GetScope(), AuthTime: poll.GetAuthTime(), Admin: poll.GetAdmin(),
		}, p.access)
		if err != nil {
			return nil, err
		}
		resp["id_token"] = idt
	}
	return resp, nil
}
