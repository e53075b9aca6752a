package token

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/session"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// Personal access tokens (mpt_): sessions of kind "personal" in the TOKEN
// stream, each holding one access token that acts as its user with a fixed
// scope until it expires or the session is revoked (EndSession). People make
// their own on the account page (the web service, for the signed-in
// person); administrators make them for any active user, bots included
// (the admin API). They introspect like OAuth access tokens (with their
// device), their use is noted as activity, and a session with a device
// gets it on the homeserver before the token is handed out. Like every
// token they are stored only as hashes.

// CreatePersonalSession starts a personal session and returns its token once.
func (g *grpcServer) CreatePersonalSession(ctx context.Context, req *tokenv1.CreatePersonalSessionRequest) (*tokenv1.CreatePersonalSessionResponse, error) {
	s := g.svc
	actorID, err := caller.UserFor(ctx, req.GetActorUserId())
	if err != nil {
		return nil, err
	}
	if !ids.Valid(actorID) {
		return nil, errs.InvalidField("actor_user_id", "actor_user_id is not a user id")
	}
	if err := session.CheckName(req.GetName()); err != nil {
		return nil, err
	}
	ttl, err := personalTTL(req.GetExpiresIn())
	if err != nil {
		return nil, err
	}
	resp, err := s.accounts.GetUser(ctx, &accountsv1.GetUserRequest{UserId: actorID})
	if err != nil {
		return nil, err // NOT_FOUND for an unknown user
	}
	actor := resp.GetUser()
	if actor.GetDeactivated() {
		return nil, errs.FailedPrecondition("The user is deactivated.")
	}
	scope, device, err := session.PersonalScope(req.GetScope(), actor.GetAdmin())
	if err != nil {
		return nil, err
	}
	sessionID := ids.New()
	token, issued := s.mintPersonal(sessionID, ttl)
	ev := &eventsv1.SessionStarted{
		SessionId: sessionID, Kind: session.PersonalKind, UserId: actor.GetId(), Username: actor.GetUsername(),
		Scope: scope, DeviceId: device, Tokens: issued, DeviceDisplayName: req.GetName(),
	}
	id, _ := caller.From(ctx)
	switch {
	case id.User != nil:
		ev.OwnerUserId = id.User.ID
	case id.Token != nil && id.Token.UserID != "":
		ev.OwnerUserId = id.Token.UserID
	case id.Token != nil:
		ev.ClientId = id.Token.ClientID
	}
	if err := s.start(ctx, ev, caller.Actor(ctx)); err != nil {
		return nil, err // a locked user gets no session (FAILED_PRECONDITION)
	}
	view, err := s.getSession(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	return &tokenv1.CreatePersonalSessionResponse{Session: view, AccessToken: token}, nil
}

// RegeneratePersonalSession replaces a personal session's token.
func (g *grpcServer) RegeneratePersonalSession(ctx context.Context, req *tokenv1.RegeneratePersonalSessionRequest) (*tokenv1.RegeneratePersonalSessionResponse, error) {
	s := g.svc
	if !ids.Valid(req.GetSessionId()) {
		return nil, errs.InvalidField("session_id", "session_id is not a session id")
	}
	ttl, err := personalTTL(req.GetExpiresIn())
	if err != nil {
		return nil, err
	}
	owner := ""
	if u, err := caller.SignedIn(ctx); err == nil {
		owner = u.ID // a person regenerates only their own
	}
	token, issued := s.mintPersonal(req.GetSessionId(), ttl)
	ref := sessionRef(req.GetSessionId())
	var revoked string
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := session.Fold(history)
		if err := s.refuseBlocked(ctx, st.Started.GetUserId()); err != nil && st.Exists() {
			return nil, err
		}
		decided, err := session.Regenerate(st, owner, issued)
		revoked = st.CurrentAccess
		if err != nil {
			return nil, err
		}
		return s.sessionWrites(ctx, ref, caller.Actor(ctx), st, version, decided...)
	})
	if err != nil {
		return nil, errs.Classify(err, errs.KindUnavailable, unavailableMsg)
	}
	s.index.markRevoked(revoked) // this replica at once; the others through the stream
	if err := s.projections.WaitFor(ctx, sessionsProjection, appended.Last()); err != nil {
		return nil, errs.Classify(err, errs.KindUnavailable, unavailableMsg)
	}
	view, err := s.getSession(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	return &tokenv1.RegeneratePersonalSessionResponse{Session: view, AccessToken: token}, nil
}

// personalTTL reads how long a personal token is valid for (zero: forever).
func personalTTL(d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, errs.InvalidField("expires_in", "expires_in is not a duration")
	}
	ttl := d.AsDuration()
	if err := session.CheckTTL(ttl); err != nil {
		return 0, err
	}
	if ttl == 0 {
		return 0, errs.InvalidField("expires_in", "expires_in must be at least one second (unset for no expiry)")
	}
	return ttl, nil
}

// mintPersonal mints a personal access token for a session, expiring after
// ttl (never when zero).
func (s *Service) mintPersonal(sessionID string, ttl time.Duration) (string, *eventsv1.TokensIssued) {
	token := s.minter.New(tokenfmt.PersonalToken)
	issued := &eventsv1.TokensIssued{SessionId: sessionID, AccessHash: tokenfmt.HashString(token)}
	if ttl > 0 {
		issued.AccessExpiresAt = timestamppb.New(session.Expiry(s.now(), ttl))
	}
	return token, issued
}
