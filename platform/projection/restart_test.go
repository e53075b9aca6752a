package projection

import (
	"testing"
	"time"
)

// The wait doubles while leads fail quickly, stops at restartMax, and a
// lead that held starts it over (a runner that failed while a cluster
// formed must not carry the grown wait into its first later error).
func TestRestartsStartOverAfterAHealthyLead(t *testing.T) {
	var r restarts
	steps := []struct {
		ran  time.Duration
		want time.Duration
	}{
		{0, 100 * time.Millisecond},
		{time.Second, 200 * time.Millisecond},
		{0, 400 * time.Millisecond},
		{0, 800 * time.Millisecond},
		{0, 1600 * time.Millisecond},
		{0, 3200 * time.Millisecond},
		{0, 6400 * time.Millisecond},
		{0, restartMax},
		{0, restartMax},
		{healthyLead, restartMin},
		{0, 200 * time.Millisecond},
	}
	for i, s := range steps {
		if got := r.after(s.ran); got != s.want {
			t.Fatalf("step %d (lead ran %v): wait %v, want %v", i, s.ran, got, s.want)
		}
	}
	r.reset()
	if got := r.after(0); got != restartMin {
		t.Fatalf("after reset: %v", got)
	}
}
