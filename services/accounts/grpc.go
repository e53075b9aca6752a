package accounts

import (
	"context"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/user"
)

// ActorHeader is the gRPC metadata key naming who acts ("user:<id>", "admin:cli").
// It is recorded in events and the audit log; it grants nothing.
const ActorHeader = "gatehouse-actor"

// grpcServer adapts the service to gatehouse.accounts.v1.AccountsService:
// it parses requests, calls the service and returns errs values, which the
// platform's interceptor turns into gRPC statuses.
type grpcServer struct {
	accountsv1.UnimplementedAccountsServiceServer
	svc *Service
}

func actor(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(ActorHeader); len(v) > 0 && len(v[0]) <= 128 {
			return v[0]
		}
	}
	return "api"
}

func (g *grpcServer) Register(ctx context.Context, req *accountsv1.RegisterRequest) (*accountsv1.RegisterResponse, error) {
	u, err := g.svc.register(ctx, registration{
		Username: req.GetUsername(), Password: req.GetPassword(), Email: req.GetEmail(),
		DisplayName: req.GetDisplayName(), Admin: req.GetAdmin(),
	}, actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.RegisterResponse{User: u.proto()}, nil
}

func (g *grpcServer) GetUser(ctx context.Context, req *accountsv1.GetUserRequest) (*accountsv1.GetUserResponse, error) {
	if req.GetUserId() == "" {
		return nil, errs.InvalidField("user_id", "user_id is required")
	}
	u, err := g.svc.userByID(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	return &accountsv1.GetUserResponse{User: u.proto()}, nil
}

func (g *grpcServer) GetUserByUsername(ctx context.Context, req *accountsv1.GetUserByUsernameRequest) (*accountsv1.GetUserByUsernameResponse, error) {
	if req.GetUsername() == "" {
		return nil, errs.InvalidField("username", "username is required")
	}
	u, err := g.svc.userByUsername(ctx, req.GetUsername())
	if err != nil {
		return nil, err
	}
	return &accountsv1.GetUserByUsernameResponse{User: u.proto()}, nil
}

func (g *grpcServer) VerifyPassword(ctx context.Context, req *accountsv1.VerifyPasswordRequest) (*accountsv1.VerifyPasswordResponse, error) {
	u, err := g.svc.verifyPassword(ctx, req.GetUsername(), req.GetPassword())
	if err != nil {
		return nil, err
	}
	return &accountsv1.VerifyPasswordResponse{User: u.proto()}, nil
}

func (g *grpcServer) ChangePassword(ctx context.Context, req *accountsv1.ChangePasswordRequest) (*accountsv1.ChangePasswordResponse, error) {
	if err := g.svc.changePassword(ctx, req.GetUserId(), req.GetCurrentPassword(), req.GetNewPassword(), actor(ctx)); err != nil {
		return nil, err
	}
	return &accountsv1.ChangePasswordResponse{}, nil
}

func (g *grpcServer) SetPassword(ctx context.Context, req *accountsv1.SetPasswordRequest) (*accountsv1.SetPasswordResponse, error) {
	err := g.svc.setPassword(ctx, req.GetUserId(), req.GetNewPassword(), eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_ADMIN, actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.SetPasswordResponse{}, nil
}

// change runs one decision on a user and returns the user afterwards.
func (g *grpcServer) change(ctx context.Context, userID string, decide decision) (*accountsv1.User, error) {
	u, err := g.svc.update(ctx, userID, actor(ctx), decide)
	if err != nil {
		return nil, err
	}
	return u.proto(), nil
}

func (g *grpcServer) LockUser(ctx context.Context, req *accountsv1.LockUserRequest) (*accountsv1.LockUserResponse, error) {
	u, err := g.change(ctx, req.GetUserId(), func(s user.State) ([]proto.Message, error) { return user.Lock(s, req.GetReason()) })
	if err != nil {
		return nil, err
	}
	return &accountsv1.LockUserResponse{User: u}, nil
}

func (g *grpcServer) UnlockUser(ctx context.Context, req *accountsv1.UnlockUserRequest) (*accountsv1.UnlockUserResponse, error) {
	u, err := g.change(ctx, req.GetUserId(), user.Unlock)
	if err != nil {
		return nil, err
	}
	return &accountsv1.UnlockUserResponse{User: u}, nil
}

func (g *grpcServer) DeactivateUser(ctx context.Context, req *accountsv1.DeactivateUserRequest) (*accountsv1.DeactivateUserResponse, error) {
	u, err := g.change(ctx, req.GetUserId(), func(s user.State) ([]proto.Message, error) { return user.Deactivate(s, req.GetErase()) })
	if err != nil {
		return nil, err
	}
	return &accountsv1.DeactivateUserResponse{User: u}, nil
}

func (g *grpcServer) ReactivateUser(ctx context.Context, req *accountsv1.ReactivateUserRequest) (*accountsv1.ReactivateUserResponse, error) {
	u, err := g.change(ctx, req.GetUserId(), user.Reactivate)
	if err != nil {
		return nil, err
	}
	return &accountsv1.ReactivateUserResponse{User: u}, nil
}

func (g *grpcServer) SetDisplayName(ctx context.Context, req *accountsv1.SetDisplayNameRequest) (*accountsv1.SetDisplayNameResponse, error) {
	u, err := g.change(ctx, req.GetUserId(), func(s user.State) ([]proto.Message, error) { return user.SetDisplayName(s, req.GetDisplayName()) })
	if err != nil {
		return nil, err
	}
	return &accountsv1.SetDisplayNameResponse{User: u}, nil
}

func (g *grpcServer) ListUsers(ctx context.Context, req *accountsv1.ListUsersRequest) (*accountsv1.ListUsersResponse, error) {
	return g.svc.listUsers(ctx, req)
}

func (g *grpcServer) ListAuditEntries(ctx context.Context, req *accountsv1.ListAuditEntriesRequest) (*accountsv1.ListAuditEntriesResponse, error) {
	return g.svc.listAudit(ctx, req)
}
