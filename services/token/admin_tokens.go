package token

import (
	"context"
	"slices"
	"strings"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/entitle"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// Administrators' bearer tokens. The admin API (services/admin) holds no
// power of its own: it forwards the bearer token it was given to every
// service it calls, whose gRPC interceptor asks this service who the token
// stands for (AuthenticateAdminToken; the token service itself answers
// locally, VerifyAdminToken). A token grants administration when it is a
// live access token (OAuth, mat_) or personal access token (mpt_) whose
// scope holds urn:gatehouse:admin or urn:mas:admin, and — when it is a
// user's — that user is an administrator now: a user who stopped being one
// stops being obeyed at once, whatever their tokens say.

// adminAPIScopes are the scopes that grant the admin API: Gatehouse's own,
// and MAS's, accepted for compatibility with tools written for it.
var adminAPIScopes = []string{entitle.GatehouseAdmin, entitle.MASAdmin}

// VerifyAdminToken says who an administrator's bearer token stands for:
// errs.Unauthenticated when it is not a live access or personal token,
// errs.PermissionDenied when it grants no administration. It writes nothing;
// the session's use is noted as introspection notes it.
func (s *Service) VerifyAdminToken(ctx context.Context, token string) (*caller.TokenSubject, error) {
	unauthenticated := errs.Unauthenticated("The token is not valid.")
	kind, err := s.minter.Parse(token)
	if err != nil || (kind != tokenfmt.AccessToken && kind != tokenfmt.PersonalToken) {
		return nil, unauthenticated
	}
	info, live, err := s.index.lookup(ctx, tokenfmt.HashString(token))
	switch {
	case err != nil:
		return nil, errs.Classify(err, errs.KindUnavailable, unavailableMsg)
	case !live: // the index holds access tokens only, and the kind was checked above
		return nil, unauthenticated
	}
	s.activity.Touch(info.SessionID, info.UserID, "", s.now())
	if !slices.ContainsFunc(strings.Fields(info.Scope), func(tok string) bool { return slices.Contains(adminAPIScopes, tok) }) {
		return nil, errs.PermissionDenied("The token does not grant the admin API (urn:gatehouse:admin or urn:mas:admin).")
	}
	subject := &caller.TokenSubject{ClientID: info.ClientID, UserID: info.UserID, SessionID: info.SessionID}
	if info.UserID == "" {
		return subject, nil // a client acting for itself, entitled when the token was issued
	}
	u, err := s.accounts.GetUser(ctx, &accountsv1.GetUserRequest{UserId: info.UserID})
	switch {
	case errs.KindOf(err) == errs.KindNotFound:
		return nil, unauthenticated
	case err != nil:
		return nil, errs.Classify(err, errs.KindUnavailable, unavailableMsg)
	case !u.GetUser().GetAdmin():
		return nil, errs.PermissionDenied("The token's user is not an administrator.")
	}
	return subject, nil
}

// AuthenticateAdminToken is VerifyAdminToken for the other services'
// interceptors (and the admin API's own check of the caller).
func (g *grpcServer) AuthenticateAdminToken(ctx context.Context, req *tokenv1.AuthenticateAdminTokenRequest) (*tokenv1.AuthenticateAdminTokenResponse, error) {
	if req.GetToken() == "" {
		return nil, errs.InvalidField("token", "token is required")
	}
	sub, err := g.svc.VerifyAdminToken(ctx, req.GetToken())
	if err != nil {
		return nil, err
	}
	scope := ""
	if info, live, err := g.svc.index.lookup(ctx, tokenfmt.HashString(req.GetToken())); err == nil && live {
		scope = info.Scope
	}
	return &tokenv1.AuthenticateAdminTokenResponse{ClientId: sub.ClientID, UserId: sub.UserID, SessionId: sub.SessionID, Scope: scope}, nil
}
