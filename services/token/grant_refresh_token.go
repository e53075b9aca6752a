package token

import (
	"context"

	"gatehouse.dev/platform/oautherr"
	"gatehouse.dev/services/token/internal/session"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// refreshToken is the refresh_token grant (RFC 6749 §6): the client's
// session gets a new pair and the old one stops working (sessions.go,
// rotate); the scope stays the session's.
func (s *Service) refreshToken(ctx context.Context, req tokenRequest) (map[string]any, error) {
	presented := req.form.Get("refresh_token")
	if presented == "" {
		return nil, oautherr.New(oautherr.InvalidRequest, "refresh_token is required")
	}
	c := req.client
	p, st, err := s.rotate(ctx, rotation{
		presented: presented, kind: tokenfmt.RefreshToken, clientID: c.ID,
		next:  func(sessionID string) pair { return s.mint(sessionID, true) },
		actor: func(session.State) string { return "client:" + c.ID },
		ip:    req.from.ip,
	})
	if err != nil {
		return nil, err
	}
	return s.tokenResponse(p, st.Started.GetScope()), nil
}
