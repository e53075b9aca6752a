package token

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unique"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/session"
)

// tokenInfo is what introspection needs to know about a token (its kind is
// the lookup's: the index holds access tokens, lookupRefresh answers refresh
// tokens).
type tokenInfo struct {
	SessionID, ClientID, UserID, Username, Scope, DeviceID string
	IssuedAt, ExpiresAt                                    time.Time
}

// How long the index keeps what no longer works, so that questions about it
// are answered from memory; past that a question costs a catch-up with the
// stream (see lookup).
const (
	// expiredGrace is how long an expired token stays known as expired.
	expiredGrace = 10 * time.Minute
	// goneTTL is how long a revoked or rotated-out token, or an ended
	// session, is remembered as such.
	goneTTL = 10 * time.Minute
	// sweepInterval is how often what is past these is forgotten.
	sweepInterval = time.Minute
	// catchUpTimeout bounds one catch-up with the stream on a miss.
	catchUpTimeout = 5 * time.Second
)

// tokenKey is a token's SHA-256, as the events carry it in hex.
type tokenKey [sha256.Size]byte

// keyOf decodes a token hash; false for anything that is not one.
func keyOf(hash string) (tokenKey, bool) {
	var k tokenKey
	if len(hash) != 2*len(k) {
		return k, false
	}
	_, err := hex.Decode(k[:], []byte(hash))
	return k, err == nil
}

// liveSession is a session with live tokens. Strings many sessions share
// (client, user, username) are interned, and so is the scope's shape: the
// scope with its device id (MSC2967 puts it in the scope, making every
// session's scope different) left out, put back when asked.
type liveSession struct {
	id                                string
	deviceID                          string
	clientID, userID, username, scope unique.Handle[string]
	tokens                            []tokenKey
}

// deviceMark stands for the device id in an interned scope shape.
const deviceMark = "\x00"

// liveSessionOf is the in-memory form of how a session started.
func liveSessionOf(st *eventsv1.SessionStarted) *liveSession {
	return newLiveSession(st.GetSessionId(), st.GetClientId(), st.GetUserId(), st.GetUsername(), st.GetScope(), st.GetDeviceId())
}

// newLiveSession is the in-memory form of a session's facts.
func newLiveSession(id, clientID, userID, username, scope, deviceID string) *liveSession {
	shape := scope
	if deviceID != "" && !strings.Contains(scope, deviceMark) {
		shape = strings.Replace(scope, deviceID, deviceMark, 1)
	}
	return &liveSession{id: id, deviceID: deviceID, clientID: unique.Make(clientID), userID: unique.Make(userID),
		username: unique.Make(username), scope: unique.Make(shape), tokens: make([]tokenKey, 0, 2)}
}

// scopeOf is the session's scope as granted.
func (s *liveSession) scopeOf() string {
	shape := s.scope.Value()
	if s.deviceID == "" {
		return shape
	}
	return strings.Replace(shape, deviceMark, s.deviceID, 1)
}

// liveToken is an access token of a live session.
type liveToken struct {
	session         *liveSession
	issued, expires int64 // Unix seconds; expires 0: never
}

