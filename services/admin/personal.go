package admin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// Personal sessions: the token service's sessions of kind "personal", each
// holding a personal access token. Administrators create them for any
// active user (bots); people make their own on the account page.

type personalSessionAttributes struct {
	CreatedAt     string  `json:"created_at"`
	RevokedAt     *string `json:"revoked_at"`
	OwnerUserID   *string `json:"owner_user_id"`
	OwnerClientID *string `json:"owner_client_id"`
	ActorUserID   string  `json:"actor_user_id"`
	HumanName     string  `json:"human_name"`
	Scope         string  `json:"scope"`
	LastActiveAt  *string `json:"last_active_at"`
	LastActiveIP  *string `json:"last_active_ip"`
	ExpiresAt     *string `json:"expires_at"`
	AccessToken   *string `json:"access_token,omitempty"`
}

func personalAttributes(ts *tokenv1.Session, token string) any {
	return personalSessionAttributes{
		CreatedAt: rfc3339v(ts.GetCreatedAt()), RevokedAt: rfc3339(ts.GetEndedAt()), OwnerUserID: nullable(ts.GetOwnerUserId()),
		OwnerClientID: nullable(ts.GetClientId()), ActorUserID: ts.GetUserId(), HumanName: ts.GetDeviceDisplayName(), Scope: ts.GetScope(),
		LastActiveAt: rfc3339(ts.GetLastActiveAt()), LastActiveIP: nullable(ts.GetIpAddress()), ExpiresAt: rfc3339(ts.GetExpiresAt()),
		AccessToken: nullable(token),
	}
}

var personalKind = sessionKind{kind: "personal", kinds: []string{"personal"}, coll: personal, what: "Personal session",
	attrs: func(ts *tokenv1.Session) any { return personalAttributes(ts, "") }}

func (s *Service) listPersonalSessions(ctx context.Context, r *request) (reply, error) {
	req := &tokenv1.QuerySessionsRequest{}
	var err error
	if req.OwnerUserId, err = r.query.ulid("filter[owner_user]"); err != nil {
		return reply{}, err
	}
	req.ClientId = r.query.get("filter[owner_client]")
	if req.UserId, err = r.query.ulid("filter[actor_user]"); err != nil {
		return reply{}, err
	}
	req.Scopes = r.query.all("filter[scope]")
	st, err := r.query.enum("filter[status]")
	if err != nil {
		return reply{}, err
	}
	req.Status = statusFilter(st, "revoked")
	if req.ExpiresBefore, err = r.query.time("filter[expires_before]"); err != nil {
		return reply{}, err
	}
	if req.ExpiresAfter, err = r.query.time("filter[expires_after]"); err != nil {
		return reply{}, err
	}
	if req.Expires, err = r.query.boolean("filter[expires]"); err != nil {
		return reply{}, err
	}
	return s.listSessions(ctx, r, personalKind, req)
}

// expiresIn reads MAS's expires_in (seconds; absent or null: never).
func expiresIn(v *int64) (*durationpb.Duration, error) {
	if v == nil {
		return nil, nil
	}
	if *v < 1 || *v > 1<<32-1 {
		return nil, badRequest("expires_in must be between 1 and 4294967295 seconds")
	}
	return durationpb.New(time.Duration(*v) * time.Second), nil
}

func (s *Service) createPersonalSession(ctx context.Context, r *request) (reply, error) {
	var in struct {
		ActorUserID string `json:"actor_user_id"`
		HumanName   string `json:"human_name"`
		Scope       string `json:"scope"`
		ExpiresIn   *int64 `json:"expires_in"`
	}
	if err := r.decode(&in); err != nil {
		return reply{}, err
	}
	if !ids.Valid(in.ActorUserID) {
		return reply{}, badRequest("actor_user_id must be a user's ULID")
	}
	ttl, err := expiresIn(in.ExpiresIn)
	if err != nil {
		return reply{}, err
	}
	resp, err := s.token.CreatePersonalSession(ctx, &tokenv1.CreatePersonalSessionRequest{
		ActorUserId: in.ActorUserID, Name: in.HumanName, Scope: in.Scope, ExpiresIn: ttl,
	})
	switch errs.KindOf(err) {
	case errs.KindNotFound:
		return reply{}, &apiError{status: http.StatusNotFound, title: fmt.Sprintf("User ID %s not found", in.ActorUserID)}
	case errs.KindFailedPrecondition:
		return reply{}, &apiError{status: http.StatusGone, title: "User ID " + in.ActorUserID + " is not active: " + errs.PublicMessage(err)}
	}
	if err != nil {
		return reply{}, err
	}
	return s.one(http.StatusCreated, personal, resp.GetSession().GetSessionId(), personalAttributes(resp.GetSession(), resp.GetAccessToken())), nil
}

func (s *Service) getPersonalSession(ctx context.Context, r *request) (reply, error) {
	return s.getSessionOf(ctx, r, personalKind)
}

func (s *Service) revokePersonalSession(ctx context.Context, r *request) (reply, error) {
	ts, err := s.finish(ctx, r, personalKind, http.StatusConflict, "is already revoked")
	if err != nil {
		return reply{}, err
	}
	return s.one(http.StatusOK, personal, ts.GetSessionId(), personalAttributes(ts, "")), nil
}

func (s *Service) regeneratePersonalSession(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	var in struct {
		ExpiresIn *int64 `json:"expires_in"`
	}
	if err := r.decodeOptional(&in); err != nil {
		return reply{}, err
	}
	ttl, err := expiresIn(in.ExpiresIn)
	if err != nil {
		return reply{}, err
	}
	if _, err := s.session(ctx, r, personalKind); err != nil {
		return reply{}, err
	}
	resp, err := s.token.RegeneratePersonalSession(ctx, &tokenv1.RegeneratePersonalSessionRequest{SessionId: id, ExpiresIn: ttl})
	if err != nil {
		return reply{}, notFound(err, "Personal session", id)
	}
	return s.one(http.StatusCreated, personal, id, personalAttributes(resp.GetSession(), resp.GetAccessToken())), nil
}
