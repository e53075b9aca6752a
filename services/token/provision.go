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
// One replica at a time provisions, elected with a PostgreSQL advisory lock
// like a projection's leader. For each stream it follows an ordered consumer
// from just after its checkpoint (a row of projection_checkpoints, named
// homeserver_users and homeserver_sessions) and handles one event at a time,
// in stream order, so the changes of one user reach the homeserver in the
// order they happened. The checkpoint advances only after the homeserver has
// accepted the event's calls. While the homeserver is down or answers 5xx or
// 429, the event is retried with exponential backoff (capped at 30 s) and
// nothing behind it moves: no change is ever skipped. A 4xx other than 429 is
// the homeserver refusing that change for good: it is logged (an audit line,
// "homeserver_change_refused") and skipped. Every call is idempotent, so a
// crash between a call and its checkpoint only repeats the call.
//
// Unlike a projection's Apply, the calls are made outside any database
// transaction: slow network I/O never holds a transaction or a row lock.
//
// The token endpoint does not wait for this: before it answers, it makes the
// session's device itself (provisionStarted), so the first token works at
// once; the consumer repeats the upsert later, harmlessly.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/services/token/internal/homeserver"
)

// The accounts service's stream and its user subjects: part of the event
// contract (ARCHITECTURE.md, "Events and streams"), read here, never written.
const (
	accountsStream       = "ACCOUNTS"
	accountsUserSubjects = "accounts.user.*"
)

// Checkpoint names of the two feeds, rows of projection_checkpoints.
const (
	checkpointUsers    = "homeserver_users"
	checkpointSessions = "homeserver_sessions"
)

const (
	// retryMin and retryMax bound the backoff between attempts at one event.
	retryMin = 250 * time.Millisecond
	retryMax = 30 * time.Second
	// leaderPing is how often the leader checks that it still holds the lock.
	leaderPing = 10 * time.Second
)

// provisioner keeps the homeserver in step with the event streams. A nil
// *provisioner is provisioning switched off.
type provisioner struct {
	svc    *Service
	hs     *homeserver.Client
	js     jetstream.JetStream
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
	hs, err := homeserver.New(cfg.HomeserverURL, cfg.MatrixSecret)
	if err != nil {
		return nil, err
	}
	return &provisioner{svc: s, hs: hs, js: s.log.JetStream(), logger: s.logger.With("component", "homeserver")}, nil
}

// feed is one stream the provisioner follows.
type feed struct {
	checkpoint string
	stream     string
	subjects   []string
	apply      func(ctx context.Context, rec eventlog.Record) error
}

func (p *provisioner) feeds() []feed {
	return []feed{
		{checkpoint: checkpointUsers, stream: accountsStream, subjects: []string{accountsUserSubjects}, apply: p.applyUserEvent},
		{checkpoint: checkpointSessions, stream: StreamName, subjects: []string{subjectPrefix + ".session.*"}, apply: p.applySessionEvent},
	}
}

// run provisions whenever this replica is the leader, until ctx ends.
func (p *provisioner) run(ctx context.Context) {
	if p == nil {
		return
	}
	backoff := time.Second
	for {
		began := time.Now()
		err := p.lead(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			backoff = time.Second
		}
		p.logger.Error("homeserver provisioning stopped; starting again from its checkpoints", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, retryMax)
	}
}

