package token

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// tokenInfo is what introspection needs to know about a token.
type tokenInfo struct {
	SessionID, Kind, ClientID, UserID, Username, Scope, DeviceID string
	IssuedAt, ExpiresAt                                          time.Time
}

// How long the index trusts what it read, and remembers what it heard.
const (
	// entryTTL bounds how long a token read from PostgreSQL is answered from memory.
	entryTTL = time.Minute
	// tombstoneTTL is how long an ended session or revoked token is remembered:
	// longer than entryTTL plus the projection's lag, so a stale read cannot
	// bring a revoked token back.
	tombstoneTTL = 5 * time.Minute
)

type entry struct {
	info     tokenInfo
	cachedAt time.Time
}

// index answers introspection from memory. It is a read-through cache over
// the tokens read model, and every replica follows the TOKEN stream to learn
// at once of ended sessions and rotated tokens: a revocation on one replica
// is seen by all within the stream's delivery time.
type index struct {
	pool   *pgxpool.Pool
	log    *eventlog.Log
	logger *slog.Logger
	now    func() time.Time

	mu      sync.RWMutex
	entries map[string]entry     // token hash → info
	ended   map[string]time.Time // session id → when we heard
	revoked map[string]time.Time // token hash → when we heard
}

func newIndex(pool *pgxpool.Pool, log *eventlog.Log, logger *slog.Logger) *index {
	return &index{pool: pool, log: log, logger: logger, now: time.Now,
		entries: map[string]entry{}, ended: map[string]time.Time{}, revoked: map[string]time.Time{}}
}

// lookup returns the token's info if the token is live: known, not revoked,
// its session not ended, and not expired.
func (x *index) lookup(ctx context.Context, hash string) (tokenInfo, bool, error) {
	now := x.now()
	x.mu.RLock()
	e, hit := x.entries[hash]
	dead := x.deadLocked(hash, e.info.SessionID)
	x.mu.RUnlock()
	if dead {
		return tokenInfo{}, false, nil
	}
	if !hit || now.Sub(e.cachedAt) > entryTTL {
		info, found, err := x.read(ctx, hash)
		if err != nil || !found {
			return tokenInfo{}, false, err
		}
		x.mu.Lock()
		dead = x.deadLocked(hash, info.SessionID)
		if !dead {
			x.entries[hash] = entry{info: info, cachedAt: now}
		}
		x.mu.Unlock()
		if dead {
			return tokenInfo{}, false, nil
		}
		e.info = info
	}
	if !e.info.ExpiresAt.IsZero() && !now.Before(e.info.ExpiresAt) {
		return tokenInfo{}, false, nil
	}
	return e.info, true, nil
}

func (x *index) deadLocked(hash, sessionID string) bool {
	if _, ok := x.revoked[hash]; ok {
		return true
	}
	_, ok := x.ended[sessionID]
	return ok && sessionID != ""
}

// read looks a live token up in the read model.
func (x *index) read(ctx context.Context, hash string) (tokenInfo, bool, error) {
	var (
		info    tokenInfo
		expires *time.Time
	)
	err := x.pool.QueryRow(ctx, `
		SELECT s.session_id, t.kind, s.client_id, s.user_id, s.username, s.scope, s.device_id, t.issued_at, t.expires_at
		FROM tokens t JOIN sessions s USING (session_id)
		WHERE t.token_hash = $1 AND NOT t.revoked AND s.ended_at IS NULL`, hash).
		Scan(&info.SessionID, &info.Kind, &info.ClientID, &info.UserID, &info.Username, &info.Scope, &info.DeviceID, &info.IssuedAt, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return tokenInfo{}, false, nil
	}
	if err != nil {
		return tokenInfo{}, false, fmt.Errorf("read token: %w", err)
	}
	if expires != nil {
		info.ExpiresAt = *expires
	}
	return info, true, nil
}

// follow listens to the TOKEN stream from now on and records revocations.
func (x *index) follow(ctx context.Context) error {
	for {
		err := x.consume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		x.logger.Warn("token index stopped following the stream; restarting", "err", err)
		// Whatever was missed is unknown: forget the cached entries.
		x.mu.Lock()
		x.entries = map[string]entry{}
		x.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (x *index) consume(ctx context.Context) error {
	c, err := x.log.JetStream().OrderedConsumer(ctx, x.log.Stream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjectPrefix + ".session.*"},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return err
	}
	msgs, err := c.Messages()
	if err != nil {
		return err
	}
	defer msgs.Stop()
	go func() { <-ctx.Done(); msgs.Stop() }()
	for {
		m, err := msgs.Next()
		if err != nil {
			return err
		}
		rec, err := eventlog.DecodeMsg(m)
		if err != nil {
			x.logger.Error("undecodable token event", "err", err)
			continue
		}
		x.learn(rec)
	}
}

// learn records what an event revokes.
func (x *index) learn(rec eventlog.Record) {
	now := x.now()
	x.mu.Lock()
	defer x.mu.Unlock()
	switch ev := rec.Event.(type) {
	case *eventsv1.TokensIssued:
		for _, h := range []string{ev.GetReplacesRefreshHash(), ev.GetRevokesAccessHash()} {
			if h != "" {
				x.revoked[h] = now
				delete(x.entries, h)
			}
		}
	case *eventsv1.SessionEnded:
		x.ended[ev.GetSessionId()] = now
	}
}

// markEnded records an ended session that this replica ended itself.
func (x *index) markEnded(sessionID string) {
	x.mu.Lock()
	x.ended[sessionID] = x.now()
	x.mu.Unlock()
}

// markRevoked records tokens that this replica rotated out itself.
func (x *index) markRevoked(hashes ...string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, h := range hashes {
		if h != "" {
			x.revoked[h] = x.now()
			delete(x.entries, h)
		}
	}
}

// sweepEvery sweeps until ctx ends.
func (x *index) sweepEvery(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			x.sweep()
		}
	}
}

// sweep forgets stale entries and old tombstones.
func (x *index) sweep() {
	now := x.now()
	x.mu.Lock()
	defer x.mu.Unlock()
	for h, e := range x.entries {
		if now.Sub(e.cachedAt) > entryTTL {
			delete(x.entries, h)
		}
	}
	for k, at := range x.ended {
		if now.Sub(at) > tombstoneTTL {
			delete(x.ended, k)
		}
	}
	for k, at := range x.revoked {
		if now.Sub(at) > tombstoneTTL {
			delete(x.revoked, k)
		}
	}
}
