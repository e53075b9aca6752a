package accounts

import (
	"context"
	"time"

	"gatehouse.dev/platform/activity"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Browser session activity is not written per request: authenticating a
// session only notes, in this process's memory, when and from where it was
// used. Every flush interval (DefaultActivityFlushInterval), and once more when
// Run's context ends, the notes are appended as one BrowserSessionsActive event
// on a subject of its own (accounts.activity.<ulid>), which the
// browser_sessions projection applies to last_active_at and ip_address. So a
// busy server appends one small event every 30 seconds instead of one per page
// view, and replicas never contend for a session's subject. What a process
// noted but had not flushed when it crashed is lost: a session then looks
// idle since its previous flush, which only matters near the 7-day idle limit.

// DefaultActivityFlushInterval is how often session activity is written.
const DefaultActivityFlushInterval = 30 * time.Second

// maxActivityEntries bounds one BrowserSessionsActive event (about 60 bytes an
// entry, well under JetStream's message size limit); more sessions touched in
// one interval are written as several events.
const maxActivityEntries = 2000

// activityFlushTimeout bounds the last flush after Run's context ended.
const activityFlushTimeout = 10 * time.Second

// runActivity flushes session activity every interval until ctx ends, then
// once more.
func (s *Service) runActivity(ctx context.Context) {
	activity.Run(ctx, s.flushEvery, activityFlushTimeout, s.flushActivity)
}

// flushActivity appends the notes taken since the last flush as
// BrowserSessionsActive events. Notes that could not be written are kept for
// the next flush.
func (s *Service) flushActivity(ctx context.Context) {
	err := s.activity.Flush(ctx, maxActivityEntries, func(ctx context.Context, sessionIDs []string, notes map[string]activity.Note) error {
		ev := &eventsv1.BrowserSessionsActive{}
		for _, id := range sessionIDs {
			n := notes[id]
			ev.Entries = append(ev.Entries, &eventsv1.BrowserSessionsActive_Entry{SessionId: id, UserId: n.Owner, IpAddress: n.IP, LastActiveUnix: n.At.Unix()})
		}
		// Each address under its session's user's key; a user erased
		// meanwhile keeps only the time.
		ref := eventlog.Ref{Type: activityAggregate, ID: ids.New()}
		sealed, err := s.personal.SealDroppingErased(ctx, ev, s.log.Subject(ref), personal.NoOwner)
		if err != nil {
			return err
		}
		_, err = s.log.Append(ctx, eventlog.Write{
			Expect: eventlog.ExpectNew(), TTL: s.browserTTL(), // every session it names started before it (browser_retention.go)
			Event: eventlog.Event{Aggregate: ref, Actor: "system", Payload: sealed},
		})
		return err
	})
	if err != nil {
		s.logger.WarnContext(ctx, "browser session activity not written; keeping it for the next flush", "err", err)
	}
}
