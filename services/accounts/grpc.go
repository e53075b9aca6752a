package accounts

import (
	"context"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/browser"
	"gatehouse.dev/services/accounts/internal/factors"
	"gatehouse.dev/services/accounts/internal/user"
)

// grpcServer adapts the service to gatehouse.accounts.v1.AccountsService:
// it parses requests, calls the service and returns errs values, which the
// platform's interceptor turns into gRPC statuses.
type grpcServer struct {
	accountsv1.UnimplementedAccountsServiceServer
	svc *Service
}

// actor names who acts in events and the audit log: the caller the platform
// authenticated, never anything the caller merely claims.
func actor(ctx context.Context) string { return caller.Actor(ctx) }

// forUser returns the user a call concerns: the signed-in person when the
// web service acts for one (a request naming someone else is refused), else
// the user the request names.
func forUser(ctx context.Context, requested string) (string, error) {
	return caller.UserFor(ctx, requested)
}

func (g *grpcServer) Register(ctx context.Context, req *accountsv1.RegisterRequest) (*accountsv1.RegisterResponse, error) {
	u, err := g.svc.register(ctx, registration{
		Username: req.GetUsername(), Password: req.GetPassword(), Email: req.GetEmail(),
		DisplayName: req.GetDisplayName(), Admin: req.GetAdmin(),
		VerificationID: req.GetVerificationId(), SkipVerification: req.GetSkipVerification(),
	}, actor(ctx))
	g.svc.measures.registered(ctx, registeredByAdmin, err)
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
	g.svc.measures.signIn(ctx, methodPassword, err)
	if err != nil {
		return nil, err
	}
	need, _, err := g.svc.needOf(ctx, u)
	if err != nil {
		return nil, err
	}
	if need != factors.NeedNothing && !req.GetSecondFactorCapable() {
		// Said only after the right password, like a lock. The compat
		// password login turns it into M_FORBIDDEN (MSC3824: use SSO).
		e := errs.PermissionDenied("This account signs in with a second factor; sign in through the browser (SSO).")
		e.Facts = map[string]string{errs.FactSecondFactor: "required"}
		return nil, e
	}
	return &accountsv1.VerifyPasswordResponse{User: u.proto(), AuthProof: g.svc.mintAuthProof(u.id, methodPassword), SecondFactor: needProto(need)}, nil
}

func (g *grpcServer) ChangePassword(ctx context.Context, req *accountsv1.ChangePasswordRequest) (*accountsv1.ChangePasswordResponse, error) {
	userID, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if err := g.svc.stepUp(ctx); err != nil {
		return nil, err
	}
	if err := g.svc.changePassword(ctx, userID, req.GetCurrentPassword(), req.GetNewPassword(), actor(ctx)); err != nil {
		return nil, err
	}
	return &accountsv1.ChangePasswordResponse{}, nil
}

