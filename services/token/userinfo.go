package token

import (
	"net/http"
	"strings"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/oautherr"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// handleUserinfo is the OpenID Connect UserInfo endpoint: sub and username,
// and email when the email scope was granted. Its refusals are RFC 6750's.
func (s *Service) handleUserinfo(w http.ResponseWriter, r *http.Request) (any, error) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, httpx.MethodNotAllowed(w, http.MethodGet, http.MethodPost)
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		// No credentials: a challenge without an error code (RFC 6750 §3.1).
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
		return nil, oautherr.New(oautherr.InvalidToken, "an access token is required")
	}
	res, err := s.introspect(r.Context(), token, false)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "try again shortly", err)
	}
	if !res.Active || res.TokenType != "access_token" || res.Info.UserID == "" {
		return nil, oautherr.New(oautherr.InvalidToken, "the access token is invalid, expired or revoked")
	}
	body := map[string]any{"sub": res.Info.UserID, "username": res.Info.Username}
	if hasScope(res.Info.Scope, "email") {
		u, err := s.accounts.GetUser(r.Context(), &accountsv1.GetUserRequest{UserId: res.Info.UserID})
		if err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "try again shortly", err)
		}
		if e := u.GetUser().GetEmail(); e != "" {
			body["email"] = e
			body["email_verified"] = false
		}
	}
	return body, nil
}