// lead waits to be the leader, then follows both feeds until one fails or the
// lock is lost.
func (p *provisioner) lead(ctx context.Context) error {
	conn, err := p.svc.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire the leader connection: %w", err)
	}
	// The advisory lock belongs to this session: keep the connection out of the pool.
	lockConn := conn.Hijack()
	defer lockConn.Close(context.WithoutCancel(ctx))
	if _, err := lockConn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended(current_schema() || '.gatehouse.homeserver', 0))`); err != nil {
		return fmt.Errorf("wait for leadership: %w", err)
	}
	feeds := p.feeds()
	for _, f := range feeds {
		if _, err := p.svc.pool.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, f.checkpoint); err != nil {
			return fmt.Errorf("ensure checkpoint %s: %w", f.checkpoint, err)
		}
	}
	p.logger.Debug("leading homeserver provisioning")

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(leaderPing)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := lockConn.Ping(ctx); err != nil && ctx.Err() == nil {
					cancel(fmt.Errorf("lost the leader connection: %w", err))
					return
				}
			}
		}
	})
	errc := make(chan error, len(feeds))
	for _, f := range feeds {
		wg.Go(func() { errc <- p.follow(ctx, f) })
	}
	err = <-errc // the first feed to stop (both stop only with ctx)
	cancel(err)
	wg.Wait()
	return err
}

// follow handles a feed's events one by one, in order, from just after its
// checkpoint, until ctx ends or the stream cannot be read.
func (p *provisioner) follow(ctx context.Context, f feed) error {
	checkpoint, err := projection.Checkpoint(ctx, p.svc.pool, f.checkpoint)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: f.subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if checkpoint > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, checkpoint+1
	}
	c, err := p.js.OrderedConsumer(ctx, f.stream, cfg)
	if err != nil {
		return fmt.Errorf("follow %s: %w", f.stream, err)
	}
	msgs, err := c.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", f.stream, err)
	}
	defer msgs.Stop()
	stop := context.AfterFunc(ctx, msgs.Stop)
	defer stop()
	for {
		m, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("follow %s: %w", f.stream, err)
		}
		rec, err := eventlog.DecodeMsg(m)
		if err != nil {
			p.logger.Error("undecodable event; skipped", "stream", f.stream, "subject", m.Subject(), "err", err)
			continue
		}
		if rec.Seq <= checkpoint {
			continue
		}
		if err := p.deliver(ctx, f, rec); err != nil {
			return err
		}
		if _, err := p.svc.pool.Exec(ctx, `UPDATE projection_checkpoints SET last_seq = $2, updated_at = now() WHERE name = $1`,
			f.checkpoint, int64(rec.Seq)); err != nil {
			return fmt.Errorf("advance checkpoint %s: %w", f.checkpoint, err)
		}
		checkpoint = rec.Seq
	}
}

// deliver applies one event, retrying until the homeserver accepts it or
// refuses it for good. It fails only when ctx ends.
func (p *provisioner) deliver(ctx context.Context, f feed, rec eventlog.Record) error {
	backoff := retryMin
	for attempt := 1; ; attempt++ {
		err := f.apply(ctx, rec)
		if err == nil {
			if attempt > 1 {
				p.logger.Info("homeserver accepted a change after retries", "event", rec.Type(), "seq", rec.Seq, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if homeserver.IsPermanent(err) {
			p.logger.Error("homeserver refused a change; skipped", "audit", "homeserver_change_refused",
				"stream", f.stream, "seq", rec.Seq, "event_id", rec.ID(), "event", rec.Type(),
				"aggregate", rec.Aggregate().Type+"/"+rec.Aggregate().ID, "err", err)
			return nil
		}
		if attempt == 1 || backoff == retryMax {
			p.logger.Warn("homeserver change not accepted yet; retrying", "event", rec.Type(), "seq", rec.Seq,
				"attempt", attempt, "retry_in", backoff, "err", err)
		}
		if !sleep(ctx, backoff) {
			return context.Cause(ctx)
		}
		backoff = min(backoff*2, retryMax)
	}
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// loadBatch is how many events one direct-get request returns.
const loadBatch = 256

// loadSubject reads the events of one subject of another service's stream,
// in order, up to and including sequence upTo. (eventlog.Log.Load reads a
// stream the service owns; this one is only read.)
func (p *provisioner) loadSubject(ctx context.Context, stream, subject string, upTo uint64) ([]eventlog.Record, error) {
	var (
		records []eventlog.Record
		next    uint64 = 1
	)
	for {
		msgs, err := jetstreamext.GetBatch(ctx, p.js, stream, loadBatch,
			jetstreamext.GetBatchSubject(subject), jetstreamext.GetBatchSeq(next))
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", subject, err)
		}
		n, past := 0, false
		for msg, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("load %s: %w", subject, err)
			}
			n++
			if msg.Sequence > upTo {
				past = true
				break
			}
			rec, err := eventlog.Decode(msg.Sequence, msg.Subject, msg.Data)
			if err != nil {
				return nil, err
			}
			records = append(records, rec)
			next = msg.Sequence + 1
		}
		if past || n < loadBatch {
			return records, nil
		}
	}
}

// userState folds a user's events up to upTo (math.MaxUint64: all of them).
func (p *provisioner) userState(ctx context.Context, userID string, upTo uint64) (homeserver.UserState, error) {
	history, err := p.loadSubject(ctx, accountsStream, "accounts.user."+userID, upTo)
	if err != nil {
		return homeserver.UserState{}, err
	}
	var st homeserver.UserState
	for _, rec := range history {
		st.Apply(rec.Event)
	}
	return st, nil
}
