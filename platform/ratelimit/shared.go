package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// change is one key's conditional append in flight.
type change struct {
	subject string
	next    int64
	fut     jetstream.PubAckFuture
	err     error
	// fresh is set when the state last seen will not do: the append lost a
	// race, or the bucket looked empty (another replica may have given
	// tokens back). The key is then read and decided again.
	fresh bool
}

// maxConflicts bounds the retries of one change that keeps losing races.
// Within a process, changes to a key take turns (takeTurns), so races are
// between replicas: a change that still loses this many has not been
// written, which is a failure of the store (the rule's OnStoreFailure
// decides), not a refusal — the bucket may be far from empty.
const maxConflicts = 8

// errContended is a change that lost maxConflicts races in a row.
var errContended = errors.New("ratelimit: the key kept changing under this change")

// keyTurns is how many stripes the keys' turns are spread over: keys in one
// stripe wait for each other, which costs nothing at the rate of the
// requests these rules count.
const keyTurns = 64

// takeTurns waits for the turn of every key's stripe, in stripe order (two
// takes of the same keys never wait for each other crosswise), and returns
// what ends the turns.
func (l *Limiter) takeTurns(keys []Key) (done func()) {
	stripes := make([]int, 0, len(keys))
	for _, k := range keys {
		h := fnv.New32a()
		h.Write([]byte(k.Rule.Name))
		h.Write([]byte{0})
		h.Write([]byte(k.Subject))
		stripes = append(stripes, int(h.Sum32()%keyTurns))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		l.turns[i].Lock()
	}
	return func() {
		for _, i := range stripes {
			l.turns[i].Unlock()
		}
	}
}

// takeShared takes a token from every key in the store, or from none. The
// first attempt starts from the state last seen of each key, with every
// key's append in flight at once (one round trip for all); a key whose
// append lost a race, or which looked empty, is read and decided again.
func (l *Limiter) takeShared(ctx context.Context, now int64, keys []Key) (Decision, error) {
	changes := make([]change, len(keys))
	for i, k := range keys {
		c := &changes[i]
		c.subject = l.subject(k)
		st, _ := l.lookup(c.subject)
		next, wait := k.Rule.take(st.tat, now)
		if wait > 0 {
			c.fresh = true
			continue
		}
		c.next = next
		c.fut, c.err = l.store.putAsync(c.subject, next, st.seq, ttl(next, now))
	}
	var d Decision
	var failed error
	for i, k := range keys {
		c := &changes[i]
		if c.fut != nil {
			seq, err := l.store.await(ctx, c.fut)
			switch {
			case err == nil:
				l.remember(c.subject, state{tat: c.next, seq: seq})
				d.taken = append(d.taken, taken{key: k})
				continue
			case isConflict(err):
				c.fresh = true
			default:
				c.err = err
			}
		}
		if c.fresh && c.err == nil {
			var wait time.Duration
			if wait, c.err = l.takeFresh(ctx, k, c.subject, now); c.err == nil {
				if wait > 0 {
					d.RetryAfter = max(d.RetryAfter, wait)
					d.refusedBy = append(d.refusedBy, k.Rule.Name)
				} else {
					d.taken = append(d.taken, taken{key: k})
				}
				continue
			}
		}
		if c.err != nil {
			failed = c.err
		}
	}
	if failed != nil || d.RetryAfter > 0 {
		if err := l.refundShared(ctx, keysOf(d.taken)); err != nil {
			l.warn(ctx, "refund", err)
		}
		return Decision{RetryAfter: d.RetryAfter, refusedBy: d.refusedBy}, failed
	}
	d.Allowed = true
	return d, nil
}

// takeFresh takes a token from a key after reading its state, again after
// each lost race. It returns the wait when the bucket is empty.
func (l *Limiter) takeFresh(ctx context.Context, k Key, subject string, now int64) (time.Duration, error) {
	for attempt := 0; ; attempt++ {
		st, err := l.read(ctx, subject)
		if err != nil {
			return 0, err
		}
		next, wait := k.Rule.take(st.tat, now)
		if wait > 0 {
			return wait, nil
		}
		seq, err := l.store.put(ctx, subject, next, st.seq, ttl(next, now))
		switch {
		case err == nil:
			l.remember(subject, state{tat: next, seq: seq})
			return 0, nil
		case !isConflict(err):
			return 0, err
		case attempt >= maxConflicts:
			return 0, fmt.Errorf("%w: %d tries", errContended, attempt+1)
		}
	}
}

// refundShared moves each key's TAT in the store back by one interval: from
// the state last seen at once, all in flight together, and after a read for
// a key whose append lost a race.
func (l *Limiter) refundShared(ctx context.Context, keys []Key) error {
	now := l.now().UnixNano()
	changes := make([]change, len(keys))
	for i, k := range keys {
		c := &changes[i]
		c.subject = l.subject(k)
		st, _ := l.lookup(c.subject)
		if st.seq == 0 {
			c.fresh = true
			continue
		}
		c.next = refunded(st.tat, k.Rule, now)
		c.fut, c.err = l.store.putAsync(c.subject, c.next, st.seq, ttl(c.next, now))
	}
	var failed error
	for i, k := range keys {
		c := &changes[i]
		if c.fut != nil {
			seq, err := l.store.await(ctx, c.fut)
			switch {
			case err == nil:
				l.remember(c.subject, state{tat: c.next, seq: seq})
				continue
			case isConflict(err):
				c.fresh = true
			default:
				c.err = err
			}
		}
		if c.fresh && c.err == nil {
			c.err = l.refundFresh(ctx, k, c.subject)
		}
		if c.err != nil {
			failed = c.err
		}
	}
	return failed
}

// refundFresh gives a token back to a key after reading its state.
func (l *Limiter) refundFresh(ctx context.Context, k Key, subject string) error {
	for attempt := 0; ; attempt++ {
		st, err := l.read(ctx, subject)
		if err != nil {
			return err
		}
		now := l.now().UnixNano()
		if st.seq == 0 || st.tat <= now {
			return nil // expired or full meanwhile: nothing to give back
		}
		next := refunded(st.tat, k.Rule, now)
		seq, err := l.store.put(ctx, subject, next, st.seq, ttl(next, now))
		if err == nil {
			l.remember(subject, state{tat: next, seq: seq})
			return nil
		}
		if !isConflict(err) || attempt >= maxConflicts {
			return err
		}
	}
}

// refunded is a TAT moved back by one interval; one in the past means a
// full bucket, as now does.
func refunded(tat int64, r Rule, now int64) int64 {
	return max(tat-int64(r.Every), now)
}

// read loads a key's state from the store and remembers it.
func (l *Limiter) read(ctx context.Context, subject string) (state, error) {
	tat, seq, err := l.store.get(ctx, subject)
	if err != nil {
		return state{}, err
	}
	st := state{tat: tat, seq: seq}
	l.remember(subject, st)
	return st, nil
}

// keysOf lists the keys of taken tokens.
func keysOf(ts []taken) []Key {
	keys := make([]Key, len(ts))
	for i, t := range ts {
		keys[i] = t.key
	}
	return keys
}

// ttl is how long the store keeps a TAT written at now: until the bucket
// is full again, rounded up to whole seconds (JetStream's granularity).
func ttl(tat, now int64) time.Duration {
	d := time.Duration(tat-now) + time.Second
	return max(d.Truncate(time.Second)+time.Second, time.Second)
}
