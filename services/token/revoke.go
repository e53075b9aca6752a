package token

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// handleRevoke is RFC 7009 revocation. Revoking any token of a session ends
// the whole session (MSC4254, as MAS does). An unknown token is a success; a
// storage failure is a 503, never a false success.
func (s *Service) handleRevoke(w http.ResponseWriter, r *http.Request) {
	form, c, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	token := form.Get("token")
	if token == "" {
		writeError(w, invalidRequest("token is required"))
		return
	}
	if err := s.revoke(r.Context(), token, c.ID); err != nil {
		var oe *oauthError
		if errors.As(err, &oe) {
			writeError(w, oe)
			return
		}
		s.logger.ErrorContext(r.Context(), "revocation failed", "err", err)
		writeError(w, &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "the token could not be revoked right now; try again"})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{})
}

// revoke ends the session of a token. clientID, when set, must be the
// client the token was issued to.
func (s *Service) revoke(ctx context.Context, token, clientID string) error {
	if _, err := s.minter.Parse(token); err != nil {
		return nil // not one of ours: nothing to revoke
	}
	var sessionID, owner string
	err := s.pool.QueryRow(ctx, `SELECT s.session_id, s.client_id FROM tokens t JOIN sessions s USING (session_id) WHERE t.token_hash = $1`,
		tokenfmt.HashString(token)).Scan(&sessionID, &owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if clientID != "" && owner != clientID {
		return &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", description: "the token was issued to another client"}
	}
	actor := "client:" + clientID
	if clientID == "" {
		actor = caller.Actor(ctx)
	}
	return s.endSession(ctx, sessionID, "revoked", actor)
}
