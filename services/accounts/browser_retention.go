package accounts

import (
	"context"
	"time"

	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/services/accounts/internal/browser"
)

// Browser sessions that can no longer be used leave (issue 16). A browser
// session lasts at most browser.MaxAge from its start, so every event
// appended to one (its start, re-authentications, its end) and every
// activity batch carries a message TTL of MaxAge plus
// Config.EndedSessionRetention (browserTTL): by then the session has been
// over for at least the retention, and every session a batch mentions
// started before it. The read model drops sessions started longer ago at
// the same age (sweepBrowserSessions, hourly), so a rebuild, which finds
// only the events still in the stream, equals it; an end or a batch that
// outlives its session's start finds no row, live or rebuilt. Without it,
// every sign-in kept a subject of ACCOUNTS and a row for ever.

// sweepBrowserSessionsEvery is how often the read model drops the browser
// sessions past the retention.
const sweepBrowserSessionsEvery = time.Hour

// browserTTL is how long the events of a browser session, and activity
// batches, stay in the stream.
func (s *Service) browserTTL() time.Duration { return browser.MaxAge + s.endedRetention() }

// endedRetention is how long a browser session stays listed once it can no
// longer be used.
func (s *Service) endedRetention() time.Duration {
	if s.cfg.EndedSessionRetention > 0 {
		return s.cfg.EndedSessionRetention
	}
	return config.DefaultEndedSessionRetention
}

// sweepBrowserSessions drops, every sweepBrowserSessionsEvery until ctx
// ends, the browser sessions whose events have left the stream.
func (s *Service) sweepBrowserSessions(ctx context.Context) {
	pg.Every(ctx, sweepBrowserSessionsEvery, s.logger, "dropped browser sessions past their retention", func(ctx context.Context) (int64, error) {
		return s.dropOldBrowserSessions(ctx, s.clock())
	})
}

// dropOldBrowserSessions deletes the browser sessions started more than
// browserTTL before now, and returns how many.
func (s *Service) dropOldBrowserSessions(ctx context.Context, now time.Time) (int64, error) {
	return pg.DropBefore(ctx, s.pool, "browser_sessions", "created_at", now.Add(-s.browserTTL()))
}
