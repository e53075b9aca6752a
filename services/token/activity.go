package token

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
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
// had not flushed when it crashed is lost.

// DefaultActivityFlushInterval is how often session activity is written.
const DefaultActivityFlushInterval = 30 * time.Second

// activityAggregate is one batch of session activity.
const activityAggregate = "activity"

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

// originOf is the request's TCP peer address (clientIP) and User-Agent.
func originOf(r *http.Request) origin {
	return origin{ip: clientIP(r), userAgent: truncateUTF8(r.UserAgent(), maxUserAgent)}
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

// activity is the notes of session use not yet written. It is safe for
// concurrent use.
type activity struct {
	mu      sync.Mutex
	pending map[string]activityNote
}

type activityNote struct {
	at time.Time
	ip string
}

func newActivity() *activity { return &activity{pending: map[string]activityNote{}} }

// touch notes that session id was used at at, from ip ("" when unknown).
func (a *activity) touch(id, ip string, at time.Time) {
	if id == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.noteLocked(id, activityNote{at: at, ip: ip})
}

// noteLocked keeps the later of two notes; a later note without an address
// keeps the earlier address.
func (a *activity) noteLocked(id string, n activityNote) {
	old, ok := a.pending[id]
	switch {
	case !ok:
	case n.at.Before(old.at):
		n, old = old, n
		fallthrough
	default:
		if n.ip == "" {
			n.ip = old.ip
		}
	}
	a.pending[id] = n
}

// last returns the latest unwritten note of session id.
func (a *activity) last(id string) (activityNote, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, ok := a.pending[id]
	return n, ok
}

// take removes and returns every note.
func (a *activity) take() map[string]activityNote {
	a.mu.Lock()
	defer a.mu.Unlock()
	notes := a.pending
	a.pending = map[string]activityNote{}
	return notes
}

// restore puts back notes that could not be written, keeping newer ones.
func (a *activity) restore(notes map[string]activityNote) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, n := range notes {
		a.noteLocked(id, n)
	}
}

// runActivity flushes session activity every interval until ctx ends, then
// once more.
func (s *Service) runActivity(ctx context.Context) {
	tick := time.NewTicker(s.cfg.ActivityFlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.flushActivity(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), activityFlushTimeout)
			defer cancel()
			s.flushActivity(final)
			return
		}
	}
}

// flushActivity appends the notes taken since the last flush as
// SessionsActive events of at most maxActivityEntries entries. Notes that
// could not be written are kept for the next flush.
func (s *Service) flushActivity(ctx context.Context) {
	notes := s.activity.take()
	if len(notes) == 0 {
		return
	}
	sessionIDs := make([]string, 0, len(notes))
	for id := range notes {
		sessionIDs = append(sessionIDs, id)
	}
	slices.Sort(sessionIDs)
	for chunk := range slices.Chunk(sessionIDs, maxActivityEntries) {
		ev := &eventsv1.SessionsActive{}
		for _, id := range chunk {
			n := notes[id]
			ev.Entries = append(ev.Entries, &eventsv1.SessionsActive_Entry{SessionId: id, LastActiveUnix: n.at.Unix(), IpAddress: n.ip})
		}
		_, err := s.log.Append(ctx, eventlog.Write{
			Expect: eventlog.ExpectNew(),
			Event:  eventlog.Event{Aggregate: eventlog.Ref{Type: activityAggregate, ID: ids.New()}, Actor: "system", Payload: ev},
		})
		if err != nil {
			s.logger.WarnContext(ctx, "session activity not written; keeping it for the next flush", "sessions", len(chunk), "err", err)
			s.activity.restore(notes)
			return
		}
		for _, id := range chunk {
			delete(notes, id)
		}
	}
}
