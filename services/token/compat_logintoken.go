package token

import (
	"context"
	"time"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/compat"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// Login tokens (m.login.token) let a user who signed in on the web hand a
// compat client one login: 32 random characters, valid 30 seconds, used
// once. Each is an aggregate token.logintoken.<sha256 of the token> —
// LoginTokenIssued (expected empty), then LoginTokenUsed appended with the
// expected version, so of two concurrent uses exactly one logs in, on any
// replica. Nothing but the hash is stored, and nothing needs a read model:
// the token's subject is found from the token itself. With
// Config.CompactSessions, each of its events expires after
// Config.EndedSessionRetention (loginTokenTTL), as an ended session's end
// does: a token is spent or past its 30 seconds long before, and its
// subject would otherwise stay in the stream for ever, one for each login.

// loginTokenRef is the aggregate of a login token: its id is the SHA-256
// (hex) of the token, so the token itself is never stored.
func loginTokenRef(token string) eventlog.Ref {
	return eventlog.Ref{Type: eventsv1.TokenLoginToken.Type, ID: tokenfmt.HashString(token)}
}

// CreateLoginToken issues a login token for the signed-in person whose
// browser session came with the call (the web service's SSO page).
func (g *grpcServer) CreateLoginToken(ctx context.Context, _ *tokenv1.CreateLoginTokenRequest) (*tokenv1.CreateLoginTokenResponse, error) {
	user, err := caller.SignedIn(ctx)
	if err != nil {
		return nil, err
	}
	if !ids.Valid(user.ID) || user.Username == "" || len(user.Username) > maxLocalpart {
		return nil, errs.Internalf("browser session of an unexpected user %q", user.ID)
	}
	s := g.svc
	token := ids.Token(compat.LoginTokenLen)
	issued := compat.IssueLoginToken(user.ID, user.Username, user.Admin, s.now())
	issued.BrowserSessionId = user.SessionID // a back-channel logout that ends it may end the compat session too
	if _, err := s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), TTL: s.loginTokenTTL(), Event: eventlog.Event{
		Aggregate: loginTokenRef(token), Actor: caller.Actor(ctx), Payload: issued,
	}}); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The login token could not be issued right now.", err)
	}
	return &tokenv1.CreateLoginTokenResponse{LoginToken: token, ExpiresAt: issued.GetExpiresAt()}, nil
}

// loginTokenTTL is how long a login token's events stay in the stream: the
// retention of ended sessions when compacting; for ever (0) otherwise.
func (s *Service) loginTokenTTL() time.Duration {
	if !s.cfg.CompactSessions {
		return 0
	}
	return s.cfg.EndedSessionRetention
}

// useLoginToken spends a login token on the session sessionID and returns
// whom it logs in. The user must still be active; the session is an
// administrator's only if the token said so and the user still is one.
func (s *Service) useLoginToken(ctx context.Context, token, sessionID string) (compatUser, error) {
	if !compat.WellFormedLoginToken(token) {
		return compatUser{}, compat.Forbidden("Invalid login token.")
	}
	ref := loginTokenRef(token)
	var lt compat.LoginToken
	_, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		lt = compat.FoldLoginToken(history)
		used, e := compat.UseLoginToken(lt, sessionID, s.now())
		if e != nil {
			return nil, e
		}
		writes := eventlog.Writes(ref, "user:"+lt.Issued.GetUserId(), version, used)
		writes[0].TTL = s.loginTokenTTL()
		return writes, nil
	})
	if err != nil {
		return compatUser{}, err
	}
	resp, err := s.accounts.GetUser(ctx, &accountsv1.GetUserRequest{UserId: lt.Issued.GetUserId()})
	if errs.KindOf(err) == errs.KindNotFound {
		return compatUser{}, compat.Forbidden("Invalid login token.")
	}
	if err != nil {
		return compatUser{}, err
	}
	u := resp.GetUser()
	switch {
	case u.GetDeactivated():
		return compatUser{}, compat.UserDeactivated()
	case u.GetLocked():
		return compatUser{}, compat.UserLocked()
	}
	return compatUser{id: u.GetId(), username: u.GetUsername(), admin: lt.Issued.GetAdmin() && u.GetAdmin(), browserSession: lt.Issued.GetBrowserSessionId()}, nil
}
