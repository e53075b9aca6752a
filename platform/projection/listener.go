package projection

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Listener follows the checkpoint announcements of one schema's projections
// over a single LISTEN connection, and wakes whoever waits on them.
type Listener struct {
	pool   *pgxpool.Pool
	logger *slog.Logger

	mu     sync.Mutex
	epoch  uint64 // bumped on every (re)connect: announcements may have been missed
	states map[string]*watchState
}

// watchState is what the listener knows of one projection.
type watchState struct {
	seq    uint64        // highest checkpoint announced since the last connect
	resets uint64        // resets announced
	wake   chan struct{} // closed and replaced on every announcement
	builds chan struct{} // closed and replaced when a build is asked for or swapped in
	reads  uint64        // checkpoint reads started for waiters (readCheckpoint)
	read   *sharedRead   // the one in flight, if any
}

// sharedRead is one read of a checkpoint row that every waiter needing a
// read begun after it started waiting shares.
type sharedRead struct {
	id   uint64
	done chan struct{} // closed once cp and err are set
	cp   uint64
	err  error
}

// NewListener returns a Listener for the pool's schema; call Run to start it.
func NewListener(pool *pgxpool.Pool, logger *slog.Logger) *Listener {
	return &Listener{pool: pool, logger: logger, states: map[string]*watchState{}}
}

// Run listens until ctx ends, reconnecting after failures.
func (l *Listener) Run(ctx context.Context) error {
	for {
		err := l.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		l.logger.Warn("projection listener disconnected; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (l *Listener) listen(ctx context.Context) error {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	// A LISTEN connection must not go back to the pool.
	pgc := conn.Hijack()
	defer pgc.Close(context.WithoutCancel(ctx))
	var schema string
	if err := pgc.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("current schema: %w", err)
	}
	if _, err := pgc.Exec(ctx, `LISTEN "`+notifyChannel(schema)+`"`); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	l.reconnected()
	for {
		n, err := pgc.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait: %w", err)
		}
		l.announce(n.Payload)
	}
}

// reconnected forgets what was announced, since announcements may have been missed,
// and wakes every waiter so it reads the checkpoints again.
func (l *Listener) reconnected() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.epoch++
	for _, st := range l.states {
		st.seq = 0
		close(st.wake)
		st.wake = make(chan struct{})
		close(st.builds)
		st.builds = make(chan struct{})
	}
}

// announce handles one "name:seq" or "name:reset" payload.
func (l *Listener) announce(payload string) {
	name, value, ok := strings.Cut(payload, ":")
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stateLocked(name)
	switch value {
	case "reset":
		st.resets++
		st.seq = 0
	case "build", "swapped":
		close(st.builds)
		st.builds = make(chan struct{})
	default:
		if seq, err := strconv.ParseUint(value, 10, 64); err == nil && seq > st.seq {
			st.seq = seq
		}
	}
	close(st.wake)
	st.wake = make(chan struct{})
}

func (l *Listener) stateLocked(name string) *watchState {
	st, ok := l.states[name]
	if !ok {
		st = &watchState{wake: make(chan struct{}), builds: make(chan struct{})}
		l.states[name] = st
	}
	return st
}

// watch returns what is known of a projection and a channel closed on the next announcement.
func (l *Listener) watch(name string) (seq, resets, epoch uint64, wake <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stateLocked(name)
	return st.seq, st.resets, l.epoch, st.wake
}

// buildWatch returns a channel closed when a build of the member is asked
// for or swapped in (or the listener reconnects).
func (l *Listener) buildWatch(name string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stateLocked(name).builds
}

// seen is what a leader knew of its member's announcements when it read the
// checkpoint.
type seen struct {
	resets, epoch uint64
	wake          <-chan struct{}
}

// snapshot records what is known of a member before its leader reads the checkpoint.
func (l *Listener) snapshot(name string) seen {
	_, resets, epoch, wake := l.watch(name)
	return seen{resets: resets, epoch: epoch, wake: wake}
}

