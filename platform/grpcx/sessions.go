package grpcx

import (
	"context"

	"google.golang.org/grpc"

	"gatehouse.dev/platform/caller"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// TokenServiceTokens verifies administrators' bearer tokens by asking the
// token service, which owns them (AuthenticateAdminToken), over conn.
func TokenServiceTokens(conn grpc.ClientConnInterface) TokenVerifier {
	client := tokenv1.NewTokenServiceClient(conn)
	return func(ctx context.Context, token string) (*caller.TokenSubject, error) {
		resp, err := client.AuthenticateAdminToken(ctx, &tokenv1.AuthenticateAdminTokenRequest{Token: token})
		if err != nil {
			return nil, err
		}
		return &caller.TokenSubject{ClientID: resp.GetClientId(), UserID: resp.GetUserId(), SessionID: resp.GetSessionId()}, nil
	}
}

// AccountsSessions verifies browser sessions by asking the accounts service,
// which owns them (AuthenticateBrowserSession), over conn. A session of a
// locked or deactivated user is not valid.
func AccountsSessions(conn grpc.ClientConnInterface) SessionVerifier {
	client := accountsv1.NewAccountsServiceClient(conn)
	return func(ctx context.Context, secret string) (*caller.User, error) {
		resp, err := client.AuthenticateBrowserSession(ctx, &accountsv1.AuthenticateBrowserSessionRequest{Secret: secret})
		if err != nil {
			return nil, err
		}
		u, s := resp.GetUser(), resp.GetSession()
		authAt := s.GetAuthenticatedAt()
		if authAt == nil {
			authAt = s.GetCreatedAt()
		}
		return &caller.User{
			ID:              u.GetId(),
			Username:        u.GetUsername(),
			Admin:           u.GetAdmin(),
			SessionID:       s.GetSessionId(),
			AuthenticatedAt: authAt.AsTime(),
			AuthMethods:     s.GetAuthMethods(),
		}, nil
	}
}
