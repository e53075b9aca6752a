package pg

import (
	"context"
	"log/slog"
	"time"
)

// SweepEvery runs drop every d until ctx ends, and logs how many rows it
// dropped (as what) or its failure: the read models' hourly removal of rows
// their stream no longer holds either.
func SweepEvery(ctx context.Context, d time.Duration, logger *slog.Logger, what string, drop func(context.Context) (int64, error)) {
	for {
		if n, err := drop(ctx); err != nil && ctx.Err() == nil {
			logger.WarnContext(ctx, "could not drop "+what, "err", err)
		} else if n > 0 {
			logger.InfoContext(ctx, "dropped "+what, "rows", n)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
