package token

import (
	"context"
	"errors"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/services/token/internal/session"
)

// Requests that fail after appending. A token request appends its session's
// first event (or a rotation) before it answers: when something fails after
// that — the read model does not catch up within the request's deadline
// because PostgreSQL is down, the client goes away — the client gets an
// error and never the tokens, and the session would stay behind, alive and
// usable by nobody (issue 17: 992 such sessions in one test). So the request
// ends it: SessionEnded, reason abandonReason, appended in the background
// with only the event log needed (retried for a while if NATS is away too),
// and forgotten by this replica's index at once. A process that crashes
// between the append and its answer leaves that one session; its access
// token expires with oauth.access_token_ttl.

// abandonReason is the end reason of a session whose tokens never reached
// the client.
const abandonReason = "not_delivered"

// abandonFor bounds how long the end of an abandoned session is retried.
const abandonFor = 2 * time.Minute

// abandon ends a session whose token response failed after its event was
// appended; cause is why the request failed.
func (s *Service) abandon(ctx context.Context, sessionID string, cause error) {
	s.index.markEnded(sessionID)
	s.logger.WarnContext(ctx, "token request failed after its session was recorded; ending the session", "session_id", sessionID, "err", cause)
	go s.endAbandoned(context.WithoutCancel(ctx), sessionID)
}

// endAbandoned appends the end of an abandoned session, retrying until it
// is recorded or abandonFor passes. A session the log does not hold (the
// append that failed did not land) needs nothing.
func (s *Service) endAbandoned(ctx context.Context, sessionID string) {
	ctx, cancel := context.WithTimeout(ctx, abandonFor)
	defer cancel()
	ref := sessionRef(sessionID)
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		_, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
			st := session.Fold(history)
			decided, err := session.End(st, abandonReason)
			if err != nil || len(decided) == 0 {
				return nil, err
			}
			return s.sessionWrites(ctx, ref, "system:token", st, version, decided...)
		})
		if err == nil || errs.KindOf(err) == errs.KindNotFound {
			return
		}
		if !sleep(ctx, backoff) {
			if !errors.Is(ctx.Err(), context.Canceled) {
				s.logger.Error("could not end a session whose tokens were never delivered", "session_id", sessionID, "err", err)
			}
			return
		}
	}
}
