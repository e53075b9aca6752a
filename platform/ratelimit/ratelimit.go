// Package ratelimit is Gatehouse's one rate limiter: keyed buckets whose
// counts every replica shares through NATS JetStream, so that N replicas allow
// the configured rate and not N times it.
//
// # Algorithm
//
// Each key (a rule and a subject such as a client address or an account) is a
// GCRA bucket (the generic cell rate algorithm, a token bucket written as one
// number): its state is the theoretical arrival time TAT. A rule allows a
// burst of Burst, then one more every Every. Taking a token at time now moves
// TAT to max(TAT, now) + Every, and is allowed when the new TAT is at most
// Burst×Every after now; otherwise the caller waits until it would be.
// Giving a token back (Refund) moves TAT back by Every.
//
// # Shared state
//
// With a Store, each key is one subject of the RATELIMITS stream holding its
// TAT (one message per subject, in memory). A change is a conditional append:
// JetStream accepts it only if the subject's last sequence is still the one
// the change was computed from (Nats-Expected-Last-Subject-Sequence), so two
// replicas taking the last token of a key at once cannot both succeed — the
// loser reads the new state and decides again. Counts are therefore exact
// across replicas: a key never gives more than its rule allows, whatever the
// number of replicas. Each message carries a TTL (per-message TTL, Nats-TTL)
// of when its bucket is full again, so idle keys vanish by themselves.
//
// Each Limiter keeps the last state it saw of each key with its sequence. A
// change is tried from that state at once: one round trip to JetStream when
// this replica changed the key last or the key is new, a read and a retry when
// another replica changed it since. Refusals are always confirmed against the
// stream, since another replica may have given tokens back.
//
// # When the store fails
//
// Each rule says what happens when JetStream cannot be reached in time
// (OnStoreFailure): FailLocal counts in this process's memory (each replica
// enforces the rule on its own, so N replicas allow at most N times the rate
// while the store is down), FailClosed refuses with an unavailable error.
// Without a Store (tests, tools) every rule counts in memory.
package ratelimit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"gatehouse.dev/platform/errs"
)

// Failure is what a rule does when the shared store cannot be reached.
type Failure int

const (
	// FailLocal counts in this process's memory until the store is back.
	FailLocal Failure = iota
	// FailClosed refuses every request of the rule until the store is back.
	FailClosed
)

// Rule is one limit: a burst of Burst, then one more every Every.
type Rule struct {
	// Name names the rule's keys in the store: lower-case letters, digits
	// and '_'. Rules of the same name share their keys' counts.
	Name  string
	Burst int
	Every time.Duration
	// OnStoreFailure is what the rule does when the store cannot be reached.
	OnStoreFailure Failure
}

// ruleName is the shape of a rule's name: one NATS subject token.
var ruleName = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// Validate reports a rule that cannot be enforced.
func (r Rule) Validate() error {
	switch {
	case !ruleName.MatchString(r.Name):
		return fmt.Errorf("ratelimit: rule name %q is not 1..64 of a-z, 0-9, _", r.Name)
	case r.Burst < 1:
		return fmt.Errorf("ratelimit: rule %s: burst %d is less than 1", r.Name, r.Burst)
	case r.Every <= 0:
		return fmt.Errorf("ratelimit: rule %s: refill interval %s is not positive", r.Name, r.Every)
	case int64(r.Every) > math.MaxInt64/4/int64(r.Burst):
		return fmt.Errorf("ratelimit: rule %s: burst × refill interval is beyond a Duration", r.Name)
	}
	return nil
}

// window is Burst×Every: how far ahead of now TAT may be.
func (r Rule) window() int64 { return int64(r.Burst) * int64(r.Every) }

// take returns the TAT after taking one token at now, or the wait until one
// can be taken (and tat unchanged).
func (r Rule) take(tat, now int64) (int64, time.Duration) {
	next := max(tat, now) + int64(r.Every)
	if over := next - now - r.window(); over > 0 {
		return tat, time.Duration(over)
	}
	return next, 0
}

