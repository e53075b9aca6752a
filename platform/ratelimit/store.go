package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/eventlog"
)

// StreamName is the JetStream stream holding every replica's shared counts.
const StreamName = "RATELIMITS"

// subjectPrefix starts the subject of every key: ratelimit.<rule>.<hash>.
const subjectPrefix = "ratelimit"

// The stream's bounds: a key is about 150 bytes, so a million keys (of
// addresses and accounts counted within their rules' windows) fit in the
// byte limit. Beyond them the oldest keys are dropped, which forgets the
// counts that are closest to refilled anyway.
const (
	maxKeys     = 1 << 20
	maxBytes    = 256 << 20
	opTimeout   = 500 * time.Millisecond
	tatEncoding = 10 // TATs are written as decimal Unix nanoseconds
)

// Store is the shared state of every replica's counts: the RATELIMITS
// stream, in memory (counts are worth keeping across a process restart, not
// across a NATS restart), one message per key with a TTL.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// StoreConfig configures the stream.
type StoreConfig struct {
	// Replicas is the stream's replication factor (nats.replicas).
	Replicas int
}

// OpenStore creates or updates the RATELIMITS stream and returns the store.
// Every service that limits opens it with the same configuration.
func OpenStore(ctx context.Context, js jetstream.JetStream, cfg StoreConfig) (*Store, error) {
	stream, err := eventlog.EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:              StreamName,
		Description:       "Gatehouse rate-limit counts shared by every replica (one message per key, with a TTL)",
		Subjects:          []string{subjectPrefix + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.MemoryStorage,
		Replicas:          max(cfg.Replicas, 1),
		MaxMsgsPerSubject: 1,
		MaxMsgs:           maxKeys,
		MaxBytes:          maxBytes,
		Discard:           jetstream.DiscardOld,
		AllowMsgTTL:       true,
		AllowDirect:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("ratelimit: create stream %s: %w", StreamName, err)
	}
	// A JetStream context of its own, whose writes give up when unanswered
	// (the service's own is shared with the event log).
	own, err := jetstream.New(js.Conn(), jetstream.WithPublishAsyncTimeout(opTimeout), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	return &Store{js: own, stream: stream}, nil
}

// get reads a key's TAT and the sequence of the message holding it; a key
// without a message has TAT 0 (a full bucket) and sequence 0.
func (s *Store) get(ctx context.Context, subject string) (int64, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	msg, err := s.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("ratelimit: read %s: %w", subject, err)
	}
	tat, err := strconv.ParseInt(string(msg.Data), tatEncoding, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("ratelimit: %s holds %q, not a time", subject, msg.Data)
	}
	return tat, msg.Sequence, nil
}

// putAsync starts writing a key's TAT if the subject's last sequence is
// still seq (0: no message), to live ttl; await gives its outcome.
func (s *Store) putAsync(subject string, tat int64, seq uint64, ttl time.Duration) (jetstream.PubAckFuture, error) {
	fut, err := s.js.PublishAsync(subject, strconv.AppendInt(nil, tat, tatEncoding),
		jetstream.WithExpectLastSequencePerSubject(seq), jetstream.WithMsgTTL(ttl), jetstream.WithExpectStream(StreamName))
	if err != nil {
		return nil, fmt.Errorf("ratelimit: write %s: %w", subject, err)
	}
	return fut, nil
}

// await returns the sequence of the message a putAsync wrote; a lost race is
// an error isConflict recognises.
func (s *Store) await(ctx context.Context, fut jetstream.PubAckFuture) (uint64, error) {
	timer := time.NewTimer(opTimeout)
	defer timer.Stop()
	select {
	case ack := <-fut.Ok():
		return ack.Sequence, nil
	case err := <-fut.Err():
		return 0, fmt.Errorf("ratelimit: write %s: %w", fut.Msg().Subject, err)
	case <-timer.C:
		return 0, fmt.Errorf("ratelimit: write %s: no answer within %s", fut.Msg().Subject, opTimeout)
	case <-ctx.Done():
		return 0, fmt.Errorf("ratelimit: write %s: %w", fut.Msg().Subject, ctx.Err())
	}
}

// put writes a key's TAT as putAsync does and waits for the outcome.
func (s *Store) put(ctx context.Context, subject string, tat int64, seq uint64, ttl time.Duration) (uint64, error) {
	fut, err := s.putAsync(subject, tat, seq, ttl)
	if err != nil {
		return 0, err
	}
	return s.await(ctx, fut)
}

// isConflict reports whether err is JetStream refusing a write whose
// expected last sequence is no longer the subject's.
func isConflict(err error) bool {
	var code jetstream.ErrorCode
	var apiErr *jetstream.APIError
	var jsErr jetstream.JetStreamError
	switch {
	case errors.As(err, &apiErr):
		code = apiErr.ErrorCode
	case errors.As(err, &jsErr) && jsErr.APIError() != nil:
		code = jsErr.APIError().ErrorCode
	}
	return code == jetstream.JSErrCodeStreamWrongLastSequence || code == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
