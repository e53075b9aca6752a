package notify

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/notify/internal/verification"
)

// Email verifications are started by anonymous requests (registration,
// recovery) and so live in NOTIFY_PENDING, not in the durable NOTIFY stream
// (which keeps the service's key). A verification may be used — codes sent
// again, confirmed — for Config.VerificationTTL from its start; every event
// of it carries a TTL ending Config.ConfirmationWindow after that, so all expire
// together and JetStream leaves a marker the read models forget it on. The
// stream is capped (Config.PendingMaxBytes): past all but its reserve new
// verifications are refused (unavailable, with a Retry-After) while those
// under way still resend, confirm and record their emails.

// confirmationWindow is how long a verification's events outlive its last
// usable moment (Config.ConfirmationWindow when zero): the accounts service
// proves an address against a confirmation for up to an hour (its
// email_verifications read model keeps them that long), reading the
// verification's version from this stream.
const confirmationWindow = time.Hour

// Defaults of the pending settings left zero.
const (
	defaultVerificationTTL = 30 * time.Minute
	defaultPendingMaxBytes = 256 << 20
)

// pendingStream is the configuration of NOTIFY_PENDING.
func (c Config) pendingStream() eventlog.StreamConfig {
	sc := eventlog.StreamOf(eventsv1.NotifyPending, c.Replicas)
	sc.Bounds = &eventlog.Bounds{
		// A backstop: every event has a TTL at most this long.
		MaxAge:   c.life() + time.Minute,
		MaxBytes: c.PendingMaxBytes,
		// JetStream raises a TTL below the marker's to it, so the marker is
		// no longer than the time a verification's events outlive its use.
		MarkerTTL: min(max(c.ConfirmationWindow, time.Second), time.Minute),
	}
	return sc
}

// life is how long a verification's events are kept from its start.
func (c Config) life() time.Duration { return c.VerificationTTL + c.ConfirmationWindow }

// usableUntil is the last moment a verification may be used.
func (s *Service) usableUntil(st verification.State) time.Time {
	return st.StartedAt.Add(s.cfg.VerificationTTL)
}

// end is when a verification's events expire.
func (s *Service) end(st verification.State) time.Time {
	return st.StartedAt.Add(s.cfg.life())
}

// expiring gives every write the TTL left until end, at least a second.
func (s *Service) expiring(ws []eventlog.Write, end time.Time) []eventlog.Write {
	ttl := max(end.Sub(s.now()), time.Second)
	for i := range ws {
		ws[i].TTL = ttl
	}
	return ws
}

// reserve is the part of NOTIFY_PENDING new verifications may not fill: it
// is for the resends, attempts, confirmations and delivery records of
// verifications under way, and for the starts that passed the check at the
// same moment. A tenth of the stream, at least 128 KiB, at most half.
func reserve(limit uint64) uint64 {
	return min(max(limit/10, 128<<10), limit/2)
}

// refusalWait is the Retry-After of a start refused for want of room.
const refusalWait = 60 * time.Second

// checkRoom refuses a new verification when NOTIFY_PENDING is full but for
// its reserve. It reads the stream's size at every start: a size read even
// a moment earlier lets a flood through the reserve.
func (s *Service) checkRoom(ctx context.Context) error {
	used, limit, err := s.pending.Usage(ctx)
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, "The verification could not be started right now; try again.", err)
	}
	if limit > 0 && used+reserve(limit) >= limit {
		e := errs.Wrap(errs.KindUnavailable, "Too many email verifications are waiting; try again later.",
			fmt.Errorf("%s is full but for its reserve", s.pending.Stream()))
		e.RetryAfter = refusalWait
		e.Facts = map[string]string{errs.FactRetryAfterSeconds: strconv.Itoa(int(refusalWait / time.Second))}
		return e
	}
	return nil
}

// errVerificationOver is the refusal of a change to a verification past its
// usable time.
func errVerificationOver() error {
	return errs.FailedPrecondition("This verification has expired; start it again")
}
