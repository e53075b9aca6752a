package token

import (
	"context"
	"gatehouse.dev/services/token/internal/amr"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/oautherr"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/idtoken"
)

// authorizationCode is the authorization_code grant (RFC 6749 §4.1.3): the
// authorize service checks the code, PKCE and redirect URI and records its
// single use; the session starts with the person's tokens and, for openid,
// an ID token. A code used twice ends the session its first use started.
func (s *Service) authorizationCode(ctx context.Context, req tokenRequest) (map[string]any, error) {
	c := req.client
	code := req.form.Get("code")
	if code == "" {
		return nil, oautherr.New(oautherr.InvalidRequest, "code is required")
	}
	sessionID := ids.New()
	x, err := s.authorize.ExchangeCode(ctx, &authorizev1.ExchangeCodeRequest{
		Code: code, ClientId: c.ID, RedirectUri: req.form.Get("redirect_uri"), CodeVerifier: req.form.Get("code_verifier"), SessionId: sessionID,
	})
	if err != nil {
		return nil, refusedUpstream(err)
	}
	if replayed := x.GetReplayedSessionId(); replayed != "" {
		// A code used twice: end everything its first use produced (RFC 6749 §4.1.2).
		if err := s.endSession(ctx, replayed, "code_reused", "client:"+c.ID); err != nil {
			s.logger.ErrorContext(ctx, "ending the session of a replayed code", "session_id", replayed, "err", err)
		}
		return nil, errs.FailedPrecondition("The authorization code has already been used; the tokens issued with it are revoked.")
	}
	return s.signIn(ctx, req, sessionID, x)
}

// signIn starts the "oauth" session of a person's grant (a code, an approved
// device) as sessionID and answers with its tokens and, when openid was
// granted, an ID token.
func (s *Service) signIn(ctx context.Context, req tokenRequest, sessionID string, x *authorizev1.ExchangeCodeResponse) (map[string]any, error) {
	c := req.client
	p := s.mint(sessionID, c.Meta.allows("refresh_token"))
	start := &eventsv1.SessionStarted{
		SessionId: sessionID, Kind: "oauth", ClientId: c.ID, UserId: x.GetUserId(), Username: x.GetUsername(),
		Scope: x.GetScope(), DeviceId: deviceOf(x.GetScope()), GrantId: x.GetGrantId(), Tokens: p.issued,
		IpAddress: req.from.ip, UserAgent: req.from.userAgent, BrowserSessionId: x.GetBrowserSessionId(),
	}
	if err := s.start(ctx, start, "user:"+x.GetUserId()); err != nil {
		return nil, err
	}
	resp := s.tokenResponse(p, x.GetScope())
	if hasScope(x.GetScope(), "openid") {
		idt, err := s.idToken(c.ID, x, p.access)
		if err != nil {
			return nil, errs.Internalf("sign the ID token: %w", err)
		}
		resp["id_token"] = idt
	}
	return resp, nil
}

// idToken signs the ID token of a sign-in (OpenID Connect Core §2), bound to
// the access token by at_hash.
func (s *Service) idToken(clientID string, x *authorizev1.ExchangeCodeResponse, access string) (string, error) {
	alg := s.keys.DefaultAlgorithm()
	atHash, err := idtoken.HalfHash(alg, access)
	if err != nil {
		return "", err
	}
	now := s.now()
	var authTime time.Time
	if x.GetAuthTime() != nil {
		authTime = x.GetAuthTime().AsTime()
	}
	extra := map[string]any{"username": x.GetUsername()}
	if sid := x.GetBrowserSessionId(); sid != "" {
		// The browser session the person consented in (OpenID Connect
		// Front-/Back-Channel Logout's sid): RP-initiated logout recognises it.
		extra["sid"] = sid
	}
	// How the person authenticated (RFC 8176), and the class of it when
	// the client asked (acr_values).
	if m := amr.Values(x.GetAuthMethods()); len(m) > 0 {
		extra["amr"] = m
	}
	if x.GetAcrValues() != "" && len(x.GetAuthMethods()) > 0 {
		extra["acr"] = amr.ACR(x.GetAuthMethods())
	}
	return idtoken.Sign(s.keys, alg, idtoken.Claims{
		Issuer: s.cfg.Issuer, Subject: x.GetUserId(), Audience: clientID, AuthorizedParty: clientID,
		IssuedAt: now, Expiry: now.Add(time.Hour), AuthTime: authTime, Nonce: x.GetNonce(),
		AccessTokenHash: atHash, Extra: extra,
	})
}

// refusedUpstream keeps what another service refused of the client's input
// (an invalid, unknown, used or expired code: invalid_grant) and makes any
// other failure of the call this server's own: its refusal of this service's
// credentials or a failure is never the client's fault.
func refusedUpstream(err error) error {
	switch errs.KindOf(err) {
	case errs.KindInvalid, errs.KindNotFound, errs.KindFailedPrecondition:
		return err
	case errs.KindUnavailable, errs.KindConflict:
		return errs.Wrap(errs.KindUnavailable, unavailableMsg, err)
	}
	return errs.Internalf("call to another service: %w", err)
}
