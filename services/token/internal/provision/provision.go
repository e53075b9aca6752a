package provision

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/projection"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
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

// Config says which homeserver to keep in step; provisioning is off unless
// both are set.
type Config struct {
	// HomeserverURL is the base of the homeserver's /_synapse/mas/ API.
	HomeserverURL string
	// Secret is shared with the homeserver.
	Secret string
}

// Sessions answers the provisioner's questions about live sessions, from the
// token service's sessions read model.
type Sessions interface {
	// DeviceInUse reports whether another live session of started's user
	// holds its device, as of the session's end at sequence endedAt.
	DeviceInUse(ctx context.Context, endedAt uint64, started *eventsv1.SessionStarted) (bool, error)
	// LiveDevices are the device ids of a user's sessions that have not ended.
	LiveDevices(ctx context.Context, userID string) ([]string, error)
}

// Users lists every user (the accounts service's ListUsers).
type Users interface {
	ListUsers(ctx context.Context, in *accountsv1.ListUsersRequest, opts ...grpc.CallOption) (*accountsv1.ListUsersResponse, error)
}

// Deps are what the provisioner needs of the token service.
type Deps struct {
	// AccountsLog is the accounts service's stream, followed read-only.
	AccountsLog *eventlog.Log
	// TokenLog is the token service's stream: sessions' histories. The
	// sessions reactor follows the stream of the set it joins (this one).
	TokenLog *eventlog.Log
	// Personal opens what is sealed under users' personal keys.
	Personal *personal.Store
	// Users lists every user, for a sync.
	Users Users
	// Sessions reads the sessions read model.
	Sessions Sessions
	// ClientName is an OAuth client's name, "" when unknown.
	ClientName func(ctx context.Context, clientID string) string
	// Logger gets the provisioner's log and audit lines.
	Logger *slog.Logger
	// Homeserver are options of the homeserver client (its measures).
	Homeserver []homeserver.Option
}

// Provisioner keeps the homeserver in step with the event streams. A nil
// *Provisioner is provisioning switched off.
type Provisioner struct {
	deps   Deps
	hs     *homeserver.Client
	logger *slog.Logger
}

// New returns the provisioner, or nil (and says so once) when
// cfg.HomeserverURL or cfg.Secret is not set.
func New(cfg Config, deps Deps) (*Provisioner, error) {
	if cfg.HomeserverURL == "" || cfg.Secret == "" {
		missing := "matrix.homeserver_url"
		if cfg.HomeserverURL != "" {
			missing = "matrix.secret"
		}
		deps.Logger.Info("homeserver provisioning is off: " + missing + " is not set; users and devices are not created on the homeserver")
		return nil, nil
	}
	hs, err := homeserver.New(cfg.HomeserverURL, cfg.Secret, deps.Homeserver...)
	if err != nil {
		return nil, err
	}
	return &Provisioner{deps: deps, hs: hs, logger: deps.Logger.With("component", "homeserver")}, nil
}

// Reactors are the provisioner's two feeds; none when provisioning is off.
func (p *Provisioner) Reactors() []projection.Member {
	if p == nil {
		return nil
	}
	return []projection.Member{
		projection.Reactor{
			Name: checkpointUsers, Source: p.deps.AccountsLog, Subjects: []string{eventsv1.AccountsUser.Subjects()},
			Handle: p.refusalsSkipped(p.applyUserEvent), RetryMax: retryMax,
			Relevant: func(rec eventlog.Record) bool { return homeserver.Concerns(rec.Event) },
			Ignores:  []proto.Message{&eventsv1.UserImported{}}, // the homeserver has them: stepped over undecoded
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
			Ignores: []proto.Message{&eventsv1.SessionImported{}}, // the homeserver has the devices: stepped over undecoded
		},
	}
}

// syncProvisionTimeout bounds the homeserver calls a token request waits for.
const syncProvisionTimeout = 10 * time.Second

// Started creates a just-started session's device on the homeserver before
// its tokens are handed out, so the first request with them works. It does
// nothing when provisioning is off or the session holds no device. On an
// error, the caller must not hand the tokens out (homeserver.IsPermanent
// tells a refusal from an outage).
func (p *Provisioner) Started(ctx context.Context, ev *eventsv1.SessionStarted) error {
	if p == nil || ev.GetDeviceId() == "" || ev.GetUsername() == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, syncProvisionTimeout)
	defer cancel()
	return p.upsertDevice(ctx, ev)
}

// IsLocalpartAvailable asks the homeserver whether a username is free.
func (p *Provisioner) IsLocalpartAvailable(ctx context.Context, localpart string) (bool, error) {
	return p.hs.IsLocalpartAvailable(ctx, localpart)
}

// AllowCrossSigningReset lets the user reset their cross-signing keys on the
// homeserver.
func (p *Provisioner) AllowCrossSigningReset(ctx context.Context, localpart string) error {
	return p.hs.AllowCrossSigningReset(ctx, localpart)
}

// refusalsSkipped wraps a feed's handler: a change the homeserver refused for
// good is logged as such and skipped; every other failure is retried.
func (p *Provisioner) refusalsSkipped(apply func(context.Context, eventlog.Record) error) func(context.Context, eventlog.Record) error {
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
func (p *Provisioner) userState(ctx context.Context, userID string, upTo uint64) (homeserver.UserState, error) {
	history, _, err := p.deps.AccountsLog.Load(ctx, eventlog.Ref{Type: eventsv1.AccountsUser.Type, ID: userID})
	if err != nil {
		return homeserver.UserState{}, err
	}
	// Addresses and display names are sealed under the user's personal key;
	// an erased user's open as empty.
	if err := p.deps.Personal.UnsealHistory(ctx, history); err != nil {
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