// spent is how many tokens are missing from a bucket whose TAT is tat.
func (r Rule) spent(tat, now int64) int {
	if tat <= now {
		return 0
	}
	return int((tat - now + int64(r.Every) - 1) / int64(r.Every))
}

// Key names one bucket: a rule and a subject such as a client address.
type Key struct {
	Rule    Rule
	Subject string
}

// subject is the key's NATS subject: the rule's name, then a keyed hash
// (HMAC-SHA-256 under Options.HashKey) of the subject, so that addresses and
// account names are not written out, cannot be found again by hashing every
// IPv4 address without the key, and any text fits in one subject token.
// Without a hash key (Options), a plain SHA-256.
func (l *Limiter) subject(k Key) string {
	var sum []byte
	if l.hashKey != nil {
		m := hmac.New(sha256.New, l.hashKey)
		m.Write([]byte(k.Rule.Name + "\x00" + k.Subject))
		sum = m.Sum(nil)
	} else {
		h := sha256.Sum256([]byte(k.Rule.Name + "\x00" + k.Subject))
		sum = h[:]
	}
	return subjectPrefix + "." + k.Rule.Name + "." + hex.EncodeToString(sum[:16])
}

// Decision is the answer of Take.
type Decision struct {
	// Allowed is true when a token was taken from every key.
	Allowed bool
	// RetryAfter is, when refused, how long until every key has a token again.
	RetryAfter time.Duration
	// taken are the keys a token was taken from, for Refund.
	taken []taken
	// refusedBy are the rules whose buckets were empty (metrics).
	refusedBy []string
}

// taken is a key a token was taken from, in the store or in memory.
type taken struct {
	key   Key
	local bool
}

// Options configure a Limiter.
type Options struct {
	// Store shares the counts with every replica; nil counts in memory only.
	Store *Store
	// Logger reports store failures (at most one warning every 10 s).
	Logger *slog.Logger
	// Now replaces time.Now (tests).
	Now func() time.Time
	// HashKey keys the hash that names each key in the store; every replica
	// of every service sharing the store must use the same one (the host
	// derives it from the internal secret). Nil hashes without a key.
	HashKey []byte
	// Meter counts refusals by rule (gatehouse_ratelimit_refusals_total) and
	// takes the shared store failed (gatehouse_ratelimit_store_failures_total);
	// nil counts nothing.
	Meter metric.Meter
	// Rules, when given, are counted from zero at once, so that a rule's
	// first refusal is seen as a change.
	Rules []Rule
}

// Limiter takes tokens from keyed buckets.
type Limiter struct {
	store   *Store
	logger  *slog.Logger
	now     func() time.Time
	hashKey []byte

	// turns serialize this process's changes to a key in the store (by a
	// stripe of its subject): requests from one address at once would
	// otherwise race each other's conditional appends (shared.go).
	turns [keyTurns]sync.Mutex

	mu        sync.Mutex
	known     map[string]state // by subject: the last state seen, or the local count
	lastSweep time.Time
	lastWarn  time.Time

	refusals      metric.Int64Counter
	storeFailures metric.Int64Counter
}

// state is a bucket's TAT (Unix nanoseconds) and the stream sequence of the
// message holding it (0: none, or counted locally).
type state struct {
	tat int64
	seq uint64
}

// warnEvery spaces out the warnings of a failing store.
const warnEvery = 10 * time.Second

// New returns a Limiter.
func New(opts Options) *Limiter {
	l := &Limiter{store: opts.Store, logger: opts.Logger, now: opts.Now, hashKey: opts.HashKey, known: map[string]state{}}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	if l.now == nil {
		l.now = time.Now
	}
	meter := opts.Meter
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("")
	}
	// Errors only for invalid names, which these are not; the instruments work regardless.
	l.refusals, _ = meter.Int64Counter("gatehouse.ratelimit.refusals",
		metric.WithDescription("Requests refused by a rate limit, by rule."))
	l.storeFailures, _ = meter.Int64Counter("gatehouse.ratelimit.store.failures",
		metric.WithDescription("Takes for which the shared store (NATS) failed: counted in this process, or refused."))
	l.storeFailures.Add(context.Background(), 0)
	for _, r := range opts.Rules {
		l.refusals.Add(context.Background(), 0, metric.WithAttributes(attribute.String("rule", r.Name)))
	}
	return l
}

