package authorize

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/device"
)

// What anonymous requests leave behind — an authorization request before a
// person approves it, a device authorization before it is approved, a
// dynamically registered client before a person approves it — lives in
// AUTHORIZE_PENDING, not in the durable AUTHORIZE stream. Every event of
// such an aggregate carries a TTL ending when the aggregate can no longer
// complete (plus Config.Keep), so all its events expire together and
// JetStream leaves a marker that the projections forget the aggregate on.
// The stream is capped (Config.PendingMaxBytes): past all but its reserve
// (reserve: a tenth, at least 128 KiB) new anonymous
// requests are refused (503) while approvals and exchanges still fit, and a
// flood never reaches the durable streams that sign-ins, refreshes and
// revocations write to. What must last is written to durable streams when
// the flow completes: the session (TOKEN, SessionStarted) and a client a
// person approved (AUTHORIZE, ClientRegistered).

// withPendingDefaults fills the ages and the size left zero.
func (c Config) withPendingDefaults() Config {
	if c.DeviceTTL <= 0 {
		c.DeviceTTL = device.Lifetime
	}
	if c.ClientTTL <= 0 {
		c.ClientTTL = 24 * time.Hour
	}
	switch {
	case c.Keep == 0:
		c.Keep = 10 * time.Minute
	case c.Keep < 0:
		c.Keep = 0
	}
	if c.PendingMaxBytes <= 0 {
		c.PendingMaxBytes = 256 << 20
	}
	return c
}

// keepOrNone turns a configured keep of 0 (none) into Config's "none".
func keepOrNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// pendingStream is the configuration of AUTHORIZE_PENDING.
func (c Config) pendingStream() eventlog.StreamConfig {
	sc := eventlog.StreamOf(eventsv1.AuthorizePending, c.Replicas)
	longest := max(c.GrantTTL+c.CodeTTL, c.DeviceTTL, c.ClientTTL) + c.Keep
	sc.Bounds = &eventlog.Bounds{
		// A backstop: every event has a TTL at most this long.
		MaxAge:   longest + time.Minute,
		MaxBytes: c.PendingMaxBytes,
		// JetStream raises a TTL below the marker's to it, so the marker is
		// no longer than the shortest life after a flow's end.
		MarkerTTL: min(max(c.Keep, time.Second), time.Minute),
	}
	return sc
}

// ttl is the time left until end, at least a second (the least TTL).
func (s *Service) ttl(end time.Time) time.Duration {
	return max(end.Sub(s.now()), time.Second)
}

// grantEnd is when a grant's events expire: the code of an approval made at
// the last moment has expired, and Keep has passed.
func (s *Service) grantEnd(req *eventsv1.GrantRequested) time.Time {
	return req.GetExpiresAt().AsTime().Add(s.cfg.CodeTTL + s.cfg.Keep)
}

// deviceEnd is when a device grant's events expire.
func (s *Service) deviceEnd(req *eventsv1.DeviceAuthorizationRequested) time.Time {
	return req.GetExpiresAt().AsTime().Add(s.cfg.Keep)
}

// expiring gives every write the TTL that ends at end.
func (s *Service) expiring(ws []eventlog.Write, end time.Time) []eventlog.Write {
	for i := range ws {
		ws[i].TTL = s.ttl(end)
	}
	return ws
}

// reserve is the part of AUTHORIZE_PENDING anonymous requests may not fill:
// it is for approvals, denials and exchanges of flows under way, and for the
// anonymous requests that passed the check at the same moment (each at most
// a registration's 16 KiB). A tenth of the stream, at least 128 KiB, at
// most half.
func reserve(limit uint64) uint64 {
	return min(max(limit/10, 128<<10), limit/2)
}

// room tells whether AUTHORIZE_PENDING may take another anonymous request.
// It reads the stream's size at every request (one small NATS request, as
// the rate limit's): a size read even a fraction of a second earlier lets a
// flood through the reserve.
type room struct {
	log *eventlog.Log
}

func newRoom(log *eventlog.Log) *room { return &room{log: log} }

// refusalWait is the Retry-After of a request refused for want of room.
const refusalWait = 60 * time.Second

// check refuses an anonymous request when the stream is full but for its
// reserve.
func (r *room) check(ctx context.Context, _ time.Time) error {
	used, limit, err := r.log.Usage(ctx)
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, "the request cannot be recorded right now; try again", err)
	}
	if limit > 0 && used+reserve(limit) >= limit {
		e := errs.Wrap(errs.KindUnavailable, "the server has too many requests waiting; try again later",
			fmt.Errorf("%s is full but for its reserve", r.log.Stream()))
		e.RetryAfter = refusalWait
		return e
	}
	return nil
}

// recordErr is the error of a command on a pending aggregate: a refusal as
// decided, anything else (the stream cannot take the event, NATS is away)
// unavailable, to be tried again.
func recordErr(err error) error {
	if _, ok := errors.AsType[*errs.Error](err); ok {
		return err
	}
	return errs.Wrap(errs.KindUnavailable, "This cannot be recorded right now; try again.", err)
}

