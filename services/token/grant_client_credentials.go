package token

import (
	"context"
	"slices"

	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/oautherr"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/entitle"
)

// clientCredentials is the client_credentials grant (RFC 6749 §4.4):
// confidential clients only, an access token for the client itself, with no
// more scope than the client is entitled to (internal/entitle): admin scopes
// only for Config.AdminClients, never a person's scopes.
func (s *Service) clientCredentials(ctx context.Context, req tokenRequest) (map[string]any, error) {
	c := req.client
	if c.Meta.AuthMethod == "none" {
		return nil, oautherr.New(oautherr.UnauthorizedClient, "public clients cannot use client_credentials")
	}
	scope, err := entitle.ClientScope(req.form.Get("scope"), entitle.Client{
		Admin: slices.Contains(s.cfg.AdminClients, c.ID), Registered: c.Meta.Scope,
	})
	if err != nil {
		return nil, err
	}
	sessionID := ids.New()
	p := s.mint(sessionID, false)
	start := &eventsv1.SessionStarted{
		SessionId: sessionID, Kind: "client_credentials", ClientId: c.ID, Scope: scope, Tokens: p.issued,
		IpAddress: req.from.ip, UserAgent: req.from.userAgent,
	}
	if err := s.start(ctx, start, "client:"+c.ID); err != nil {
		return nil, err
	}
	return s.tokenResponse(p, scope), nil
}