// index answers introspection from memory, and trusts no read model for it:
// every replica holds every live access token, fed by the TOKEN stream.
//
//   - At start it loads the live tokens of the sessions read model together
//     with the checkpoint they are at, from one consistent snapshot
//     (projection.Snapshot: the live tables even while a rebuild fills its
//     copies), then follows the session events from the event after that
//     checkpoint (a live tail). Ended sessions and rotated-out tokens are
//     thus known from the stream itself: a read model that lags, or is
//     rebuilt, changes nothing, and nothing is forgotten across restarts.
//
//   - A token that is not in memory may have been issued on another replica
//     a moment ago: before answering that it is inactive, the index catches
//     up with the stream (eventlog.Tail.CatchUp; concurrent misses share
//     one), so a token issued before the question is always found.
//
//   - Who is locked or deactivated comes from users (user_blocks.go), fed the
//     same way from the ACCOUNTS stream.
//
//   - Refresh tokens are not held: a homeserver never asks about them, and
//     a session whose access token has expired would otherwise stay in
//     memory as long as its refresh token lives (for ever). So the index
//     holds the sessions used within an access token's lifetime (and
//     expiredGrace), not every session. A question about a refresh token
//     (a client's introspection, revocation) is answered from the session
//     aggregate itself (lookupRefresh), as the refresh grant decides.
//
// Until the snapshot is loaded and both tails have caught up after start,
// lookups wait (at most blocksReadyWait, then 503). The cost is memory: see
// BenchmarkIndexMemory (make bench prints the bytes per token).
type index struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	now    func() time.Time

	log      *eventlog.Log
	tail     *eventlog.Tail // set by run before ready closes
	users    *userBlocks
	ready    chan struct{} // closed once loaded and caught up after start
	catchUps flights

	mu       sync.RWMutex
	tokens   map[tokenKey]liveToken
	sessions map[string]*liveSession
	gone     map[tokenKey]int64 // revoked or rotated-out tokens → when (Unix seconds)
	ended    map[string]int64   // ended sessions → when (Unix seconds)
}

func newIndex(pool *pgxpool.Pool, tokens, accounts *eventlog.Log, logger *slog.Logger) *index {
	x := &index{pool: pool, logger: logger, now: time.Now, ready: make(chan struct{}), log: tokens,
		users: newUserBlocks(pool, accounts, logger)}
	x.reset()
	return x
}

// reset empties the index (before a snapshot is loaded).
func (x *index) reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.tokens, x.sessions = map[tokenKey]liveToken{}, map[string]*liveSession{}
	x.gone, x.ended = map[tokenKey]int64{}, map[string]int64{}
}

// run loads the snapshot, follows both streams and sweeps until ctx ends.
func (x *index) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { x.users.run(ctx) })
	var checkpoint uint64
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		began := time.Now()
		cp, err := projection.Snapshot(ctx, x.pool, projection.Projection{Name: sessionsProjection, Tables: sessionsTables}, x.load)
		if err == nil {
			checkpoint = cp
			x.logger.Info("live access tokens loaded", "tokens", x.size(), "checkpoint", cp, "took", time.Since(began).Round(time.Millisecond))
			break
		}
		x.logger.Warn("live tokens not loaded yet; retrying", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			return
		}
	}
	wg.Go(func() { x.sweepEvery(ctx, sweepInterval) })
	x.tail = x.log.Tail(eventlog.TailConfig{
		Name: "token.sessions", Subjects: []string{eventsv1.TokenSession.Subjects()}, From: checkpoint + 1, Handle: x.learn,
	}, x.logger)
	wg.Go(func() { x.tail.Run(ctx) })
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		if _, err := x.tail.CatchUp(ctx); err == nil {
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

// load reads the live access tokens of the sessions read model (Snapshot's
// load).
func (x *index) load(ctx context.Context, tx pgx.Tx) error {
	x.reset()
	cutoff := x.now().Add(-expiredGrace)
	rows, err := tx.Query(ctx, `
		SELECT t.token_hash, t.issued_at, t.expires_at,
		       s.session_id, s.client_id, s.user_id, s.username, s.scope, s.device_id
		FROM tokens t JOIN sessions s USING (session_id)
		WHERE t.kind <> 'refresh_token' AND NOT t.revoked AND s.ended_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $1)`, cutoff)
	if err != nil {
		return err
	}
	defer rows.Close()
	x.mu.Lock()
	defer x.mu.Unlock()
	var (
		hash, sessionID, clientID, userID, username, scope, deviceID string
		issued                                                       time.Time
		expires                                                      *time.Time
	)
	for rows.Next() {
		if err := rows.Scan(&hash, &issued, &expires, &sessionID, &clientID, &userID, &username, &scope, &deviceID); err != nil {
			return err
		}
		key, ok := keyOf(hash)
		if !ok {
			continue
		}
		s := x.sessions[sessionID]
		if s == nil {
			s = newLiveSession(sessionID, clientID, userID, username, scope, deviceID)
			x.sessions[sessionID] = s
		}
		t := liveToken{session: s, issued: issued.Unix()}
		if expires != nil {
			t.expires = expires.Unix()
		}
		x.addLocked(key, t)
	}
	return rows.Err()
}

// size is how many access tokens the index holds.
func (x *index) size() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.tokens)
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
		return errs.Wrap(errs.KindUnavailable, "Tokens are not known yet; try again shortly.", ctx.Err())
	}
}