// SetPassword sets a password without the current one: for an
// administrator, or for the web service with a recovery link's confirmation.
func (g *grpcServer) SetPassword(ctx context.Context, req *accountsv1.SetPasswordRequest) (*accountsv1.SetPasswordResponse, error) {
	reason := eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_ADMIN
	id, _ := caller.From(ctx)
	if !id.Is(caller.Admin) && req.GetRecoveryVerificationId() == "" {
		return nil, errs.PermissionDenied("only an administrator sets a password without a recovery link")
	}
	if id := req.GetRecoveryVerificationId(); id != "" {
		if !ids.Valid(req.GetUserId()) {
			return nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
		}
		if err := g.svc.checkProof(ctx, proof{
			verificationID: id, userID: req.GetUserId(),
			purpose: eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY,
			after:   g.svc.clock().Add(-verificationMaxAge),
		}); err != nil {
			g.svc.measures.signIn(ctx, methodRecovery, err)
			return nil, err
		}
		reason = eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RECOVERY
	}
	err := g.svc.setPassword(ctx, req.GetUserId(), req.GetNewPassword(), reason, actor(ctx))
	if err != nil {
		return nil, err
	}
	resp := &accountsv1.SetPasswordResponse{}
	if reason == eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RECOVERY {
		// Whoever was signed in before the reset may be who it locks out. (The
		// token service ends the OAuth and compat sessions from the event.)
		if err := g.svc.endBrowserSessions(ctx, req.GetUserId(), "", browser.ReasonPasswordRecovered, actor(ctx)); err != nil {
			return nil, errs.Wrap(errs.KindOf(err), "The password was reset, but not all browser sessions could be ended; try again.", err)
		}
		resp.AuthProof = g.svc.mintAuthProof(req.GetUserId(), methodRecovery)
		g.svc.measures.signIn(ctx, methodRecovery, nil)
	}
	return resp, nil
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

// DeactivateUser deactivates the user and ends all of their browser sessions.
func (g *grpcServer) DeactivateUser(ctx context.Context, req *accountsv1.DeactivateUserRequest) (*accountsv1.DeactivateUserResponse, error) {
	userID, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if err := g.svc.stepUp(ctx); err != nil {
		return nil, err
	}
	u, err := g.svc.deactivate(ctx, userID, req.GetErase(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.DeactivateUserResponse{User: u.proto()}, nil
}

func (g *grpcServer) ReactivateUser(ctx context.Context, req *accountsv1.ReactivateUserRequest) (*accountsv1.ReactivateUserResponse, error) {
	u, err := g.change(ctx, req.GetUserId(), user.Reactivate)
	if err != nil {
		return nil, err
	}
	return &accountsv1.ReactivateUserResponse{User: u}, nil
}

func (g *grpcServer) SetDisplayName(ctx context.Context, req *accountsv1.SetDisplayNameRequest) (*accountsv1.SetDisplayNameResponse, error) {
	userID, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	u, err := g.change(ctx, userID, func(s user.State) ([]proto.Message, error) { return user.SetDisplayName(s, req.GetDisplayName()) })
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

func (g *grpcServer) GetUserByEmail(ctx context.Context, req *accountsv1.GetUserByEmailRequest) (*accountsv1.GetUserByEmailResponse, error) {
	u, err := g.svc.userByEmail(ctx, req.GetEmail())
	if err != nil {
		return nil, err
	}
	return &accountsv1.GetUserByEmailResponse{User: u.proto()}, nil
}

func (g *grpcServer) AddEmail(ctx context.Context, req *accountsv1.AddEmailRequest) (*accountsv1.AddEmailResponse, error) {
	userID, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if err := g.svc.stepUp(ctx); err != nil {
		return nil, err
	}
	if id, _ := caller.From(ctx); req.GetSkipVerification() && !id.Is(caller.Admin) {
		return nil, errs.PermissionDenied("only an administrator may vouch for an address")
	}
	emails, err := g.svc.addEmail(ctx, userID, req.GetEmail(), req.GetVerificationId(), req.GetSkipVerification(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.AddEmailResponse{Emails: emails}, nil
}

func (g *grpcServer) RemoveEmail(ctx context.Context, req *accountsv1.RemoveEmailRequest) (*accountsv1.RemoveEmailResponse, error) {
	userID, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if err := g.svc.stepUp(ctx); err != nil {
		return nil, err
	}
	emails, err := g.svc.removeEmail(ctx, userID, req.GetEmail(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.RemoveEmailResponse{Emails: emails}, nil
}

func (g *grpcServer) SetPrimaryEmail(ctx context.Context, req *accountsv1.SetPrimaryEmailRequest) (*accountsv1.SetPrimaryEmailResponse, error) {
	userID, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if err := g.svc.stepUp(ctx); err != nil {
		return nil, err
	}
	emails, err := g.svc.setPrimaryEmail(ctx, userID, req.GetEmail(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.SetPrimaryEmailResponse{Emails: emails}, nil
}

func (g *grpcServer) ListEmails(ctx context.Context, req *accountsv1.ListEmailsRequest) (*accountsv1.ListEmailsResponse, error) {
	if adminPage(ctx, req.GetPage()) {
		return g.svc.pageEmails(ctx, req)
	}
	userID, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	emails, err := g.svc.listEmails(ctx, userID)
	if err != nil {
		return nil, err
	}
	return &accountsv1.ListEmailsResponse{Emails: emails}, nil
}

// StartBrowserSession starts a session only against an authentication
// proof for the user (proofs.go).
func (g *grpcServer) StartBrowserSession(ctx context.Context, req *accountsv1.StartBrowserSessionRequest) (*accountsv1.StartBrowserSessionResponse, error) {
	if !ids.Valid(req.GetUserId()) {
		return nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	if _, err := browser.NormalizeIP(req.GetIpAddress()); err != nil {
		return nil, err
	}
	proof, err := g.svc.checkAuthProof(req.GetAuthProof(), req.GetUserId())
	if err != nil {
		return nil, err
	}
	// A session starts only once the second-factor policy is satisfied.
	if err := g.svc.requireComplete(ctx, req.GetUserId(), proof); err != nil {
		return nil, err
	}
	r, secret, err := g.svc.startBrowserSession(ctx, req.GetUserId(), browser.StartCommand{
		UserAgent: req.GetUserAgent(), IPAddress: req.GetIpAddress(),
		UpstreamProvider: proof.upstreamProvider, UpstreamSID: proof.upstreamSID, AuthMethods: proof.methods,
	}, "user:"+req.GetUserId())
	if err != nil {
		return nil, err
	}
	return &accountsv1.StartBrowserSessionResponse{Session: r.proto(g.svc.now()), Secret: secret}, nil
}

func (g *grpcServer) AuthenticateBrowserSession(ctx context.Context, req *accountsv1.AuthenticateBrowserSessionRequest) (*accountsv1.AuthenticateBrowserSessionResponse, error) {
	r, u, err := g.svc.authenticateBrowserSession(ctx, req.GetSecret(), req.GetIpAddress())
	if err != nil {
		return nil, err
	}
	return &accountsv1.AuthenticateBrowserSessionResponse{Session: r.proto(g.svc.now()), User: u.proto()}, nil
}

// EndBrowserSession ends a session: one of the signed-in person's own, or
// any for an administrator (who may leave user_id empty).
func (g *grpcServer) EndBrowserSession(ctx context.Context, req *accountsv1.EndBrowserSessionRequest) (*accountsv1.EndBrowserSessionResponse, error) {
	userID := req.GetUserId()
	if id, _ := caller.From(ctx); !id.Is(caller.Admin) {
		var err error
		if userID, err = forUser(ctx, userID); err != nil {
			return nil, err
		}
	}
	if err := g.svc.signOut(ctx, req.GetSessionId(), userID, actor(ctx)); err != nil {
		return nil, err
	}
	return &accountsv1.EndBrowserSessionResponse{}, nil
}

func (g *grpcServer) ListBrowserSessions(ctx context.Context, req *accountsv1.ListBrowserSessionsRequest) (*accountsv1.ListBrowserSessionsResponse, error) {
	if adminPage(ctx, req.GetPage()) {
		return g.svc.pageBrowserSessions(ctx, req)
	}
	userID, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	rows, err := g.svc.listBrowserSessions(ctx, userID, req.GetIncludeEnded())
	if err != nil {
		return nil, err
	}
	now := g.svc.now()
	resp := &accountsv1.ListBrowserSessionsResponse{}
	for _, r := range rows {
		resp.Sessions = append(resp.Sessions, r.proto(now))
	}
	return resp, nil
}

func (g *grpcServer) StartRegistration(ctx context.Context, req *accountsv1.StartRegistrationRequest) (*accountsv1.StartRegistrationResponse, error) {
	r, err := g.svc.startRegistration(ctx, registration{
		Username: req.GetUsername(), Password: req.GetPassword(), Email: req.GetEmail(), DisplayName: req.GetDisplayName(),
	}, actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.StartRegistrationResponse{Registration: r.proto()}, nil
}

func (g *grpcServer) GetRegistration(ctx context.Context, req *accountsv1.GetRegistrationRequest) (*accountsv1.GetRegistrationResponse, error) {
	r, err := g.svc.loadRegistration(ctx, req.GetRegistrationId())
	if err != nil {
		return nil, err
	}
	return &accountsv1.GetRegistrationResponse{Registration: r.proto()}, nil
}

func (g *grpcServer) CompleteRegistration(ctx context.Context, req *accountsv1.CompleteRegistrationRequest) (*accountsv1.CompleteRegistrationResponse, error) {
	u, err := g.svc.completeRegistration(ctx, req.GetRegistrationId(), req.GetVerificationId(), actor(ctx))
	g.svc.measures.registered(ctx, registeredWithPassword, err)
	if err != nil {
		return nil, err
	}
	return &accountsv1.CompleteRegistrationResponse{User: u.proto(), AuthProof: g.svc.mintAuthProof(u.id, methodRegistration)}, nil
}