// Take takes one token from every key's bucket, or from none: when a bucket
// is empty the decision is a refusal with how long until all of them hold a
// token again. The error is an unavailable errs.Error when the store cannot
// be reached and a key's rule fails closed.
func (l *Limiter) Take(ctx context.Context, keys ...Key) (Decision, error) {
	d, err := l.take(ctx, keys)
	for _, rule := range d.refusedBy {
		l.refusals.Add(ctx, 1, metric.WithAttributes(attribute.String("rule", rule)))
	}
	return d, err
}

// take is Take without its metrics.
func (l *Limiter) take(ctx context.Context, keys []Key) (Decision, error) {
	if l.store == nil {
		return l.takeLocal(l.now().UnixNano(), keys), nil
	}
	defer l.takeTurns(keys)()
	now := l.now().UnixNano() // once its turn has come: a wait does not count against it
	d, err := l.takeShared(ctx, now, keys)
	if err != nil {
		l.storeFailures.Add(ctx, 1)
		l.warn(ctx, "take", err)
		for _, k := range keys {
			if k.Rule.OnStoreFailure == FailClosed {
				return Decision{}, errs.Wrap(errs.KindUnavailable, "This is unavailable for a moment; try again shortly.",
					fmt.Errorf("ratelimit: rule %s: %w", k.Rule.Name, err))
			}
		}
		return l.takeLocal(now, keys), nil
	}
	return d, nil
}

// Refund gives back the tokens of an allowed decision: what was taken is
// not counted (a sign-in with the right password). A refund that cannot be
// written is logged and lost, which errs on the side of counting.
func (l *Limiter) Refund(ctx context.Context, d Decision) {
	var shared []Key
	for _, t := range d.taken {
		if t.local || l.store == nil {
			l.refundLocal(t.key)
		} else {
			shared = append(shared, t.key)
		}
	}
	if len(shared) > 0 {
		unlock := l.takeTurns(shared)
		err := l.refundShared(ctx, shared)
		unlock()
		if err != nil {
			l.warn(ctx, "refund", err)
		}
	}
}

// Spent is how many tokens are missing from a key's bucket now: the attempts
// counted against it recently. A store failure reads this process's count.
func (l *Limiter) Spent(ctx context.Context, k Key) int {
	now := l.now().UnixNano()
	if l.store != nil {
		st, err := l.read(ctx, l.subject(k))
		if err == nil {
			return k.Rule.spent(st.tat, now)
		}
		l.warn(ctx, "read", err)
	}
	st, _ := l.lookup(l.subject(k))
	return k.Rule.spent(st.tat, now)
}

// lookup returns the last state seen of a subject.
func (l *Limiter) lookup(subject string) (state, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.known[subject]
	return st, ok
}

// remember notes the state of a subject.
func (l *Limiter) remember(subject string, st state) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(l.now().UnixNano())
	l.known[subject] = st
}

// sweepEvery is how often buckets that are full again are forgotten.
const sweepEvery = time.Minute

// sweep forgets the buckets that are full again, at most once a minute,
// which bounds memory by the keys counted within their rules' windows.
// Called with mu held.
func (l *Limiter) sweep(now int64) {
	if time.Duration(now-l.lastSweep.UnixNano()) < sweepEvery {
		return
	}
	l.lastSweep = time.Unix(0, now)
	for subject, st := range l.known {
		if st.tat <= now {
			delete(l.known, subject)
		}
	}
}

// warn logs a store failure, at most once every warnEvery.
func (l *Limiter) warn(ctx context.Context, op string, err error) {
	l.mu.Lock()
	now := l.now()
	quiet := !l.lastWarn.IsZero() && now.Sub(l.lastWarn) < warnEvery
	if !quiet {
		l.lastWarn = now
	}
	l.mu.Unlock()
	if !quiet {
		l.logger.WarnContext(ctx, "rate limits: the shared store failed; rules count in this process or refuse until it is back", "op", op, "err", err)
	}
}

// Len is the number of buckets this process remembers (tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.known)
}
