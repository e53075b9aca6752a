package token

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"gatehouse.dev/platform/httpx"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// introspection is the answer about one token. Inactive tokens carry nothing.
type introspection struct {
	Active    bool
	Info      tokenInfo
	TokenType string
}

// introspect looks a token up without writing anything: malformed and forged
// tokens are refused by their MAC before any lookup, known tokens are
// answered from memory. A live token's session is noted as used, in memory
// only (activity.go); the caller is the homeserver, so no address is noted.
func (s *Service) introspect(ctx context.Context, token string) (introspection, error) {
	kind, err := s.minter.Parse(token)
	if err != nil {
		return introspection{}, nil
	}
	var tokenType string
	switch kind {
	case tokenfmt.AccessToken, tokenfmt.CompatAccessToken, tokenfmt.PersonalToken:
		tokenType = "access_token"
	case tokenfmt.RefreshToken, tokenfmt.CompatRefreshToken:
		tokenType = "refresh_token"
	default:
		return introspection{}, nil
	}
	info, live, err := s.index.lookup(ctx, tokenfmt.HashString(token))
	if err != nil || !live || info.Kind != tokenType {
		return introspection{}, err
	}
	s.activity.Touch(info.SessionID, info.UserID, "", s.now())
	return introspection{Active: true, Info: info, TokenType: tokenType}, nil
}

// matrixScopeTwins adds the stable or unstable twin of every Matrix scope, as
// homeservers may check either form.
func matrixScopeTwins(scope string) string {
	const stable, unstable = "urn:matrix:client:", "urn:matrix:org.matrix.msc2967.client:"
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range strings.Fields(scope) {
		add(s)
		if rest, ok := strings.CutPrefix(s, stable); ok {
			add(unstable + rest)
		} else if rest, ok := strings.CutPrefix(s, unstable); ok {
			add(stable + rest)
		}
	}
	return strings.Join(out, " ")
}

// handleIntrospect is RFC 7662 introspection, authenticated by a client or by
// the homeserver's shared secret as Synapse sends it.
func (s *Service) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	form, oe := readForm(w, r)
	if oe != nil {
		writeError(w, oe)
		return
	}
	if !s.homeserverAuthorized(r) {
		// A public client proves nothing by naming its client_id (RFC 7662 §2.1).
		if c, oe := s.authenticateClient(r.Context(), r, form); oe != nil || c.Meta.AuthMethod == "none" {
			if oe == nil || oe.code != "temporarily_unavailable" {
				oe = invalidClient("introspection needs client authentication or the homeserver's secret")
			}
			writeError(w, oe)
			return
		}
	}
	token := form.Get("token")
	if token == "" {
		writeError(w, invalidRequest("token is required"))
		return
	}
	res, err := s.introspect(r.Context(), token)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "introspection failed", "err", err)
		writeError(w, &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "introspection is unavailable right now"})
		return
	}
	if !res.Active {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	i := res.Info
	body := map[string]any{
		"active":     true,
		"scope":      matrixScopeTwins(i.Scope),
		"client_id":  i.ClientID,
		"token_type": res.TokenType,
		"iat":        i.IssuedAt.Unix(),
	}
	if i.UserID != "" {
		body["sub"] = i.UserID
		body["username"] = i.Username
	}
	if !i.ExpiresAt.IsZero() {
		body["exp"] = i.ExpiresAt.Unix()
		body["expires_in"] = int64(time.Until(i.ExpiresAt).Seconds())
	}
	if i.DeviceID != "" && r.Header.Get("X-MAS-Supports-Device-Id") == "1" {
		body["device_id"] = i.DeviceID
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

// homeserverAuthorized reports whether the request carries the homeserver's
// shared secret as a bearer token (compared in constant time).
func (s *Service) homeserverAuthorized(r *http.Request) bool {
	if s.cfg.MatrixSecret == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.MatrixSecret)) == 1
}

// toProto is the gRPC form of an introspection.
func (res introspection) toProto() *tokenv1.IntrospectResponse {
	if !res.Active {
		return &tokenv1.IntrospectResponse{}
	}
	i := res.Info
	out := &tokenv1.IntrospectResponse{
		Active: true, Scope: matrixScopeTwins(i.Scope), ClientId: i.ClientID, Sub: i.UserID, Username: i.Username,
		DeviceId: i.DeviceID, TokenType: res.TokenType, Iat: timestamp(i.IssuedAt), SessionId: i.SessionID,
	}
	if !i.ExpiresAt.IsZero() {
		out.Exp = timestamp(i.ExpiresAt)
	}
	return out
}
