package personal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Reseal records again, sealed under the keyring's current key-encryption
// key, every personal key sealed under another one (after a rotation of that
// key): the same key, so everything sealed under it still opens. Each is
// written expecting the message it replaces, so a key destroyed meanwhile
// stays destroyed; a flow's key keeps its TTL from the time it is written
// again. It returns how many keys were sealed again.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	c, err := s.js.OrderedConsumer(ctx, eventsv1.PersonalKeys.Name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventsv1.PersonalKeys.Prefix + ".>"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("personal: reseal: %w", err)
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("personal: reseal: %w", err)
	}
	last := info.State.LastSeq
	resealed := 0
	for last > 0 {
		batch, err := c.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return resealed, fmt.Errorf("personal: reseal: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return resealed, err
			}
			done, err := s.resealOne(ctx, m.Subject(), meta.Sequence.Stream, m.Data())
			if err != nil {
				return resealed, err
			}
			if done {
				resealed++
			}
			if meta.NumPending == 0 {
				return resealed, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return resealed, fmt.Errorf("personal: reseal: %w", err)
		}
		if n == 0 {
			return resealed, nil
		}
	}
	return resealed, nil
}

// resealOne seals one stored key again when it is not under the current key.
func (s *Store) resealOne(ctx context.Context, subject string, seq uint64, data []byte) (bool, error) {
	owner := Owner(subject[len(eventsv1.PersonalKeys.Prefix)+1:])
	wrapped := &eventsv1.SealedSecret{}
	if err := proto.Unmarshal(data, wrapped); err != nil {
		return false, fmt.Errorf("personal: the key of %s: %w", owner, err)
	}
	if s.keyring.Current(wrapped) {
		return false, nil
	}
	again, err := s.keyring.Reseal(wrapped, owner.where())
	if err != nil {
		return false, fmt.Errorf("personal: seal the key of %s again: %w", owner, err)
	}
	out, err := proto.Marshal(again)
	if err != nil {
		return false, err
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(seq), jetstream.WithExpectStream(eventsv1.PersonalKeys.Name)}
	if owner.IsFlow() {
		opts = append(opts, jetstream.WithMsgTTL(FlowTTL))
	}
	if _, err := s.js.Publish(ctx, subject, out, opts...); err != nil {
		if isWrongLastSequence(err) {
			return false, nil // destroyed or replaced meanwhile
		}
		return false, fmt.Errorf("personal: seal the key of %s again: %w", owner, err)
	}
	s.Forget(owner)
	return true, nil
}
