package accounts

import (
	"context"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/caller"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/accounts/internal/factors"
)

// The second-factor RPCs (factors.go, passkeys.go, totp.go).

func (g *grpcServer) GetSecondFactors(ctx context.Context, req *accountsv1.GetSecondFactorsRequest) (*accountsv1.GetSecondFactorsResponse, error) {
	sub, err := g.svc.subjectOf(ctx, req.GetUserId(), req.GetAuthProof())
	if err != nil {
		return nil, err
	}
	st, err := g.svc.loadFactors(ctx, sub.user.id)
	if err != nil {
		return nil, err
	}
	return &accountsv1.GetSecondFactorsResponse{Factors: g.svc.factorsView(sub.user, st)}, nil
}

func (g *grpcServer) VerifySecondFactor(ctx context.Context, req *accountsv1.VerifySecondFactorRequest) (*accountsv1.VerifySecondFactorResponse, error) {
	return g.svc.verifySecondFactor(ctx, req, actor(ctx))
}

func (g *grpcServer) BeginPasskeySignIn(ctx context.Context, req *accountsv1.BeginPasskeySignInRequest) (*accountsv1.BeginPasskeySignInResponse, error) {
	return g.svc.beginPasskeySignIn(ctx, req)
}

func (g *grpcServer) FinishPasskeySignIn(ctx context.Context, req *accountsv1.FinishPasskeySignInRequest) (*accountsv1.FinishPasskeySignInResponse, error) {
	return g.svc.finishPasskeySignIn(ctx, req, actor(ctx))
}

func (g *grpcServer) BeginPasskeyRegistration(ctx context.Context, req *accountsv1.BeginPasskeyRegistrationRequest) (*accountsv1.BeginPasskeyRegistrationResponse, error) {
	return g.svc.beginPasskeyRegistration(ctx, req)
}

func (g *grpcServer) FinishPasskeyRegistration(ctx context.Context, req *accountsv1.FinishPasskeyRegistrationRequest) (*accountsv1.FinishPasskeyRegistrationResponse, error) {
	return g.svc.finishPasskeyRegistration(ctx, req, actor(ctx))
}

// factorChange runs a change of the signed-in person's factors (after a
// step-up) or, for administrators, of the user named.
func (g *grpcServer) factorChange(ctx context.Context, userID string, decide func(*userRow, factors.State) ([]proto.Message, error)) error {
	uid, err := forUser(ctx, userID)
	if err != nil {
		return err
	}
	if err := g.svc.stepUp(ctx); err != nil {
		return err
	}
	u, err := g.svc.userByID(ctx, uid)
	if err != nil {
		return err
	}
	_, err = g.svc.changeFactors(ctx, uid, actor(ctx), func(st factors.State) ([]proto.Message, error) { return decide(u, st) })
	return err
}

// RenamePasskey is no sensitive action: no step-up.
func (g *grpcServer) RenamePasskey(ctx context.Context, req *accountsv1.RenamePasskeyRequest) (*accountsv1.RenamePasskeyResponse, error) {
	uid, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if _, err := g.svc.userByID(ctx, uid); err != nil {
		return nil, err
	}
	if _, err := g.svc.changeFactors(ctx, uid, actor(ctx), func(st factors.State) ([]proto.Message, error) {
		return factors.RenamePasskey(st, uid, req.GetPasskeyId(), req.GetName())
	}); err != nil {
		return nil, err
	}
	return &accountsv1.RenamePasskeyResponse{}, nil
}

func (g *grpcServer) RemovePasskey(ctx context.Context, req *accountsv1.RemovePasskeyRequest) (*accountsv1.RemovePasskeyResponse, error) {
	err := g.factorChange(ctx, req.GetUserId(), func(u *userRow, st factors.State) ([]proto.Message, error) {
		return factors.RemovePasskey(st, u.id, req.GetPasskeyId(), g.svc.notice(u, req.GetLocale()))
	})
	if err != nil {
		return nil, err
	}
	return &accountsv1.RemovePasskeyResponse{}, nil
}

