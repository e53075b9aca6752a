package token

import (
	"context"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"gatehouse.dev/platform/activity"
	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Session activity is not written per request, as the browser sessions' is
// not (services/accounts/activity.go): a live introspection of a token (HTTP
// or gRPC) and a refresh only note, in this process's memory, when its session
// was used. Every flush interval (Config.ActivityFlushInterval) and once more
// when Run's context ends, the notes are appended as one SessionsActive event
// on a subject of its own (token.activity.<ulid>), which the sessions
// projection applies to last_active_at and ip_address. Introspection is the
// homeserver asking, so it notes only the time; a refresh, like the login
// (SessionStarted), also notes the client's address. What a process noted but
// had not flushed when it crashed is lost. A batch is kept
// Config.ActivityRetention (activity_fold.go).

// DefaultActivityFlushInterval is how often session activity is written.
const DefaultActivityFlushInterval = 5 * time.Minute

// activityAggregate is one batch of session activity.
var activityAggregate = eventsv1.TokenActivity.Type

// maxActivityEntries bounds one SessionsActive event; more sessions used in
// one interval are written as several events.
const maxActivityEntries = 2000

// activityFlushTimeout bounds the last flush after Run's context ended.
const activityFlushTimeout = 10 * time.Second

// maxUserAgent bounds the User-Agent kept with a session.
const maxUserAgent = 512

// origin is where a request that starts or refreshes a session came from.
type origin struct {
	ip, userAgent string
}

// originOf is the request's client address (behind the trusted proxies,
// platform/clientaddr) and User-Agent.
func originOf(r *http.Request) origin {
	return origin{ip: clientaddr.String(r), userAgent: truncateUTF8(r.UserAgent(), maxUserAgent)}
}

// truncateUTF8 makes s valid UTF-8 (event strings must be) and cuts it to at
// most n bytes on a character boundary.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// runActivity flushes session activity every interval until ctx ends, then
// once more.
func (s *Service) runActivity(ctx context.Context) {
	activity.Run(ctx, s.cfg.ActivityFlushInterval, activityFlushTimeout, s.flushActivity)
}

// flushActivity appends the notes taken since the last flush as
// SessionsActive events of at most maxActivityEntries entries. Notes that
// could not be written are kept for the next flush.
func (s *Service) flushActivity(ctx context.Context) {
	err := s.activity.Flush(ctx, maxActivityEntries, func(ctx context.Context, sessionIDs []string, notes map[string]activity.Note) error {
		ev := &eventsv1.SessionsActive{}
		for _, id := range sessionIDs {
			n := notes[id]
			ev.Entries = append(ev.Entries, &eventsv1.SessionsActive_Entry{SessionId: id, UserId: n.Owner, LastActiveUnix: n.At.Unix(), IpAddress: n.IP})
		}
		// Each address under its session's user's personal key; a user
		// erased meanwhile (or without a key yet) keeps only the time.
		ref := eventlog.Ref{Type: activityAggregate, ID: ids.New()}
		sealed, err := s.personal.SealDroppingErased(ctx, ev, s.log.Subject(ref), personal.NoOwner)
		if err != nil {
			return err
		}
		_, err = s.log.Append(ctx, eventlog.Write{
			Expect: eventlog.ExpectNew(),
			Event:  eventlog.Event{Aggregate: ref, Actor: "system", Payload: sealed},
			TTL:    s.cfg.ActivityRetention, // bounded: idle sessions' activity is folded before (activity_fold.go)
		})
		return err
	})
	if err != nil {
		s.logger.WarnContext(ctx, "session activity not written; keeping it for the next flush", "err", err)
	}
}
