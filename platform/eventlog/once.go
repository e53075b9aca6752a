package eventlog

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Once returns the first event of an aggregate that is written once and never
// changes (a service's generated keys), creating it on first use. Replicas
// starting together race with ExpectNew: one event wins and all return it.
func (l *Log) Once(ctx context.Context, ref Ref, actor string, create func() (proto.Message, error)) (Record, error) {
	for range 3 {
		history, _, err := l.Load(ctx, ref)
		if err != nil {
			return Record{}, err
		}
		if len(history) > 0 {
			return history[0], nil
		}
		ev, err := create()
		if err != nil {
			return Record{}, fmt.Errorf("eventlog: create %s: %w", l.Subject(ref), err)
		}
		_, err = l.Append(ctx, Write{Expect: ExpectNew(), Event: Event{Aggregate: ref, Actor: actor, Payload: ev}})
		if err != nil && !IsConflict(err) {
			return Record{}, err
		}
	}
	return Record{}, fmt.Errorf("eventlog: %s could not be created", l.Subject(ref))
}
