package token

import (
	"net/http"
	"strings"

	"gatehouse.dev/platform/httpx"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// handleUserinfo is the OpenID Connect UserInfo endpoint: sub and username,
// and email when the email scope was granted.
func (s *Service) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		httpx.WriteOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET or POST")
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
		httpx.WriteOAuthError(w, http.StatusUnauthorized, "invalid_token", "an access token is required")
		return
	}
	res, err := s.introspect(r.Context(), token)
	if err != nil {
		httpx.WriteOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again shortly")
		return
	}
	if !res.Active || res.TokenType != "access_token" || res.Info.UserID == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="invalid_token"`)
		httpx.WriteOAuthError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		return
	}
	body := map[string]any{"sub": res.Info.UserID, "username": res.Info.Username}
	if hasScope(res.Info.Scope, "email") {
		u, err := s.accounts.GetUser(r.Context(), &accountsv1.GetUserRequest{UserId: res.Info.UserID})
		if err != nil {
			httpx.WriteOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again shortly")
			return
		}
		if e := u.GetUser().GetEmail(); e != "" {
			body["email"] = e
			body["email_verified"] = false
		}
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}
