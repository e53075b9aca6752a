package token

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/session"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// What every kind of session shares: minting tokens, starting a session,
// rotating its refresh token, ending it. The grants (grant_*.go) and the
// Matrix compatibility API (compat*.go) start and refresh sessions only
// through these.

// unavailableMsg is the public message of the event log or the database failing.
const unavailableMsg = "The request could not be completed right now; try again."

// pair is a freshly minted token pair and its event.
type pair struct {
	access, refresh string
	issued          *eventsv1.TokensIssued
	expires         time.Time
}

// mint mints an OAuth token pair for a session: an access token living
// Config.AccessTTL and, withRefresh, a refresh token.
func (s *Service) mint(sessionID string, withRefresh bool) pair {
	p := pair{access: s.minter.New(tokenfmt.AccessToken), expires: session.Expiry(s.now(), s.cfg.AccessTTL)}
	p.issued = &eventsv1.TokensIssued{SessionId: sessionID, AccessHash: tokenfmt.HashString(p.access), AccessExpiresAt: timestamppb.New(p.expires)}
	if withRefresh {
		p.refresh = s.minter.New(tokenfmt.RefreshToken)
		p.issued.RefreshHash = tokenfmt.HashString(p.refresh)
	}
	return p
}

// start appends a session's first event and, when its tokens will be used
// through the read model (waitsForReadModel), waits until the read model
// holds them. A locked or deactivated user gets no session.
func (s *Service) start(ctx context.Context, ev *eventsv1.SessionStarted, actor string) error {
	if err := s.refuseBlocked(ctx, ev.GetUserId()); err != nil {
		return errs.Classify(err, errs.KindUnavailable, unavailableMsg)
	}
	// A user's address and user agent are sealed under the user's personal
	// key (a client acting for itself keeps them in clear); a user without a
	// key (erased meanwhile, or registered before personal keys and not yet
	// given one) gets a session without them.
	ref := sessionRef(ev.GetSessionId())
	sealed, err := s.personal.SealDroppingErased(ctx, ev, s.log.Subject(ref), personal.NoOwner)
	if err != nil {
		return errs.Classify(err, errs.KindUnavailable, unavailableMsg)
	}
	appended, err := s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
		Aggregate: ref, Actor: actor, Payload: sealed,
	}})
	if err == nil && waitsForReadModel(ev) {
		err = s.projections.WaitFor(ctx, sessionsProjection, appended.Last())
	}
	if err != nil {
		s.abandon(ctx, ev.GetSessionId(), err) // the append may have landed: no tokens go out (abandon.go)
		return errs.Classify(err, errs.KindUnavailable, unavailableMsg)
	}
	return s.provisionStarted(ctx, ev) // the homeserver gets the device before the tokens go out (homeserver.go)
}

// waitsForReadModel reports whether a session's tokens may go out only once
// the sessions read model holds it. Introspection and revocation never need
// it: the index follows the stream and catches up with it on a miss, and
// revocation falls back to the index. A refresh finds its token in the read
// model, and a user's session is on the user's pages and the homeserver's
// device list at once; a client acting for itself (client_credentials) has
// neither, and its tokens go out as soon as the start is stored: the read
// model applies a busy client's starts in larger batches, which halves the
// CPU per token (BenchmarkLoadExternal/client-credentials-wrk).
func waitsForReadModel(ev *eventsv1.SessionStarted) bool {
	return ev.GetUserId() != "" || ev.GetTokens().GetRefreshHash() != ""
}

// tokenResponse is the token endpoint's answer with a pair (RFC 6749 §5.1).
func (s *Service) tokenResponse(p pair, scope string) map[string]any {
	resp := map[string]any{
		"access_token": p.access,
		"token_type":   "Bearer",
		"expires_in":   int(time.Until(p.expires).Round(time.Second).Seconds()),
		"scope":        scope,
	}
	if p.refresh != "" {
		resp["refresh_token"] = p.refresh
	}
	return resp
}

