package token

import (
	"context"
	"fmt"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/oautherr"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
)

// deviceCodeGrant is RFC 8628's grant type.
const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceCode is the device_code grant (RFC 8628 §3.4–3.5): the authorize
// service says where the device grant stands; approved, this starts an
// "oauth" session and answers exactly as the authorization_code grant does.
// Every refusal is HTTP 400, as RFC 8628 §3.5 and RFC 6749 §5.2 have it.
func (s *Service) deviceCode(ctx context.Context, req tokenRequest) (map[string]any, error) {
	c := req.client
	code := req.form.Get("device_code")
	if code == "" {
		return nil, oautherr.New(oautherr.InvalidRequest, "device_code is required")
	}
	sessionID := ids.New()
	poll, err := s.authorize.PollDeviceCode(ctx, &authorizev1.PollDeviceCodeRequest{DeviceCode: code, ClientId: c.ID, SessionId: sessionID})
	if err != nil {
		return nil, refusedUpstream(err) // an unknown code or another client's: invalid_grant
	}
	switch poll.GetStatus() {
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_PENDING:
		return nil, oautherr.New(oautherr.AuthorizationPending, "The user has not answered yet; keep polling.")
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_SLOW_DOWN:
		return nil, oautherr.New(oautherr.SlowDown, fmt.Sprintf("Polling too fast: wait %d seconds between requests from now on.", poll.GetInterval()))
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_DENIED:
		return nil, oautherr.New(oautherr.AccessDenied, "The user refused access.")
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_EXPIRED:
		return nil, oautherr.New(oautherr.ExpiredToken, "The device code has expired; start again.")
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_USED:
		return nil, oautherr.New(oautherr.InvalidGrant, "The device code has already been used.")
	case authorizev1.DevicePollStatus_DEVICE_POLL_STATUS_APPROVED:
	default:
		return nil, errs.Internalf("device poll answered %v", poll.GetStatus())
	}
	return s.signIn(ctx, req, sessionID, &authorizev1.ExchangeCodeResponse{
		GrantId: poll.GetDeviceGrantId(), UserId: poll.GetUserId(), Username: poll.GetUsername(),
		Scope: poll.GetScope(), AuthTime: poll.GetAuthTime(), Admin: poll.GetAdmin(), BrowserSessionId: poll.GetBrowserSessionId(),
		AuthMethods: poll.GetAuthMethods(),
	})
}