// Answers find gives.
const (
	tokenUnknown = iota // not in memory: perhaps issued elsewhere a moment ago
	tokenDead           // known to be expired, revoked or rotated out
	tokenLive
)

// lookup returns the token's info if the token is live: issued, not
// revoked, its session not ended, not expired, and its user neither locked
// nor deactivated.
func (x *index) lookup(ctx context.Context, hash string) (tokenInfo, bool, error) {
	return x.lookupOr(ctx, hash, true)
}

// lookupImported is lookup for a token in one of Synapse's formats: those
// carry no MAC, so anyone can make up one, and an unknown one is simply
// inactive, without the catch-up with the stream a miss otherwise costs
// (they were all imported, long before, by gatehouse migrate synapse).
func (x *index) lookupImported(ctx context.Context, hash string) (tokenInfo, bool, error) {
	return x.lookupOr(ctx, hash, false)
}

// lookupOr is lookup, catching up with the stream on a miss when catchUp.
func (x *index) lookupOr(ctx context.Context, hash string, catchUp bool) (tokenInfo, bool, error) {
	key, ok := keyOf(hash)
	if !ok {
		if err := x.waitReady(ctx); err != nil {
			return tokenInfo{}, false, err
		}
		return tokenInfo{}, false, nil
	}
	return x.lookupKey(ctx, key, catchUp)
}

// lookupKey is lookupOr for a token's SHA-256 itself (tokenfmt.Hash), as
// introspection has it: no hex on the hot path.
func (x *index) lookupKey(ctx context.Context, key tokenKey, catchUp bool) (tokenInfo, bool, error) {
	if err := x.waitReady(ctx); err != nil {
		return tokenInfo{}, false, err
	}
	info, state := x.find(key)
	if state == tokenUnknown && catchUp {
		if err := x.catchUp(ctx); err != nil {
			return tokenInfo{}, false, errs.Wrap(errs.KindUnavailable, "Tokens cannot be checked right now; try again shortly.", err)
		}
		info, state = x.find(key)
	}
	if state != tokenLive {
		return tokenInfo{}, false, nil
	}
	blocked, err := x.users.blocked(ctx, info.UserID)
	if err != nil || blocked {
		return tokenInfo{}, false, err
	}
	return info, true, nil
}

// lookupRefresh is lookup for a refresh token, which the index does not
// hold: the read model says which session the token is of (every refresh
// token goes out only once the read model holds it: waitsForReadModel), and
// the session aggregate, read from the stream, whether the token still
// refreshes it, as the refresh grant decides (sessions.go, rotate). So a
// lagging or rebuilt read model cannot revive a rotated-out token.
func (x *index) lookupRefresh(ctx context.Context, hash string) (tokenInfo, bool, error) {
	if err := x.waitReady(ctx); err != nil {
		return tokenInfo{}, false, err
	}
	sessionID, _, err := refreshSession(ctx, x.pool, hash)
	if err != nil || sessionID == "" {
		return tokenInfo{}, false, errs.Classify(err, errs.KindUnavailable, "Tokens cannot be checked right now; try again shortly.")
	}
	history, _, err := x.log.Load(ctx, sessionRef(sessionID))
	if err != nil {
		return tokenInfo{}, false, errs.Wrap(errs.KindUnavailable, "Tokens cannot be checked right now; try again shortly.", err)
	}
	st := session.Fold(history)
	t, live := st.LiveRefresh(hash)
	if !live {
		return tokenInfo{}, false, nil
	}
	s := st.Started
	if blocked, err := x.users.blocked(ctx, s.GetUserId()); err != nil || blocked {
		return tokenInfo{}, false, err
	}
	return tokenInfo{
		SessionID: s.GetSessionId(), ClientID: s.GetClientId(), UserID: s.GetUserId(),
		Username: s.GetUsername(), Scope: s.GetScope(), DeviceID: s.GetDeviceId(), IssuedAt: t.GetIssuedAt().AsTime(),
	}, true, nil
}

