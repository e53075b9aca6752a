package token

// Homeserver provisioning: the homeserver must know every user a token names
// and every device a session holds, or it refuses the token. Gatehouse tells
// it through its /_synapse/mas/ API (internal/homeserver), driven by the
// event streams:
//
//   - ACCOUNTS, accounts.user.*: registration, display names, email
//     addresses and locks → provision_user; deactivation → delete_user;
//     reactivation → reactivate_user (then provision_user).
//   - TOKEN, token.session.*: SessionStarted with a device → provision_user
//     (so the user exists) and upsert_device; SessionEnded → delete_device,
//     unless another live session of the user holds the same device.
//
// Each feed is a reactor (platform/projection): one replica at a time runs
// it, following its stream from just after its checkpoint (homeserver_users,
// homeserver_sessions) and handling one event at a time, in stream order, so
// the changes of one user reach the homeserver in the order they happened.
// The checkpoint advances only after the homeserver has accepted the event's
// calls. While the homeserver is down or answers 5xx or 429, the event is
// retried with exponential backoff (capped at 30 s) and nothing behind it
// moves: no change is ever skipped. A 4xx other than 429 is the homeserver
// refusing that change for good: it is logged (an audit line,
// "homeserver_change_refused") and skipped. Every call is idempotent, so a
// crash between a call and its checkpoint only repeats the call. Both appear
// in `gatehouse projections list` (kind reactor) and can be replayed with
// `gatehouse projections rebuild token.homeserver_users`.
//
// The calls are made outside any database transaction: slow network I/O
// never holds a transaction or a row lock.
//
// The token endpoint does not wait for this: before it answers, it makes the
// session's device itself (provisionStarted), so the first token works at
// once; the reactor repeats the upsert later, harmlessly.

import (
	"context"
	"log/slog"
	"time"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/homeserver"
)

// Names of the two reactors, rows of projection_checkpoints.
const (
	checkpointUsers    = "homeserver_users"
	checkpointSessions = "homeserver_sessions"
)

// retryMax caps the backoff between attempts at one event.
const retryMax = 30 * time.Second

// provisioner keeps the homeserver in step with the event streams. A nil
// *provisioner is provisioning switched off.
type provisioner struct {
	svc    *Service
	hs     *homeserver.Client
	logger *slog.Logger
}

// newProvisioner returns the provisioner, or nil (and says so once) when
// matrix.homeserver_url or matrix.secret is not set.
func newProvisioner(s *Service, cfg Config) (*provisioner, error) {
	if cfg.HomeserverURL == "" || cfg.MatrixSecret == "" {
		missing := "matrix.homeserver_url"
		if cfg.HomeserverURL != "" {
			missing = "matrix.secret"
		}
		s.logger.Info("homeserver provisioning is off: " + missing + " is not set; users and devices are not created on the homeserver")
		return nil, nil
	}
	hs, err := homeserver.New(cfg.HomeserverURL, cfg.MatrixSecret, s.measures.homeserver()...)
	if err != nil {
		return nil, err
	}
	return &provisioner{svc: s, hs: hs, logger: s.logger.With("component", "homeserver")}, nil
}

// reactors are the provisioner's two feeds; none when provisioning is off.
func (p *provisioner) reactors() []projection.Member {
	if p == nil {
		return nil
	}
	return []projection.Member{
		projection.Reactor{
			Name: checkpointUsers, Source: p.svc.accountsLog, Subjects: []string{eventsv1.AccountsUser.Subjects()},
			Handle: p.refusalsSkipped(p.applyUserEvent), RetryMax: retryMax,
			Relevant: func(rec eventlog.Record) bool { return homeserver.Concerns(rec.Event) },
		},
		projection.Reactor{
			Name: checkpointSessions, Subjects: []string{eventsv1.TokenSession.Subjects()},
			Handle: p.refusalsSkipped(p.applySessionEvent), RetryMax: retryMax,
			Relevant: func(rec eventlog.Record) bool {
				//eventcheck:partial — a quick filter; applySessionEvent handles every event type
				switch rec.Event.(type) {
				case *eventsv1.TokensIssued, *eventsv1.SessionImported:
					return false // a rotation, or a device the homeserver has already
				}
				return true
			},
		},
	}
}

// refusalsSkipped wraps a feed's handler: a change the homeserver refused for
// good is logged as such and skipped; every other failure is retried.
func (p *provisioner) refusalsSkipped(apply func(context.Context, eventlog.Record) error) func(context.Context, eventlog.Record) error {
	return func(ctx context.Context, rec eventlog.Record) error {
		err := apply(ctx, rec)
		if err != nil && homeserver.IsPermanent(err) {
			p.logger.Error("homeserver refused a change; skipped", "audit", "homeserver_change_refused",
				"seq", rec.Seq, "event_id", rec.ID(), "event", rec.Type(),
				"aggregate", rec.Aggregate().Type+"/"+rec.Aggregate().ID, "err", err)
			return nil
		}
		return err
	}
}

// userState folds a user's events up to upTo (math.MaxUint64: all of them),
// read from the accounts service's stream.
func (p *provisioner) userState(ctx context.Context, userID string, upTo uint64) (homeserver.UserState, error) {
	history, _, err := p.svc.accountsLog.Load(ctx, eventlog.Ref{Type: eventsv1.AccountsUser.Type, ID: userID})
	if err != nil {
		return homeserver.UserState{}, err
	}
	// Addresses and display names are sealed under the user's personal key;
	// an erased user's open as empty.
	if err := p.svc.personal.UnsealHistory(ctx, history); err != nil {
		return homeserver.UserState{}, err
	}
	var st homeserver.UserState
	for _, rec := range history {
		if rec.Seq > upTo {
			break
		}
		st.Apply(rec.Event)
	}
	return st, nil
}
