package audittrail_test

import (
	"testing"
	"time"

	"gatehouse.dev/platform/audittrail"
)

func TestRetentionPast(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	for _, tc := range []struct {
		name string
		keep time.Duration
		at   time.Time
		want bool
	}{
		{"kept for ever", 0, now.Add(-100 * 365 * 24 * time.Hour), false},
		{"within the retention", 24 * time.Hour, now.Add(-23 * time.Hour), false},
		{"at the edge", 24 * time.Hour, now.Add(-24 * time.Hour), false},
		{"past the retention", 24 * time.Hour, now.Add(-24*time.Hour - time.Second), true},
		{"from the future", time.Hour, now.Add(time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (audittrail.Retention{Keep: tc.keep, Now: clock}).Past(tc.at); got != tc.want {
				t.Fatalf("Past(%v) with %v kept = %v, want %v", tc.at, tc.keep, got, tc.want)
			}
		})
	}
}
