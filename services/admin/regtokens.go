package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// Registration tokens: the accounts service's. Only a token's hash is kept,
// so the token itself shows only in the answer that created it.

type regTokenAttributes struct {
	Token      *string `json:"token,omitempty"`
	Valid      bool    `json:"valid"`
	UsageLimit *int32  `json:"usage_limit"`
	TimesUsed  int32   `json:"times_used"`
	CreatedAt  string  `json:"created_at"`
	LastUsedAt *string `json:"last_used_at"`
	ExpiresAt  *string `json:"expires_at"`
	RevokedAt  *string `json:"revoked_at"`
}

func (s *Service) regTokenResource(t *accountsv1.RegistrationToken, token string, now time.Time) resource {
	a := regTokenAttributes{
		Token: nullable(token), TimesUsed: t.GetUses(), CreatedAt: rfc3339v(t.GetCreatedAt()), LastUsedAt: rfc3339(t.GetLastUsedAt()),
		ExpiresAt: rfc3339(t.GetExpiresAt()), RevokedAt: rfc3339(t.GetRevokedAt()),
	}
	if n := t.GetUsesAllowed(); n > 0 {
		a.UsageLimit = &n
	}
	expired := t.GetExpiresAt() != nil && !now.Before(t.GetExpiresAt().AsTime())
	usedUp := t.GetUsesAllowed() > 0 && t.GetUses() >= t.GetUsesAllowed()
	a.Valid = !t.GetRevoked() && !expired && !usedUp
	return s.resource(regTokens, t.GetTokenId(), a)
}

func (s *Service) regTokenReply(status int, t *accountsv1.RegistrationToken, token string) reply {
	res := s.regTokenResource(t, token, time.Now())
	return reply{status: status, body: single{Data: res, Links: res.Links}}
}

func (s *Service) listRegTokens(ctx context.Context, r *request) (reply, error) {
	pr, err := r.query.page()
	if err != nil {
		return reply{}, err
	}
	req := &accountsv1.ListRegistrationTokensRequest{Page: pr}
	for _, f := range []struct {
		name string
		dst  **bool
	}{{"filter[used]", &req.Used}, {"filter[revoked]", &req.Revoked}, {"filter[expired]", &req.Expired}, {"filter[valid]", &req.Valid}} {
		if *f.dst, err = r.query.boolean(f.name); err != nil {
			return reply{}, err
		}
	}
	resp, err := s.accounts.ListRegistrationTokens(ctx, req)
	if err != nil {
		return reply{}, err
	}
	now := time.Now()
	items := make([]resource, 0, len(resp.GetRegistrationTokens()))
	for _, t := range resp.GetRegistrationTokens() {
		items = append(items, s.regTokenResource(t, "", now))
	}
	return s.page(r, regTokens, pr, resp.GetPage(), items), nil
}

// usageLimit reads a usage limit (null: unlimited).
func usageLimit(v *int64) (int32, error) {
	if v == nil {
		return 0, nil
	}
	if *v < 0 || *v > 1<<31-1 {
		return 0, badRequest("usage_limit must be between 0 and 2147483647")
	}
	if *v == 0 {
		return 0, badRequest("usage_limit must be at least 1 (null for unlimited)")
	}
	return int32(*v), nil
}

func (s *Service) addRegToken(ctx context.Context, r *request) (reply, error) {
	var in struct {
		Token      *string    `json:"token"`
		UsageLimit *int64     `json:"usage_limit"`
		ExpiresAt  *time.Time `json:"expires_at"`
	}
	if err := r.decodeOptional(&in); err != nil {
		return reply{}, err
	}
	limit, err := usageLimit(in.UsageLimit)
	if err != nil {
		return reply{}, err
	}
	req := &accountsv1.CreateRegistrationTokenRequest{UsesAllowed: limit}
	if in.Token != nil {
		req.Token = *in.Token
	}
	if in.ExpiresAt != nil {
		req.ExpiresAt = timestamppb.New(*in.ExpiresAt)
	}
	resp, err := s.accounts.CreateRegistrationToken(ctx, req)
	if errs.KindOf(err) == errs.KindAlreadyExists {
		return reply{}, &apiError{status: http.StatusConflict, title: "A registration token with this token already exists"}
	}
	if err != nil {
		return reply{}, err
	}
	// The read model knows when it was created; ask it.
	got, err := s.accounts.GetRegistrationToken(ctx, &accountsv1.GetRegistrationTokenRequest{TokenId: resp.GetRegistrationToken().GetTokenId()})
	if err != nil {
		return reply{}, err
	}
	return s.regTokenReply(http.StatusCreated, got.GetRegistrationToken(), resp.GetToken()), nil
}