// rewound reports whether the member's checkpoint was rewound since s: a
// reset was announced, or the listener reconnected (announcements may have
// been missed) and the checkpoint no longer holds the value current() says
// the leader wrote last. It returns the state to compare against next.
func (l *Listener) rewound(ctx context.Context, pool *pgxpool.Pool, name string, s seen, current func() uint64) (bool, seen) {
	_, resets, epoch, wake := l.watch(name)
	if resets != s.resets {
		return true, s
	}
	if epoch != s.epoch {
		if cp, err := Checkpoint(ctx, pool, name); err == nil && cp != current() {
			return true, s
		}
	}
	return false, seen{resets: resets, epoch: epoch, wake: wake}
}

// watchRewind cancels ctx with errRewound once the member's checkpoint is
// rewound (see rewound), and returns when ctx ends. It holds advancing while
// it compares the checkpoint row with current: the member holds it from
// writing the row to storing what current returns, so its own advance is
// never taken for a rewind (a reactor took one for a rewind and handled an
// event twice).
func (l *Listener) watchRewind(ctx context.Context, pool *pgxpool.Pool, name string, s seen, current func() uint64, advancing sync.Locker, cancel context.CancelCauseFunc) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		var rewound bool
		advancing.Lock()
		rewound, s = l.rewound(ctx, pool, name, s, current)
		advancing.Unlock()
		if rewound {
			cancel(errRewound)
			return
		}
	}
}

// WaitFor blocks until the projection has applied the event at stream sequence
// seq (its checkpoint is at or past seq), or ctx ends. Use it after appending, so
// that the next read of the projection sees the command's own writes.
//
// The checkpoint row decides; announcements only say when to read it: when
// one reaches seq, and after the listener reconnects (announcements may have
// been missed). A wait that hears nothing reads it every unannouncedCheck
// too, for an announcement made before it began and lost to a reconnect. A
// command thus reads the row once, when its event is applied, not also
// before; and the commands waiting on one batch share that read
// (readCheckpoint).
func (l *Listener) WaitFor(ctx context.Context, name string, seq uint64) error {
	_, _, checkedEpoch, _ := l.watch(name)
	poll := time.NewTicker(unannouncedCheck)
	defer poll.Stop()
	polled := false
	for {
		announced, _, epoch, wake := l.watch(name)
		if announced >= seq || epoch != checkedEpoch || polled {
			cp, err := l.readCheckpoint(ctx, name)
			if err != nil {
				return err
			}
			if cp >= seq {
				return nil
			}
			checkedEpoch, polled = epoch, false
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("projection %s: waiting for seq %d: %w", name, seq, ctx.Err())
		case <-wake:
		case <-poll.C:
			polled = true
		}
	}
}

// unannouncedCheck is how often WaitFor reads a checkpoint nobody announces.
const unannouncedCheck = 100 * time.Millisecond

// readCheckpoint reads name's checkpoint row for a waiter, in a read begun
// after the call: what the waiter appended, and a reset committed before
// that, are seen as a read of its own would see them. Waiters share reads:
// every request waiting on one batch of a projection hears its
// announcement at once, and each reading the row for itself made one query
// per request (issue 16: a token issued under load); one query per
// announcement, shared, is as exact. A shared read that failed is tried
// again by each of its other waiters, with their own contexts.
func (l *Listener) readCheckpoint(ctx context.Context, name string) (uint64, error) {
	l.mu.Lock()
	st := l.stateLocked(name)
	mark := st.reads // a read with a higher id began after this call
	for {
		r := st.read
		if r == nil {
			st.reads++
			r = &sharedRead{id: st.reads, done: make(chan struct{})}
			st.read = r
			l.mu.Unlock()
			r.cp, r.err = Checkpoint(ctx, l.pool, name)
			l.mu.Lock()
			st.read = nil
			close(r.done)
			l.mu.Unlock()
			return r.cp, r.err
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("projection %s: read checkpoint: %w", name, ctx.Err())
		case <-r.done:
		}
		if r.id > mark && r.err == nil {
			return r.cp, nil
		}
		l.mu.Lock() // begun before this call, or failed: another read
	}
}