// find looks a token up in memory.
func (x *index) find(key tokenKey) (tokenInfo, int) {
	now := x.now().Unix()
	x.mu.RLock()
	defer x.mu.RUnlock()
	t, ok := x.tokens[key]
	if !ok {
		if _, dead := x.gone[key]; dead {
			return tokenInfo{}, tokenDead
		}
		return tokenInfo{}, tokenUnknown
	}
	if t.expires != 0 && now >= t.expires {
		return tokenInfo{}, tokenDead
	}
	s := t.session
	info := tokenInfo{
		SessionID: s.id, ClientID: s.clientID.Value(), UserID: s.userID.Value(),
		Username: s.username.Value(), Scope: s.scopeOf(), DeviceID: s.deviceID, IssuedAt: time.Unix(t.issued, 0),
	}
	if t.expires != 0 {
		info.ExpiresAt = time.Unix(t.expires, 0)
	}
	return info, tokenLive
}

// catchUp waits until the tail has handled every session event stored
// before it was called. Concurrent callers share catch-ups: one started
// after a caller arrived serves it.
func (x *index) catchUp(ctx context.Context) error {
	return x.catchUps.do(ctx, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), catchUpTimeout)
		defer cancel()
		_, err := x.tail.CatchUp(ctx)
		return err
	})
}

// learn applies one session event (the tail's Handle).
func (x *index) learn(rec eventlog.Record) error {
	started, err := x.forgottenSession(rec)
	if err != nil {
		return err
	}
	now := x.now().Unix()
	x.mu.Lock()
	defer x.mu.Unlock()
	switch ev := rec.Event.(type) {
	case *eventsv1.SessionStarted:
		if _, ended := x.ended[ev.GetSessionId()]; ended || x.sessions[ev.GetSessionId()] != nil {
			return nil // ended here before the tail got to its start, or seen already
		}
		s := liveSessionOf(ev)
		x.sessions[s.id] = s
		x.issueLocked(s, ev.GetTokens(), rec.OccurredAt())
	case *eventsv1.SessionImported:
		ev0 := ev.GetSession()
		if _, ended := x.ended[ev0.GetSessionId()]; ended || x.sessions[ev0.GetSessionId()] != nil {
			return nil
		}
		s := liveSessionOf(ev0)
		x.sessions[s.id] = s
		for _, t := range ev.GetTokens() {
			x.issueLocked(s, t, rec.OccurredAt())
		}
	case *eventsv1.TokensIssued:
		x.forgetLocked(ev.GetRevokesAccessHash(), now)
		switch s := x.sessions[ev.GetSessionId()]; {
		case s != nil:
			x.issueLocked(s, ev, rec.OccurredAt())
			x.reconcileLocked(s, ev.GetState(), now)
		case ev.GetState() != nil:
			x.learnSnapshotLocked(ev.GetState())
		case started != nil:
			s := liveSessionOf(started)
			x.sessions[s.id] = s
			x.issueLocked(s, ev, rec.OccurredAt())
		}
	case *eventsv1.SessionEnded:
		x.endLocked(ev.GetSessionId(), now)
	case *eventsv1.SessionRenamed:
		// Nothing introspection answers changes, unless its session is
		// known only from here on, or events before it were compacted away.
		x.learnSnapshotLocked(ev.GetState())
	case *eventsv1.SessionSnapshotted:
		x.learnSnapshotLocked(ev.GetState())
	default:
		return eventlog.Unhandled(rec)
	}
	return nil
}

