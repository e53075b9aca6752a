package notify

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/caller"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
)

// grpcServer adapts the service to gatehouse.notify.v1.NotifyService: it
// parses requests, calls the service and returns errs values, which the
// platform's interceptor turns into gRPC statuses.
type grpcServer struct {
	notifyv1.UnimplementedNotifyServiceServer
	svc *Service
}

// actor names who acts in events: the caller the platform authenticated
// ("user:<id>" when the web service acts for a signed-in person).
func actor(ctx context.Context) string { return caller.Actor(ctx) }

func (g *grpcServer) StartVerification(ctx context.Context, req *notifyv1.StartVerificationRequest) (*notifyv1.StartVerificationResponse, error) {
	userID := req.GetUserId()
	if id, _ := caller.From(ctx); id.User != nil {
		var err error
		if userID, err = caller.UserFor(ctx, userID); err != nil {
			return nil, err
		}
	}
	st, err := g.svc.start(ctx, startInput{
		Email: req.GetEmail(), Purpose: toEvent(req.GetPurpose()), UserID: userID,
		ClientIP: req.GetClientIp(), Locale: req.GetLocale(),
	}, actor(ctx))
	if err != nil {
		return nil, err
	}
	return &notifyv1.StartVerificationResponse{
		VerificationId: st.ID, ExpiresAt: timestamppb.New(st.ExpiresAt), ResendAfter: timestamppb.New(st.ResendAfter),
	}, nil
}

func (g *grpcServer) ResendVerification(ctx context.Context, req *notifyv1.ResendVerificationRequest) (*notifyv1.ResendVerificationResponse, error) {
	r, err := g.svc.resend(ctx, req.GetVerificationId(), req.GetClientIp(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &notifyv1.ResendVerificationResponse{
		ExpiresAt: timestamppb.New(r.ExpiresAt), ResendAfter: timestamppb.New(r.ResendAfter), ResendsLeft: r.ResendsLeft,
	}, nil
}

func (g *grpcServer) CheckCode(ctx context.Context, req *notifyv1.CheckCodeRequest) (*notifyv1.CheckCodeResponse, error) {
	st, err := g.svc.checkCode(ctx, req.GetVerificationId(), req.GetCode(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &notifyv1.CheckCodeResponse{Email: st.Email, Purpose: fromEvent(st.Purpose), UserId: st.UserID}, nil
}

func (g *grpcServer) CheckRecoveryTicket(ctx context.Context, req *notifyv1.CheckRecoveryTicketRequest) (*notifyv1.CheckRecoveryTicketResponse, error) {
	st, err := g.svc.checkTicket(ctx, req.GetTicket(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &notifyv1.CheckRecoveryTicketResponse{Email: st.Email, UserId: st.UserID, VerificationId: st.ID}, nil
}

// toEvent maps the API's purpose to the events'; unknown values become
// unspecified, which validation refuses.
func toEvent(p notifyv1.Purpose) eventsv1.VerificationPurpose {
	switch p {
	case notifyv1.Purpose_PURPOSE_REGISTRATION:
		return eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION
	case notifyv1.Purpose_PURPOSE_ADD_EMAIL:
		return eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL
	case notifyv1.Purpose_PURPOSE_RECOVERY:
		return eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY
	}
	return eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_UNSPECIFIED
}

// fromEvent maps the events' purpose to the API's.
func fromEvent(p eventsv1.VerificationPurpose) notifyv1.Purpose {
	switch p {
	case eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION:
		return notifyv1.Purpose_PURPOSE_REGISTRATION
	case eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL:
		return notifyv1.Purpose_PURPOSE_ADD_EMAIL
	case eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY:
		return notifyv1.Purpose_PURPOSE_RECOVERY
	}
	return notifyv1.Purpose_PURPOSE_UNSPECIFIED
}
