package accounts

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/paging"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Users' sessions of the token service, for the admin API's user filters
// (MAS's filter[active-oauth2-client], filter[has-active-oauth2-session] and
// filter[has-active-compat-session]). The sessions are the token service's:
// this service follows its stream (TOKEN, token.session.*), never its tables.
//
// A session is live from its SessionStarted (or SessionImported) until its
// SessionEnded, as the admin API's sessions list counts it (filter[status]=
// active): a session ends in no other way. Every way it ends is a
// SessionEnded the token service appends: revocation, logout, a refresh
// token used twice, an administrator, a replaced compat device, tokens never
// delivered, the account changes its account_sessions reactor follows
// (deactivation, erasure, a password reset by recovery), its last token's
// expiry when it can be given no more (an OAuth session without a refresh
// token) and, when the deployment sets it, a session unused for too long.
// With compact_sessions, TOKEN drops an ended session
// oauth.ended_session_retention after its end, and so does this read model
// (Config.EndedTokenSessionRetention, sweepTokenSessions), so that a rebuild
// equals it.

// tokenSessionsProjection is the name of the read model.
const tokenSessionsProjection = "user_token_sessions"

// maxFilterClients bounds the clients one filter[active-oauth2-client] names.
const maxFilterClients = 100

// tokenSessionCatchUp bounds how long a filtered list waits for the read
// model to hold every session event appended before it was asked.
const tokenSessionCatchUp = 5 * time.Second

// tokenSessionsReadModel keeps user_token_sessions: one row per OAuth 2.0
// ("oauth") or compatibility ("compat") session of a user, with whether it
// ended. The row stays when the session ends, so that its start, delivered
// again, does not bring it back.
func tokenSessionsReadModel(token *eventlog.Log) projection.Projection {
	return projection.Projection{
		Name:     tokenSessionsProjection,
		Source:   token,
		Subjects: []string{eventsv1.TokenSession.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			return applyTokenSessions(ctx, tx, []eventlog.Record{rec})
		},
		ApplyBatch: applyTokenSessions,
		Batch:      importBatch, // an import starts sessions by the thousand
		Tables:     []string{"user_token_sessions"},
	}
}

// applyTokenSessions applies events in two statements: the sessions they
// start, then the ones they end. That is the same as applying them in turn:
// a session's end always follows its start, and a start delivered again
// changes nothing.
func applyTokenSessions(ctx context.Context, tx pgx.Tx, recs []eventlog.Record) error {
	var sessions, users, kinds, clients, ended []string
	var endedAt []time.Time
	for _, rec := range recs {
		id, started, end, ok := eventsv1.SessionOf(rec.Event)
		if !ok {
			if err := eventlog.Unhandled(rec); err != nil {
				return err
			}
		}
		if end {
			ended, endedAt = append(ended, id), append(endedAt, rec.OccurredAt())
		}
		if k := started.GetKind(); started.GetUserId() != "" && (k == "oauth" || k == "compat") {
			sessions, users = append(sessions, id), append(users, started.GetUserId())
			kinds, clients = append(kinds, k), append(clients, started.GetClientId())
		}
	}
	if len(sessions) > 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO user_token_sessions (session_id, user_id, kind, client_id)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
			ON CONFLICT (session_id) DO NOTHING`, sessions, users, kinds, clients); err != nil {
			return fmt.Errorf("token sessions: start: %w", err)
		}
	}
	if len(ended) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE user_token_sessions t SET ended = true, ended_at = e.at
			FROM unnest($1::text[], $2::timestamptz[]) AS e(id, at) WHERE t.session_id = e.id AND NOT t.ended`, ended, endedAt); err != nil {
			return fmt.Errorf("token sessions: end: %w", err)
		}
	}
	return nil
}

// liveSession is the condition that a user (a row of users) has a live
// session of the kind; more narrows the session further.
func liveSession(kind, more string) string {
	return `EXISTS (SELECT 1 FROM user_token_sessions t WHERE t.user_id = users.id AND NOT t.ended AND t.kind = '` + kind + `'` + more + `)`
}

// filterBySessions adds the session filters of a list of users to q and
// reports whether there was one.
func filterBySessions(q *paging.Query, req *accountsv1.ListUsersRequest) (bool, error) {
	clients := req.GetActiveOauth2Clients()
	if len(clients) > maxFilterClients {
		return false, errs.InvalidField("active_oauth2_clients", fmt.Sprintf("at most %d clients", maxFilterClients))
	}
	q.WhereIf(len(clients) > 0, liveSession("oauth", " AND t.client_id = ANY(?)"), clients)
	for _, f := range []struct {
		has  *bool
		kind string
	}{{req.HasActiveOauth2Session, "oauth"}, {req.HasActiveCompatSession, "compat"}} {
		if f.has != nil {
			q.WhereIf(*f.has, liveSession(f.kind, "")).WhereIf(!*f.has, "NOT "+liveSession(f.kind, ""))
		}
	}
	return len(clients) > 0 || req.HasActiveOauth2Session != nil || req.HasActiveCompatSession != nil, nil
}

// catchUpTokenSessions waits, briefly, until the read model holds every
// session event the token service appended before now, so that an
// administrator who just ended a session does not find it live.
func (s *Service) catchUpTokenSessions(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, tokenSessionCatchUp)
	defer cancel()
	head, err := s.projections.Head(ctx, tokenSessionsProjection)
	if err == nil && head > 0 {
		err = s.projections.WaitFor(ctx, tokenSessionsProjection, head)
	}
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, "The users' sessions cannot be read right now.", err)
	}
	return nil
}

// sweepTokenSessionsEvery is how often the rows of long-ended sessions go.
const sweepTokenSessionsEvery = time.Hour

// sweepTokenSessions drops, every sweepTokenSessionsEvery until ctx ends, the
// sessions ended longer ago than Config.EndedTokenSessionRetention (none
// when it is 0: TOKEN keeps them).
func (s *Service) sweepTokenSessions(ctx context.Context) {
	if s.cfg.EndedTokenSessionRetention <= 0 {
		return
	}
	pg.Every(ctx, sweepTokenSessionsEvery, s.logger, "dropped users' long-ended token sessions", func(ctx context.Context) (int64, error) {
		return s.dropEndedTokenSessions(ctx, s.clock())
	})
}

// dropEndedTokenSessions deletes the sessions ended before now less the
// retention, and returns how many.
func (s *Service) dropEndedTokenSessions(ctx context.Context, now time.Time) (int64, error) {
	return pg.DropBefore(ctx, s.pool, "user_token_sessions", "ended_at", now.Add(-s.cfg.EndedTokenSessionRetention))
}
