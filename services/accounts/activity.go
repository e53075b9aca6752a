package accounts

import (
	"context"
	"slices"
	"sync"
	"time"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
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
func (a *activity) last(id string) (at time.Time, ip string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, ok := a.pending[id]
	return n.at, n.ip, ok
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
	tick := time.NewTicker(s.flushEvery)
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
// BrowserSessionsActive events. Notes that could not be written are kept for
// the next flush.
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
		ev := &eventsv1.BrowserSessionsActive{}
		for _, id := range chunk {
			n := notes[id]
			ev.Entries = append(ev.Entries, &eventsv1.BrowserSessionsActive_Entry{SessionId: id, IpAddress: n.ip, LastActiveUnix: n.at.Unix()})
		}
		_, err := s.log.Append(ctx, eventlog.Write{
			Expect: eventlog.ExpectNew(),
			Event:  eventlog.Event{Aggregate: eventlog.Ref{Type: activityAggregate, ID: ids.New()}, Actor: "system", Payload: ev},
		})
		if err != nil {
			s.logger.WarnContext(ctx, "browser session activity not written; keeping it for the next flush", "sessions", len(chunk), "err", err)
			s.activity.restore(notes)
			return
		}
		for _, id := range chunk {
			delete(notes, id)
		}
	}
}