// pendingClientRef names a pending client registration's aggregate.
func pendingClientRef(id string) eventlog.Ref {
	return eventlog.Ref{Type: eventsv1.AuthorizePendingClient.Type, ID: id}
}

// pendingClient reads a client registered dynamically and not approved yet:
// from its read model, or from AUTHORIZE_PENDING when that has not caught
// up. An expired registration is not found.
func (s *Service) pendingClient(ctx context.Context, id string) (*eventsv1.ClientRegistrationPending, error) {
	ev := &eventsv1.ClientRegistrationPending{ClientId: id}
	var expires time.Time
	err := s.pool.QueryRow(ctx, `SELECT metadata, secret_hash, expires_at FROM pending_clients WHERE client_id = $1`, id).
		Scan(&ev.MetadataJson, &ev.SecretHash, &expires)
	switch {
	case err == nil:
		if !s.now().Before(expires) {
			return nil, errs.NotFound("Unknown client.")
		}
		return ev, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, err
	}
	if !validClientID(id) {
		return nil, errs.NotFound("Unknown client.")
	}
	history, _, err := s.pending.Load(ctx, pendingClientRef(id))
	if err != nil {
		return nil, err
	}
	for i := len(history) - 1; i >= 0; i-- {
		if ev, ok := history[i].Event.(*eventsv1.ClientRegistrationPending); ok && s.now().Before(ev.GetExpiresAt().AsTime()) {
			return ev, nil
		}
	}
	return nil, errs.NotFound("Unknown client.")
}

// keepClient records a dynamically registered client in the durable stream
// the first time a person approves it, so that it outlives its pending
// registration. A client already kept (or configured) is left alone.
func (s *Service) keepClient(ctx context.Context, id string) error {
	var kept bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM clients WHERE client_id = $1)`, id).Scan(&kept); err != nil {
		return errs.Wrap(errs.KindUnavailable, "The application cannot be recorded right now; try again.", err)
	}
	if kept {
		return nil
	}
	ref := eventlog.Ref{Type: eventsv1.AuthorizeClient.Type, ID: id}
	if v, err := s.log.Version(ctx, ref); err != nil || v > 0 {
		return wrapKeep(err)
	}
	p, err := s.pendingClient(ctx, id)
	if err != nil {
		return wrapKeep(err)
	}
	_, err = s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
		Aggregate: ref, Actor: "registration",
		Payload: &eventsv1.ClientRegistered{ClientId: id, MetadataJson: p.GetMetadataJson(), SecretHash: p.GetSecretHash(), Source: "registration"},
	}})
	if eventlog.IsConflict(err) { // kept meanwhile, by another approval
		return nil
	}
	return wrapKeep(err)
}

func wrapKeep(err error) error {
	if err == nil {
		return nil
	}
	if errs.KindOf(err) == errs.KindNotFound {
		return errs.FailedPrecondition("The application's registration has expired; it must register again.")
	}
	return errs.Wrap(errs.KindUnavailable, "The application cannot be recorded right now; try again.", err)
}

// pendingClientsProjection is the read model of dynamically registered
// clients no person has approved yet.
const pendingClientsProjection = "pending_clients"

// pendingClientsReadModel holds each pending registration until it expires:
// the marker its expiry leaves removes the row, and every event applied
// removes rows whose registration expired before it (should a marker have
// expired before it was read), so a rebuild from what the stream still
// holds gives the same rows.
func pendingClientsReadModel(pending *eventlog.Log) projection.Projection {
	return projection.Projection{
		Name:     pendingClientsProjection,
		Source:   pending,
		Subjects: []string{eventsv1.AuthorizePendingClient.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			if _, err := tx.Exec(ctx, `DELETE FROM pending_clients WHERE expires_at < $1`, rec.OccurredAt()); err != nil {
				return fmt.Errorf("pending clients: %w", err)
			}
			if rec.Expired {
				_, err := tx.Exec(ctx, `DELETE FROM pending_clients WHERE client_id = $1 AND version < $2`, rec.Aggregate().ID, int64(rec.Seq))
				return err
			}
			ev, ok := rec.Event.(*eventsv1.ClientRegistrationPending)
			if !ok {
				return eventlog.Unhandled(rec)
			}
			_, err := tx.Exec(ctx, `
				INSERT INTO pending_clients (client_id, metadata, secret_hash, expires_at, registered_at, version) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (client_id) DO NOTHING`,
				ev.GetClientId(), ev.GetMetadataJson(), ev.GetSecretHash(), ev.GetExpiresAt().AsTime(), rec.OccurredAt(), int64(rec.Seq))
			if err != nil {
				return fmt.Errorf("pending clients: %w", err)
			}
			return nil
		},
		Tables: []string{"pending_clients"},
	}
}
