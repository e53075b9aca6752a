package eventlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/proto"
)

// maxAttempts bounds how often Execute re-decides after losing a race.
const maxAttempts = 8

// Decide turns an aggregate's history into the writes of one command. version is
// the sequence of the aggregate's last event (0 when new); expect it in the
// writes on the aggregate. Returning no writes appends nothing.
type Decide func(history []Record, version uint64) ([]Write, error)

// Execute loads the aggregate, decides, and appends. When another writer changed
// the aggregate in between, it reloads and decides again, so the decision is
// always made on the latest state.
func (l *Log) Execute(ctx context.Context, ref Ref, decide Decide) (Appended, error) {
	for attempt := 1; ; attempt++ {
		history, version, err := l.Load(ctx, ref)
		if err != nil {
			return Appended{}, err
		}
		writes, err := decide(history, version)
		if err != nil || len(writes) == 0 {
			return Appended{}, err
		}
		appended, err := l.Append(ctx, writes...)
		if err == nil || !IsConflict(err) {
			return appended, err
		}
		if attempt == maxAttempts {
			return Appended{}, fmt.Errorf("eventlog: %s still contended after %d attempts: %w", l.Subject(ref), attempt, err)
		}
		// Back off a little, with jitter, so contenders do not collide again.
		backoff := time.Duration(attempt*attempt) * time.Millisecond * time.Duration(1+rand.IntN(4))
		select {
		case <-ctx.Done():
			return Appended{}, ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// Writes turns the events a command decided on one aggregate into writes
// that each expect version, the aggregate's version the decision was made on.
func Writes(ref Ref, actor string, version uint64, decided ...proto.Message) []Write {
	out := make([]Write, len(decided))
	for i, ev := range decided {
		out[i] = Write{Expect: ExpectVersion(version), Event: Event{Aggregate: ref, Actor: actor, Payload: ev}}
	}
	return out
}
