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

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
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

// index answers introspection from memory. It has three parts, each fed by
// the event streams, so that what one replica does is seen by all:
//
//   - entries: a read-through cache over the tokens read model;
//   - revocations: ended sessions and rotated-out tokens, learnt by every
//     replica from the TOKEN stream (a live tail from the event after the
//     sessions projection's checkpoint when the process started: what the
//     read model may not show yet), so a revocation anywhere wins over a
//     cached or stale row;
//   - users: who is locked or deactivated (user_blocks.go), from a snapshot
//     of the user_blocks projection and a live tail of the ACCOUNTS stream.
//
// Until both tails have caught up with their streams after start, lookups
// wait (at most blocksReadyWait), so no answer is given without them.
type index struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	now    func() time.Time

	tokens      *eventlog.Log
	revocations *eventlog.Tail // set by run before ready closes
	users       *userBlocks
	ready       chan struct{} // closed once revocations caught up after start

	mu      sync.RWMutex
	entries map[string]entry     // token hash → info
	ended   map[string]time.Time // session id → when we heard
	revoked map[string]time.Time // token hash → when we heard
}

func newIndex(pool *pgxpool.Pool, tokens, accounts *eventlog.Log, logger *slog.Logger) *index {
	return &index{pool: pool, logger: logger, now: time.Now, ready: make(chan struct{}), tokens: tokens,
		users:   newUserBlocks(pool, accounts, logger),
		entries: map[string]entry{}, ended: map[string]time.Time{}, revoked: map[string]time.Time{}}
}

// run follows both streams and sweeps old entries until ctx ends.
func (x *index) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { x.users.run(ctx) })
	wg.Go(func() { x.sweepEvery(ctx, time.Minute) })
	// Revocations the read model may not show yet: from the event after its checkpoint.
	var from uint64
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		cp, err := projection.Checkpoint(ctx, x.pool, sessionsProjection)
		if err == nil {
			from = cp + 1
			break
		}
		x.logger.Warn("sessions checkpoint not read yet; retrying", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			return
		}
	}
	x.revocations = x.tokens.Tail(eventlog.TailConfig{
		Name: "token.revocations", Subjects: []string{eventsv1.TokenSession.Subjects()}, From: from, Handle: x.learn,
	}, x.logger)
	wg.Go(func() { x.revocations.Run(ctx) })
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		if _, err := x.revocations.CatchUp(ctx); err == nil {
			close(x.ready)
			break
		} else if ctx.Err() == nil {
			x.logger.Warn("token index not caught up with the stream yet; retrying", "err", err, "backoff", backoff)
		}
		if !sleep(ctx, backoff) {
			return
		}
	}
}

// waitReady blocks until the index follows the TOKEN stream (bounded).
func (x *index) waitReady(ctx context.Context) error {
	select {
	case <-x.ready:
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, blocksReadyWait)
	defer cancel()
	select {
	case <-x.ready:
		return nil
	case <-ctx.Done():
		return errs.Wrap(errs.KindUnavailable, "Revocations are not known yet; try again shortly.", ctx.Err())
	}
}

// lookup returns the token's info if the token is live: known, not revoked,
// its session not ended, not expired, and its user neither locked nor
// deactivated.
func (x *index) lookup(ctx context.Context, hash string) (tokenInfo, bool, error) {
	if err := x.waitReady(ctx); err != nil {
		return tokenInfo{}, false, err
	}
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
	blocked, err := x.users.blocked(ctx, e.info.UserID)
	if err != nil || blocked {
		return tokenInfo{}, false, err
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

// learn records what a session event revokes (the revocations tail).
func (x *index) learn(rec eventlog.Record) error {
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
	case *eventsv1.SessionStarted, *eventsv1.SessionRenamed:
		// Nothing revoked: new tokens are read from the read model.
	default:
		return eventlog.Unhandled(rec)
	}
	return nil
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
