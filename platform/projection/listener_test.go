package projection_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// Many commands waiting on the same projection at once, each for its own
// event, all return once their event is applied, and each then reads its own
// write; a waiter whose context ends returns, whatever the others wait on.
// (The waiters share their reads of the checkpoint, Listener.readCheckpoint.)
func TestManyWaitersShareTheirReads(t *testing.T) {
	e := setup(t)
	stop := e.start(t)
	defer stop()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range 32 {
		wg.Go(func() {
			seq := e.appendNames(t, 4, 1)
			ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
			defer cancel()
			err := e.listener.WaitFor(ctx, names.Name, seq)
			if err == nil {
				var applied int64
				err = e.pool.QueryRow(e.ctx, `SELECT max(last_seq) FROM names`).Scan(&applied)
				if err == nil && uint64(applied) < seq {
					err = errors.New("returned before its event was applied")
				}
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	gone, cancel := context.WithCancel(e.ctx)
	cancel()
	if err := e.listener.WaitFor(gone, names.Name, 1<<40); !errors.Is(err, context.Canceled) {
		t.Errorf("a waiter whose context ended: %v, want context.Canceled", err)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