// rotation is one use of a refresh token: OAuth's refresh_token grant or
// the compatibility API's /refresh.
type rotation struct {
	// presented is the refresh token.
	presented string
	// kind is the token kind it must be (RefreshToken, CompatRefreshToken).
	kind tokenfmt.Kind
	// compat says whether the session must be a compat session (or must not).
	compat bool
	// clientID is the client refreshing; its session must be this client's.
	clientID string
	// next mints the session's next pair.
	next func(sessionID string) pair
	// actor names who refreshes, for the session's events.
	actor func(session.State) string
	// ip is the client's address, noted as the session's activity.
	ip string
}

// rotate refreshes a session's tokens: decided on the session aggregate, so
// of two concurrent refreshes exactly one wins; a consumed refresh token
// presented again ends the session (MSC2964). Every refusal is a
// KindFailedPrecondition error (invalid_grant, M_UNKNOWN_TOKEN); it returns
// the new pair and the session as it was.
func (s *Service) rotate(ctx context.Context, rot rotation) (pair, session.State, error) {
	invalid := errs.FailedPrecondition("The refresh token is invalid.")
	if kind, err := s.parseToken(rot.presented); err != nil || kind != rot.kind {
		return pair{}, session.State{}, invalid
	}
	hash := tokenfmt.HashString(rot.presented)
	sessionID, used, err := refreshSession(ctx, s.pool, hash)
	if err != nil {
		return pair{}, session.State{}, errs.Wrap(errs.KindUnavailable, unavailableMsg, err)
	}
	if sessionID == "" {
		return pair{}, session.State{}, invalid
	}
	ref := sessionRef(sessionID)
	var (
		firstSeen uint64
		outcome   session.Outcome
		st        session.State
		p         = rot.next(sessionID)
	)
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		if firstSeen == 0 {
			firstSeen = version
		}
		st = session.Fold(history)
		if st.Exists() && (st.Started.GetKind() == compatKind) != rot.compat {
			return nil, invalid
		}
		if err := s.refuseBlocked(ctx, st.Started.GetUserId()); err != nil {
			return nil, err // a locked or deactivated user's session is not refreshed
		}
		decided, o, err := session.Refresh(st, session.Rotation{
			ClientID: rot.clientID, PresentedHash: hash, FirstSeen: firstSeen, Next: p.issued, Now: s.now(), Grace: s.cfg.RefreshReuseGrace,
		})
		outcome = o
		if o == session.Reused {
			err = nil // append the end of the session, then refuse
		}
		if err != nil {
			return nil, err
		}
		// The activity row read with the token's session: a retry after a
		// conflict keeps it, a last use at most that much older.
		return s.sessionWritesUsing(ctx, ref, rot.actor(st), st, used, version, decided...)
	})
	if err != nil {
		return pair{}, session.State{}, errs.Classify(err, errs.KindUnavailable, unavailableMsg)
	}
	if outcome == session.Reused {
		s.measures.reused(ctx, rot.compat)
		s.index.markEnded(sessionID)
		return pair{}, session.State{}, errs.FailedPrecondition("The refresh token has already been used; the session has been ended.")
	}
	s.index.markRevoked(st.CurrentAccess)
	s.activity.Touch(sessionID, st.Started.GetUserId(), rot.ip, s.now())
	if err := s.projections.WaitFor(ctx, sessionsProjection, appended.Last()); err != nil {
		s.abandon(ctx, sessionID, err) // the client keeps a rotated-out refresh token: nobody can use the session (abandon.go)
		return pair{}, session.State{}, errs.Classify(err, errs.KindUnavailable, unavailableMsg)
	}
	return p, st, nil
}

