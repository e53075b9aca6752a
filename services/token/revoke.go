package token

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/oautherr"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// handleRevoke is RFC 7009 revocation. Revoking any token of a session ends
// the whole session (MSC4254, as MAS does). An unknown token is a success; a
// storage failure is a 503, never a false success.
func (s *Service) handleRevoke(w http.ResponseWriter, r *http.Request) (any, error) {
	form, c, err := s.clientRequest(w, r)
	if err != nil {
		return nil, err
	}
	token := form.Get("token")
	if token == "" {
		return nil, oautherr.New(oautherr.InvalidRequest, "token is required")
	}
	if err := s.revoke(r.Context(), token, c.ID); err != nil {
		return nil, errs.Classify(err, errs.KindUnavailable, "the token could not be revoked right now; try again")
	}
	return map[string]any{}, nil
}

// revoke ends the session of a token. clientID, when set, must be the
// client the token was issued to.
func (s *Service) revoke(ctx context.Context, token, clientID string) error {
	if _, err := s.parseToken(token); err != nil {
		return nil // not one of ours: nothing to revoke
	}
	var sessionID, owner string
	hash := tokenfmt.HashString(token)
	err := s.pool.QueryRow(ctx, `SELECT s.session_id, s.client_id FROM tokens t JOIN sessions s USING (session_id) WHERE t.token_hash = $1`,
		hash).Scan(&sessionID, &owner)
	if errors.Is(err, pgx.ErrNoRows) {
		// Issued a moment ago, perhaps by another replica, and not in the
		// read model yet: the index follows the stream, and catches up with
		// it on a miss.
		info, live, err := s.index.lookup(ctx, hash)
		if err != nil || !live {
			return err
		}
		sessionID, owner = info.SessionID, info.ClientID
	} else if err != nil {
		return err
	}
	if clientID != "" && owner != clientID {
		return oautherr.New(oautherr.UnauthorizedClient, "the token was issued to another client")
	}
	actor := "client:" + clientID
	if clientID == "" {
		actor = caller.Actor(ctx)
	}
	return s.endSession(ctx, sessionID, "revoked", actor)
}