func (s *Service) getRegToken(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := s.accounts.GetRegistrationToken(ctx, &accountsv1.GetRegistrationTokenRequest{TokenId: id})
	if err != nil {
		return reply{}, notFound(err, "Registration token", id)
	}
	return s.regTokenReply(http.StatusOK, resp.GetRegistrationToken(), ""), nil
}

// updateRegToken changes what the body names: a field absent stays, a
// field null clears (no expiry, unlimited uses).
func (s *Service) updateRegToken(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	var in map[string]json.RawMessage
	if err := r.decode(&in); err != nil {
		return reply{}, err
	}
	for k := range in {
		if k != "expires_at" && k != "usage_limit" {
			return reply{}, badRequest("Invalid JSON body: unknown field " + k)
		}
	}
	cur, err := s.accounts.GetRegistrationToken(ctx, &accountsv1.GetRegistrationTokenRequest{TokenId: id})
	if err != nil {
		return reply{}, notFound(err, "Registration token", id)
	}
	t := cur.GetRegistrationToken()
	req := &accountsv1.UpdateRegistrationTokenRequest{TokenId: id, ExpiresAt: t.GetExpiresAt(), UsesAllowed: t.GetUsesAllowed()}
	if raw, ok := in["expires_at"]; ok {
		var at *time.Time
		if err := json.Unmarshal(raw, &at); err != nil {
			return reply{}, badRequest("Invalid JSON body: expires_at is not a date-time")
		}
		req.ExpiresAt = nil
		if at != nil {
			req.ExpiresAt = timestamppb.New(*at)
		}
	}
	if raw, ok := in["usage_limit"]; ok {
		var n *int64
		if err := json.Unmarshal(raw, &n); err != nil {
			return reply{}, badRequest("Invalid JSON body: usage_limit is not a number")
		}
		if req.UsesAllowed, err = usageLimit(n); err != nil {
			return reply{}, err
		}
	}
	resp, err := s.accounts.UpdateRegistrationToken(ctx, req)
	if err != nil {
		return reply{}, notFound(err, "Registration token", id)
	}
	return s.regTokenReply(http.StatusOK, resp.GetRegistrationToken(), ""), nil
}

func (s *Service) revokeRegToken(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	cur, err := s.accounts.GetRegistrationToken(ctx, &accountsv1.GetRegistrationTokenRequest{TokenId: id})
	if err != nil {
		return reply{}, notFound(err, "Registration token", id)
	}
	if cur.GetRegistrationToken().GetRevoked() {
		return reply{}, badRequest("Registration token ID " + id + " is already revoked")
	}
	if _, err := s.accounts.RevokeRegistrationToken(ctx, &accountsv1.RevokeRegistrationTokenRequest{TokenId: id}); err != nil {
		return reply{}, notFound(err, "Registration token", id)
	}
	return s.getRegToken(ctx, r)
}

func (s *Service) unrevokeRegToken(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := s.accounts.UnrevokeRegistrationToken(ctx, &accountsv1.UnrevokeRegistrationTokenRequest{TokenId: id})
	if errs.KindOf(err) == errs.KindFailedPrecondition {
		return reply{}, badRequest("Registration token ID " + id + " is not revoked")
	}
	if err != nil {
		return reply{}, notFound(err, "Registration token", id)
	}
	return s.regTokenReply(http.StatusOK, resp.GetRegistrationToken(), ""), nil
}
