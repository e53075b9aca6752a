package token

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// browserLogouts is the reactor that ends the OAuth and compat sessions
// started from a browser session that ended with end_started_sessions: an
// upstream identity provider's back-channel logout, for a provider set to
// logout_all. Each session records the browser session it was started from
// (SessionStarted.browser_session_id: the grant's, the device approval's or
// the login token's). Only sessions started before the event end, so a
// replay never ends a later one; ending is idempotent.
const browserLogouts = "browser_logouts"

func (s *Service) browserLogoutsReactor() projection.Reactor {
	return projection.Reactor{
		Name:     browserLogouts,
		Source:   s.accountsLog,
		Subjects: []string{eventsv1.AccountsBrowser.Subjects()},
		Handle:   s.endSessionsOfBrowser,
		RetryMax: accountChangeWait / 3,
	}
}

func (s *Service) endSessionsOfBrowser(ctx context.Context, rec eventlog.Record) error {
	switch ev := rec.Event.(type) {
	case *eventsv1.BrowserSessionStarted, *eventsv1.BrowserSessionReauthenticated:
		return nil // nothing to end
	case *eventsv1.BrowserSessionEnded:
		if !ev.GetEndStartedSessions() {
			return nil // a sign-out of the browser leaves the applications signed in
		}
		return s.endSessionsWhere(ctx, `browser_session_id = $1 AND ended_at IS NULL AND created_at <= $2`,
			[]any{ev.GetSessionId(), rec.OccurredAt()}, ev.GetReason(), "browser session "+ev.GetSessionId())
	default:
		return eventlog.Unhandled(rec)
	}
}

// endSessionsWhere ends the live sessions a condition selects, once the
// sessions read model holds every session started so far.
func (s *Service) endSessionsWhere(ctx context.Context, cond string, args []any, reason, what string) error {
	last, err := s.log.LastSeqOf(ctx, eventsv1.TokenSession.Subjects())
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, accountChangeWait)
	defer cancel()
	if err := s.projections.WaitFor(wctx, sessionsProjection, last); err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, `SELECT session_id FROM sessions WHERE `+cond, args...)
	if err != nil {
		return fmt.Errorf("list the sessions of %s: %w", what, err)
	}
	sessions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the sessions of %s: %w", what, err)
	}
	for _, id := range sessions {
		if err := s.endSession(ctx, id, reason, "system:accounts"); err != nil {
			return fmt.Errorf("end session %s: %w", id, err)
		}
	}
	if len(sessions) > 0 {
		s.logger.InfoContext(ctx, "sessions ended", "of", what, "reason", reason, "sessions", len(sessions))
	}
	return nil
}
