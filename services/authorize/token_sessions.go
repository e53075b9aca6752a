package authorize

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Clients' sessions of the token service, for the admin API's
// filter[has-active-sessions] of clients (MAS's). The sessions are the token
// service's: this service follows its stream (TOKEN, token.session.*), never
// its tables.
//
// An OAuth 2.0 session (kind "oauth", a person's, or "client_credentials",
// the client's own; as the admin API's OAuth 2.0 sessions list has them) is
// live from its SessionStarted until its SessionEnded, as that list's
// filter[status]=active counts it: a session ends in no other way. Every way
// it ends is a SessionEnded the token service appends: revocation, logout, a
// refresh token used twice, an administrator, tokens never delivered, the
// user's deactivation, erasure or password reset by recovery (its
// account_sessions reactor), its last token's expiry when it can be given no
// more (a client's own, a person's without a refresh token) and, when the
// deployment sets it, a person's session unused for too long. With
// compact_sessions, TOKEN drops an ended session oauth.ended_session_retention
// after its end (a client's own sooner, config.EndedClientSessionRetention),
// and so does this read model (Config.EndedSessionRetention and
// EndedClientSessionRetention, sweepTokenSessions), so that a rebuild
// equals it.

// tokenSessionsProjection is the name of the read model.
const tokenSessionsProjection = "client_token_sessions"

// tokenSessionsBatch is how many events one transaction applies at most: an
// import starts sessions by the thousand (none of them an OAuth 2.0 one).
const tokenSessionsBatch = 1000

// tokenSessionCatchUp bounds how long a filtered list waits for the read
// model to hold every session event appended before it was asked.
const tokenSessionCatchUp = 5 * time.Second

// tokenSessionsReadModel keeps client_token_sessions: one row per OAuth 2.0
// session of a client, with whether it ended. The row stays when the
// session ends, so that its start, delivered again, does not bring it back.
func tokenSessionsReadModel(token *eventlog.Log) projection.Projection {
	return projection.Projection{
		Name:     tokenSessionsProjection,
		Source:   token,
		Subjects: []string{eventsv1.TokenSession.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			return applyTokenSessions(ctx, tx, []eventlog.Record{rec})
		},
		ApplyBatch: applyTokenSessions,
		Batch:      tokenSessionsBatch,
		Tables:     []string{"client_token_sessions"},
		// A Synapse device is a compat session, no client's: an import's
		// sessions are stepped over undecoded.
		Ignores: []proto.Message{&eventsv1.SessionImported{}},
	}
}

// applyTokenSessions applies events in two statements: the sessions they
// start, then the ones they end. That is the same as applying them in turn:
// a session's end always follows its start, and a start delivered again
// changes nothing.
func applyTokenSessions(ctx context.Context, tx pgx.Tx, recs []eventlog.Record) error {
	var sessions, clients, kinds, ended []string
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
		// A Synapse device (SessionImported) is a compat session: no client's.
		if k := started.GetKind(); k == "oauth" || k == "client_credentials" {
			sessions, clients, kinds = append(sessions, id), append(clients, started.GetClientId()), append(kinds, k)
		}
	}
	if len(sessions) > 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO client_token_sessions (session_id, client_id, kind)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
			ON CONFLICT (session_id) DO NOTHING`, sessions, clients, kinds); err != nil {
			return fmt.Errorf("token sessions: start: %w", err)
		}
	}
	if len(ended) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE client_token_sessions t SET ended = true, ended_at = e.at
			FROM unnest($1::text[], $2::timestamptz[]) AS e(id, at) WHERE t.session_id = e.id AND NOT t.ended`, ended, endedAt); err != nil {
			return fmt.Errorf("token sessions: end: %w", err)
		}
	}
	return nil
}

// liveClientSession is the condition that a client (a row of every_client)
// has a live OAuth 2.0 session.
const liveClientSession = `EXISTS (SELECT 1 FROM client_token_sessions t WHERE t.client_id = every_client.client_id AND NOT t.ended)`

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
		return errs.Wrap(errs.KindUnavailable, "The clients' sessions cannot be read right now.", err)
	}
	return nil
}

// sweepTokenSessionsEvery is how often the rows of long-ended sessions go.
const sweepTokenSessionsEvery = time.Hour

// sweepTokenSessions drops, every sweepTokenSessionsEvery until ctx ends, the
// sessions ended longer ago than Config.EndedSessionRetention (none when it
// is 0: TOKEN keeps them).
func (s *Service) sweepTokenSessions(ctx context.Context) {
	if s.cfg.EndedSessionRetention <= 0 {
		return
	}
	pg.Every(ctx, sweepTokenSessionsEvery, s.logger, "dropped clients' long-ended sessions", func(ctx context.Context) (int64, error) {
		return s.dropEndedTokenSessions(ctx, s.now())
	})
}

// dropEndedTokenSessions deletes the sessions ended before now less the
// retention of their kind (a client's own goes sooner, as TOKEN drops it),
// and returns how many.
func (s *Service) dropEndedTokenSessions(ctx context.Context, now time.Time) (int64, error) {
	clients := s.cfg.EndedClientSessionRetention
	if clients <= 0 {
		clients = s.cfg.EndedSessionRetention
	}
	return pg.DropWhere(ctx, s.pool, "client_token_sessions", `ended_at < $1 OR (kind = 'client_credentials' AND ended_at < $2)`,
		now.Add(-s.cfg.EndedSessionRetention), now.Add(-clients))
}