func (g *grpcServer) StartTOTPEnrolment(ctx context.Context, req *accountsv1.StartTOTPEnrolmentRequest) (*accountsv1.StartTOTPEnrolmentResponse, error) {
	return g.svc.startTOTP(ctx, req)
}

func (g *grpcServer) ConfirmTOTPEnrolment(ctx context.Context, req *accountsv1.ConfirmTOTPEnrolmentRequest) (*accountsv1.ConfirmTOTPEnrolmentResponse, error) {
	return g.svc.confirmTOTP(ctx, req, actor(ctx))
}

func (g *grpcServer) DisableTOTP(ctx context.Context, req *accountsv1.DisableTOTPRequest) (*accountsv1.DisableTOTPResponse, error) {
	err := g.factorChange(ctx, req.GetUserId(), func(u *userRow, st factors.State) ([]proto.Message, error) {
		return factors.DisableTOTP(st, u.id, g.svc.notice(u, req.GetLocale()))
	})
	if err != nil {
		return nil, err
	}
	return &accountsv1.DisableTOTPResponse{}, nil
}

func (g *grpcServer) GenerateRecoveryCodes(ctx context.Context, req *accountsv1.GenerateRecoveryCodesRequest) (*accountsv1.GenerateRecoveryCodesResponse, error) {
	uid, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if err := g.svc.stepUp(ctx); err != nil {
		return nil, err
	}
	u, err := g.svc.userByID(ctx, uid)
	if err != nil {
		return nil, err
	}
	codes, err := g.svc.generateRecoveryCodes(ctx, u, req.GetLocale(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.GenerateRecoveryCodesResponse{RecoveryCodes: codes}, nil
}

// SetSecondFactorRequired: the person for themselves (turning it off needs a
// step-up), or an administrator.
func (g *grpcServer) SetSecondFactorRequired(ctx context.Context, req *accountsv1.SetSecondFactorRequiredRequest) (*accountsv1.SetSecondFactorRequiredResponse, error) {
	uid, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	id, _ := caller.From(ctx)
	byAdmin := id.Is(caller.Admin)
	if !byAdmin && !req.GetRequired() {
		if err := g.svc.stepUp(ctx); err != nil {
			return nil, err
		}
	}
	u, err := g.svc.userByID(ctx, uid)
	if err != nil {
		return nil, err
	}
	st, err := g.svc.changeFactors(ctx, uid, actor(ctx), func(st factors.State) ([]proto.Message, error) {
		return factors.SetRequired(st, uid, req.GetRequired(), byAdmin)
	})
	if err != nil {
		return nil, err
	}
	return &accountsv1.SetSecondFactorRequiredResponse{Factors: g.svc.factorsView(u, st)}, nil
}

// ResetSecondFactors is an administrator's recovery of an account whose
// factors are lost.
func (g *grpcServer) ResetSecondFactors(ctx context.Context, req *accountsv1.ResetSecondFactorsRequest) (*accountsv1.ResetSecondFactorsResponse, error) {
	u, err := g.svc.userByID(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if _, err := g.svc.changeFactors(ctx, u.id, actor(ctx), func(st factors.State) ([]proto.Message, error) {
		return factors.Reset(st, u.id, g.svc.notice(u, ""))
	}); err != nil {
		return nil, err
	}
	return &accountsv1.ResetSecondFactorsResponse{}, nil
}

func (g *grpcServer) ReauthenticateBrowserSession(ctx context.Context, req *accountsv1.ReauthenticateBrowserSessionRequest) (*accountsv1.ReauthenticateBrowserSessionResponse, error) {
	r, err := g.svc.reauthenticate(ctx, req.GetAuthProof(), req.GetRequireComplete())
	if err != nil {
		return nil, err
	}
	return &accountsv1.ReauthenticateBrowserSessionResponse{Session: r.proto(g.svc.now())}, nil
}
