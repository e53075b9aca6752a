package token

import (
	"context"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/errs"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/compat"
	"gatehouse.dev/services/token/internal/session"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// mintCompat mints a compat token pair. Without a refresh token the access
// token never expires (as Synapse's own logins did); with one, it lives as
// long as an OAuth access token.
func (s *Service) mintCompat(sessionID string, withRefresh bool) pair {
	p := pair{access: s.minter.New(tokenfmt.CompatAccessToken)}
	p.issued = &eventsv1.TokensIssued{SessionId: sessionID, AccessHash: tokenfmt.HashString(p.access)}
	if withRefresh {
		p.expires = session.Expiry(s.now(), s.cfg.AccessTTL)
		p.issued.AccessExpiresAt = timestamppb.New(p.expires)
		p.refresh = s.minter.New(tokenfmt.CompatRefreshToken)
		p.issued.RefreshHash = tokenfmt.HashString(p.refresh)
	}
	return p
}

// compatCaller is the live compat session of the request's access token
// (Authorization: Bearer, or the deprecated access_token query parameter).
// Any other token, an OAuth one included, is M_UNKNOWN_TOKEN: the compat API
// ends only compat sessions.
func (s *Service) compatCaller(r *http.Request) (tokenInfo, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = r.URL.Query().Get("access_token")
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return tokenInfo{}, compat.MissingToken()
	}
	unknown := compat.UnknownToken("Invalid access token.")
	if kind, err := s.parseToken(token); err != nil || kind != tokenfmt.CompatAccessToken {
		return tokenInfo{}, unknown
	}
	res, err := s.introspect(r.Context(), token, false)
	if err != nil {
		return tokenInfo{}, err
	}
	if !res.Active || res.TokenType != "access_token" {
		return tokenInfo{}, unknown
	}
	return res.Info, nil
}

// compatLogout is POST /logout: the caller's compat session ends.
func (s *Service) compatLogout(_ http.ResponseWriter, r *http.Request) (any, error) {
	caller, err := s.compatCaller(r)
	if err != nil {
		return nil, err
	}
	if err := s.endSession(r.Context(), caller.SessionID, "logout", "user:"+caller.UserID); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

// compatLogoutAll is POST /logout/all: every compat session of the caller's
// user ends. OAuth sessions do not — they end from the account page or by
// revocation — so, as MAS does, the endpoint answers 404 M_UNRECOGNIZED
// unless the client says that is fine ("io.element.only_compat_is_fine").
func (s *Service) compatLogoutAll(w http.ResponseWriter, r *http.Request) (any, error) {
	caller, err := s.compatCaller(r)
	if err != nil {
		return nil, err
	}
	body, err := readMatrixBody(w, r)
	if err != nil {
		return nil, err
	}
	onlyCompat, e := compat.ParseLogoutAll(body)
	if e != nil {
		return nil, e
	}
	if !onlyCompat {
		return nil, compat.UnknownEndpoint(
			`This server cannot end OAuth sessions from /logout/all; send "io.element.only_compat_is_fine": true to end every compat session.`)
	}
	if err := s.endCompatSessions(r.Context(), caller.UserID, "", "", "logout_all", "user:"+caller.UserID); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

// endCompatSessions ends a user's live compat sessions — those on deviceID
// when it is set — except the session except.
func (s *Service) endCompatSessions(ctx context.Context, userID, deviceID, except, reason, actor string) error {
	rows, err := s.pool.Query(ctx, `
		SELECT session_id FROM sessions
		WHERE user_id = $1 AND kind = $2 AND ended_at IS NULL AND ($3 = '' OR device_id = $3) AND session_id <> $4`,
		userID, compatKind, deviceID, except)
	if err != nil {
		return err
	}
	sessions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range sessions {
		if err := s.endSession(ctx, id, reason, actor); err != nil {
			return err
		}
	}
	return nil
}

// compatRefresh is POST /refresh: the compat refresh token is rotated
// exactly as an OAuth one is (sessions.go, rotate). Every refusal is 401
// M_UNKNOWN_TOKEN with soft_logout false.
func (s *Service) compatRefresh(w http.ResponseWriter, r *http.Request) (any, error) {
	body, err := readMatrixBody(w, r)
	if err != nil {
		return nil, err
	}
	presented, e := compat.ParseRefresh(body)
	if e != nil {
		return nil, e
	}
	p, _, err := s.rotate(r.Context(), rotation{
		presented: presented, kind: tokenfmt.CompatRefreshToken, compat: true, clientID: compatClientID,
		next:  func(sessionID string) pair { return s.mintCompat(sessionID, true) },
		actor: func(st session.State) string { return "user:" + st.Started.GetUserId() },
		ip:    clientaddr.String(r),
	})
	s.measures.granted(r.Context(), "compat_refresh", err)
	if k := errs.KindOf(err); k == errs.KindFailedPrecondition || k == errs.KindNotFound {
		return nil, compat.UnknownToken(errs.PublicMessage(err))
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"access_token":  p.access,
		"refresh_token": p.refresh,
		"expires_in_ms": p.expires.Sub(s.now()).Milliseconds(),
	}, nil
}
