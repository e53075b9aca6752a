package accounts

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/accounts/internal/factors"
)

// TOTP enrolment: StartTOTPEnrolment draws a secret and seals it, with the
// user and an expiry, into a ticket only accounts opens; the person scans
// the QR code (or types the secret) and gives a code, and
// ConfirmTOTPEnrolment checks it against the ticket's secret before
// TOTPEnabled records the secret, sealed under the user's personal key. A
// secret that was never confirmed is never recorded.

// totpTicketTTL is how long a person has to confirm an enrolment.
const totpTicketTTL = 10 * time.Minute

// totpTicket is a pending enrolment.
type totpTicket struct {
	User    string `json:"u"`
	Secret  string `json:"s"`
	Expires int64  `json:"x"`
}

func (s *Service) startTOTP(ctx context.Context, req *accountsv1.StartTOTPEnrolmentRequest) (*accountsv1.StartTOTPEnrolmentResponse, error) {
	sub, err := s.subjectOf(ctx, req.GetUserId(), req.GetAuthProof())
	if err != nil {
		return nil, err
	}
	if err := s.enrolling(ctx, sub); err != nil {
		return nil, err
	}
	st, err := s.loadFactors(ctx, sub.user.id)
	if err != nil {
		return nil, err
	}
	if st.TOTPSecret != "" {
		return nil, errs.FailedPrecondition("An authenticator app is already set up; remove it first.")
	}
	account := sub.user.username
	if s.cfg.ServerName != "" {
		account = "@" + account + ":" + s.cfg.ServerName
	}
	secret, uri, err := factors.NewTOTP(s.cfg.ServiceName, account)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, "", err)
	}
	ticket, err := s.sealState("totp enrolment", totpTicket{User: sub.user.id, Secret: secret, Expires: s.clock().Add(totpTicketTTL).Unix()})
	if err != nil {
		return nil, err
	}
	return &accountsv1.StartTOTPEnrolmentResponse{Secret: secret, Uri: uri, Ticket: ticket}, nil
}

func (s *Service) confirmTOTP(ctx context.Context, req *accountsv1.ConfirmTOTPEnrolmentRequest, actor string) (*accountsv1.ConfirmTOTPEnrolmentResponse, error) {
	var t totpTicket
	if !s.openState("totp enrolment", req.GetTicket(), &t) || s.clock().Unix() > t.Expires {
		e := errs.FailedPrecondition("The setup took too long; start again.")
		e.Field = "ticket"
		return nil, e
	}
	sub, err := s.enrollingAs(ctx, t.User, req.GetAuthProof(), "this setup is another person's")
	if err != nil {
		return nil, err
	}
	budget, err := s.takeSecondFactor(ctx, sub.user.id)
	if err != nil {
		return nil, err
	}
	step, ok := factors.CheckTOTP(t.Secret, req.GetCode(), s.clock())
	if !ok {
		e := errs.Unauthenticated("This code is wrong; check the app's clock and try the next code.")
		e.Field = "code"
		return nil, e
	}
	s.limiter.Refund(ctx, budget)
	before, err := s.loadFactors(ctx, sub.user.id)
	if err != nil {
		return nil, err
	}
	if _, err := s.changeFactors(ctx, sub.user.id, actor, func(st factors.State) ([]proto.Message, error) {
		return factors.EnableTOTP(st, sub.user.id, t.Secret, step, s.notice(sub.user, req.GetLocale()))
	}); err != nil {
		return nil, err
	}
	resp := &accountsv1.ConfirmTOTPEnrolmentResponse{RecoveryCodes: s.firstCodes(ctx, sub.user, before, req.GetLocale(), actor)}
	if sub.proof != nil {
		resp.AuthProof = s.extendProof(sub.user.id, *sub.proof, factors.MethodTOTP)
	}
	return resp, nil
}
