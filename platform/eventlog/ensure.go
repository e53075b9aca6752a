package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Asking for a stream in a JetStream cluster.
const (
	// ensureAttempt bounds one request to create or update a stream.
	ensureAttempt = 2 * time.Second
	// ensureFor bounds all the requests of one EnsureStream when ctx has
	// no earlier deadline.
	ensureFor = 30 * time.Second
	// ensurePause is the wait before asking again a cluster that said it
	// cannot place the stream yet.
	ensurePause = 250 * time.Millisecond
)

// JetStream's answers that a cluster not yet whole gives (nats-server's
// JSClusterNoPeersErrF and JSClusterNotAvailErr).
const (
	errCodeNoPeers      jetstream.ErrorCode = 10005
	errCodeNotAvailable jetstream.ErrorCode = 10008
)

// EnsureStream creates the stream or brings its configuration up to date,
// as jetstream's CreateOrUpdateStream does, and asks again when a request
// goes unanswered. In a cluster the replicas of every service start
// together and ask for the same replicated stream at the same moment, and
// JetStream answers only some of those requests (NATS 2.15: three of ten
// in the node loss drill, e2e/node_loss_test.go; the others time out); a
// cluster still electing its leader answers none. Asking again finds the
// stream created. A cluster not yet whole (a node not back after a crash,
// the meta leader being elected) answers "no suitable peers for placement"
// or "temporarily unavailable": EnsureStream asks again a moment later. A
// stream just created may have no leader yet, and reads of it then find no
// responders: EnsureStream returns once it has one. It gives up after
// ensureFor or when ctx ends, with the last answer; any other error is
// returned at once.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, ensureFor)
	defer cancel()
	stream, err := askStream(ctx, cfg.Name, false, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	})
	if err != nil {
		return nil, err
	}
	return stream, waitForLeader(ctx, stream)
}

// askStream asks for a stream until it is answered: a request left
// unanswered is asked again at once, and one a cluster not yet whole
// refused (and, when noResponders, one nobody answered) after ensurePause;
// any other error is returned at once, and the last one when ctx ends.
func askStream(ctx context.Context, name string, noResponders bool, ask func(context.Context) (jetstream.Stream, error)) (jetstream.Stream, error) {
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, ensureAttempt)
		stream, err := ask(attempt)
		cancelAttempt()
		if err == nil || ctx.Err() != nil {
			return stream, err
		}
		switch {
		case notYet(err) || noResponders && errors.Is(err, nats.ErrNoResponders):
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("stream %s: %w", name, err)
			case <-time.After(ensurePause):
			}
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		default:
			return nil, err
		}
	}
}

// notYet is a cluster's answer that it cannot place or create a stream
// until it is whole again.
func notYet(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == errCodeNoPeers || api.ErrorCode == errCodeNotAvailable)
}

// FindStream looks a stream up as EnsureStream asks for one: an unanswered
// request, or a cluster not yet whole, is asked again until ensureFor or
// ctx ends. A stream that does not exist is jetstream.ErrStreamNotFound at
// once. (A replica starting with the cluster failed its start on a lookup
// left unanswered: the node loss drill.)
func FindStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, ensureFor)
	defer cancel()
	return askStream(ctx, name, true, func(ctx context.Context) (jetstream.Stream, error) {
		return js.Stream(ctx, name)
	})
}

// waitForLeader waits until a replicated stream has elected its leader.
func waitForLeader(ctx context.Context, stream jetstream.Stream) error {
	info := stream.CachedInfo()
	for info.Cluster != nil && info.Cluster.Leader == "" {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s has no leader: %w", info.Config.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		attempt, cancel := context.WithTimeout(ctx, ensureAttempt)
		next, err := stream.Info(attempt)
		cancel()
		if err == nil {
			info = next
		}
	}
	return nil
}