// refreshSession is the session a refresh token (by hash) was issued to,
// from the sessions read model, which holds every refresh token before it
// goes out (waitsForReadModel); "" when none. Whether the token still
// refreshes it is the session aggregate's to say. With it comes the
// session's activity row (its last use; zero without one), so that the
// refresh grant, which writes that last use into the rotation's state
// (withUse), asks the read model once.
func refreshSession(ctx context.Context, pool *pgxpool.Pool, hash string) (string, use, error) {
	var (
		sessionID string
		row       useRow
	)
	err := pool.QueryRow(ctx, `
		SELECT t.session_id, a.last_active_at, a.ip_address, a.ip_at
		FROM tokens t LEFT JOIN session_activity a ON a.session_id = t.session_id
		WHERE t.token_hash = $1 AND t.kind = 'refresh_token'`, hash).Scan(append([]any{&sessionID}, row.dest()...)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", use{}, nil
	case err != nil:
		return "", use{}, err
	}
	return sessionID, row.use(), nil
}

// endSession ends a session.
func (s *Service) endSession(ctx context.Context, sessionID, reason, actor string) error {
	if !ids.Valid(sessionID) {
		return errs.InvalidField("session_id", "session_id is not a session id")
	}
	ref := sessionRef(sessionID)
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := session.Fold(history)
		decided, err := session.End(st, reason)
		if err != nil {
			return nil, err
		}
		return s.sessionWrites(ctx, ref, actor, st, version, decided...)
	})
	if err != nil {
		return err
	}
	if appended.Last() > 0 {
		s.index.markEnded(sessionID) // this replica at once; the others through the stream
		return s.projections.WaitFor(ctx, sessionsProjection, appended.Last())
	}
	return nil
}

// sessionWrites are the writes of the events decided on a session's state
// st (at version): each carries the session's snapshot after it
// (session.WithState), so that the session's last event alone holds it. The
// start's address and user agent, sealed where the start was read from,
// are sealed again for their place in the snapshot. The last use the
// snapshot carries is what this replica knows (withKnownUse).
func (s *Service) sessionWrites(ctx context.Context, ref eventlog.Ref, actor string, st session.State, version uint64, decided ...proto.Message) ([]eventlog.Write, error) {
	if !st.Exists() || len(decided) == 0 {
		return eventlog.Writes(ref, actor, version, decided...), nil
	}
	u, err := readLastUse(ctx, s.pool, st.Started.GetSessionId()) // activity_projection.go
	if err != nil {
		return nil, err
	}
	return s.sessionWritesUsing(ctx, ref, actor, st, u, version, decided...)
}

// sessionWritesUsing is sessionWrites with the session's activity row
// already read (u).
func (s *Service) sessionWritesUsing(ctx context.Context, ref eventlog.Ref, actor string, st session.State, u use, version uint64, decided ...proto.Message) ([]eventlog.Write, error) {
	if !st.Exists() || len(decided) == 0 {
		return eventlog.Writes(ref, actor, version, decided...), nil
	}
	st = s.withUse(st, u) // activity_fold.go
	events := session.WithState(st, version, s.now(), decided)
	writes := make([]eventlog.Write, len(events))
	for i, ev := range events {
		sealed, err := resealSnapshot(ctx, s.personal, s.log.Subject(ref), st, ev)
		if err != nil {
			return nil, err
		}
		writes[i] = eventlog.Write{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{Aggregate: ref, Actor: actor, Payload: sealed}}
		if _, ended := ev.(*eventsv1.SessionEnded); ended && s.cfg.CompactSessions { //eventcheck:partial — only an end expires
			writes[i].TTL = s.cfg.endedRetention(st.Started.GetKind()) // the session's subject goes once no token of it can be live (compaction.go)
		}
	}
	return writes, nil
}

// hasScope reports whether the space-separated scope holds tok.
func hasScope(scope, tok string) bool {
	for _, s := range strings.Fields(scope) {
		if s == tok {
			return true
		}
	}
	return false
}

// deviceOf extracts the Matrix device id from a granted scope.
func deviceOf(scope string) string {
	for _, s := range strings.Fields(scope) {
		for _, prefix := range []string{"urn:matrix:client:device:", "urn:matrix:org.matrix.msc2967.client:device:"} {
			if id, ok := strings.CutPrefix(s, prefix); ok {
				return id
			}
		}
	}
	return ""
}