// forgottenSession returns how a session started when rec issues it tokens
// but neither the index knows it (it forgot the session when its access
// token expired: refresh tokens are not held) nor rec carries its state (an
// event written before events carried snapshots): read from the stream.
// Otherwise nil.
func (x *index) forgottenSession(rec eventlog.Record) (*eventsv1.SessionStarted, error) {
	ev, ok := rec.Event.(*eventsv1.TokensIssued) //eventcheck:partial — only an issue of tokens may need its session's start
	if !ok || ev.GetState() != nil {
		return nil, nil
	}
	x.mu.RLock()
	known := x.sessions[ev.GetSessionId()] != nil
	_, ended := x.ended[ev.GetSessionId()]
	x.mu.RUnlock()
	if known || ended {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), catchUpTimeout)
	defer cancel()
	history, _, err := x.log.Load(ctx, sessionRef(ev.GetSessionId()))
	if err != nil {
		return nil, fmt.Errorf("token index: read session %s: %w", ev.GetSessionId(), err)
	}
	st := session.Fold(history)
	if st.Ended {
		return nil, nil
	}
	return st.Started, nil
}

// learnSnapshotLocked learns a live session from its snapshot when the
// index does not know it: its earlier events are gone from the stream (it
// keeps only each session's last one), and the read model the index
// started from had not applied them yet.
func (x *index) learnSnapshotLocked(snap *eventsv1.SessionSnapshot) {
	st := snap.GetSession()
	if snap == nil || snap.GetEnded() {
		return
	}
	if s := x.sessions[st.GetSessionId()]; s != nil {
		x.reconcileLocked(s, snap, x.now().Unix())
		return
	}
	if _, ended := x.ended[st.GetSessionId()]; ended {
		return
	}
	s := liveSessionOf(st)
	x.sessions[s.id] = s
	for _, t := range snap.GetTokens() {
		key, ok := keyOf(t.GetHash())
		if !ok || t.GetConsumedAt() != nil || t.GetRefresh() {
			continue
		}
		lt := liveToken{session: s, issued: t.GetIssuedAt().GetSeconds()}
		if t.GetExpiresAt() != nil {
			lt.expires = t.GetExpiresAt().GetSeconds()
		}
		if lt.expires == 0 || lt.expires > x.now().Add(-expiredGrace).Unix() {
			x.addLocked(key, lt)
		}
	}
	if len(s.tokens) == 0 {
		delete(x.sessions, s.id) // nothing to answer: as the sweep leaves it
	}
}

// reconcileLocked makes a known session's tokens no more than its
// snapshot's live ones: on a compacted stream the tail finds only a
// session's last event, so the events that rotated out or revoked its
// earlier tokens may be gone before the tail (lagging, or starting from
// the read model's checkpoint) reads them (found by the node loss drill:
// rotated-out access tokens answered active on one replica). Tokens are
// added only from the stream, in order, so none issued after snap is
// known yet. A snapshot-less event (written before snapshots) changes
// nothing.
func (x *index) reconcileLocked(s *liveSession, snap *eventsv1.SessionSnapshot, now int64) {
	if snap == nil {
		return
	}
	// A session holds a few tokens: slices on the stack, no map, as this
	// runs for every issue of tokens on every replica.
	live := make([]tokenKey, 0, 8)
	for _, t := range snap.GetTokens() {
		if key, ok := keyOf(t.GetHash()); ok && t.GetConsumedAt() == nil && !t.GetRefresh() {
			live = append(live, key)
		}
	}
	var stale []tokenKey
	for _, key := range s.tokens {
		if !slices.Contains(live, key) {
			stale = append(stale, key)
		}
	}
	for _, key := range stale {
		x.forgetKeyLocked(key, now)
	}
}

// issueLocked adds the access token of one issue to a live session (its
// refresh token is not held: lookupRefresh).
func (x *index) issueLocked(s *liveSession, t *eventsv1.TokensIssued, at time.Time) {
	if key, ok := keyOf(t.GetAccessHash()); ok {
		lt := liveToken{session: s, issued: at.Unix()}
		if t.GetAccessExpiresAt() != nil {
			lt.expires = t.GetAccessExpiresAt().AsTime().Unix()
		}
		x.addLocked(key, lt)
	}
}

// addLocked adds a token unless it is known to be gone already.
func (x *index) addLocked(key tokenKey, t liveToken) {
	if _, dead := x.gone[key]; dead {
		return
	}
	if _, known := x.tokens[key]; !known {
		t.session.tokens = append(t.session.tokens, key)
	}
	x.tokens[key] = t
}

// forgetLocked removes a revoked or rotated-out token and remembers it is gone.
func (x *index) forgetLocked(hash string, now int64) {
	if key, ok := keyOf(hash); ok {
		x.forgetKeyLocked(key, now)
	}
}

// forgetKeyLocked is forgetLocked by key.
func (x *index) forgetKeyLocked(key tokenKey, now int64) {
	x.gone[key] = now
	t, live := x.tokens[key]
	if !live {
		return
	}
	delete(x.tokens, key)
	s := t.session
	for i, k := range s.tokens {
		if k == key {
			s.tokens = append(s.tokens[:i], s.tokens[i+1:]...)
			break
		}
	}
}

// endLocked removes an ended session and its tokens.
func (x *index) endLocked(sessionID string, now int64) {
	x.ended[sessionID] = now
	s := x.sessions[sessionID]
	if s == nil {
		return
	}
	for _, k := range s.tokens {
		delete(x.tokens, k)
		x.gone[k] = now
	}
	delete(x.sessions, sessionID)
}

// markEnded records a session this replica ended itself, before the tail
// brings its end.
func (x *index) markEnded(sessionID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.endLocked(sessionID, x.now().Unix())
}

// markRevoked records access tokens this replica rotated out itself.
func (x *index) markRevoked(hashes ...string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.now().Unix()
	for _, h := range hashes {
		x.forgetLocked(h, now)
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
			x.sweep(x.now())
		}
	}
}

// sweep forgets tokens expired for longer than expiredGrace as of at (and
// sessions left without tokens: a refresh brings a session back, from the
// state its event carries, or from the stream), and tombstones older than
// goneTTL.
func (x *index) sweep(at time.Time) {
	now := at.Unix()
	expiredBefore, goneBefore := now-int64(expiredGrace/time.Second), now-int64(goneTTL/time.Second)
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, t := range x.tokens {
		if t.expires == 0 || t.expires > expiredBefore {
			continue
		}
		delete(x.tokens, k)
		s := t.session
		for i, sk := range s.tokens {
			if sk == k {
				s.tokens = append(s.tokens[:i], s.tokens[i+1:]...)
				break
			}
		}
		if len(s.tokens) == 0 {
			delete(x.sessions, s.id)
		}
	}
	for k, at := range x.gone {
		if at < goneBefore {
			delete(x.gone, k)
		}
	}
	for id, at := range x.ended {
		if at < goneBefore {
			delete(x.ended, id)
		}
	}
}

// flights runs a function for many callers at once: a caller waits for the
// next run that starts after it arrived (one already running may have read
// the stream's head too early for it), so concurrent callers share runs.
type flights struct {
	mu      sync.Mutex
	running *flight
	queued  *flight
}

// flight is one run and its outcome.
type flight struct {
	done chan struct{}
	err  error
}

// do waits for a run of fn that starts after the call, or for ctx.
func (g *flights) do(ctx context.Context, fn func() error) error {
	g.mu.Lock()
	var f *flight
	switch {
	case g.running == nil:
		f = &flight{done: make(chan struct{})}
		g.running = f
		go g.run(f, fn)
	case g.queued == nil:
		f = &flight{done: make(chan struct{})}
		g.queued = f
	default:
		f = g.queued
	}
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("catching up with the stream: %w", context.Cause(ctx))
	}
}

// run runs f, then the run queued meanwhile, if any.
func (g *flights) run(f *flight, fn func() error) {
	f.err = fn()
	close(f.done)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running, g.queued = g.queued, nil
	if g.running != nil {
		go g.run(g.running, fn)
	}
}
