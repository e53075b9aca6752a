package ratelimit

import (
	"testing"
	"time"
)

var (
	t0      = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	perAddr = Rule{Name: "address", Burst: 5, Per: time.Hour}
	perIP   = Rule{Name: "ip", Burst: 20, Per: time.Hour}
)

func TestAllow(t *testing.T) {
	type call struct {
		at       time.Duration
		keys     []Key
		want     bool
		wantWait time.Duration // checked when not allowed, to the second
	}
	alice := Key{perAddr, "alice@example.org"}
	bob := Key{perAddr, "bob@example.org"}
	ip := Key{perIP, "192.0.2.1"}
	tests := []struct {
		name  string
		calls []call
	}{
		{"burst then empty", []call{
			{0, []Key{alice}, true, 0}, {0, []Key{alice}, true, 0}, {0, []Key{alice}, true, 0},
			{0, []Key{alice}, true, 0}, {0, []Key{alice}, true, 0},
			{0, []Key{alice}, false, 12 * time.Minute},
			{0, []Key{bob}, true, 0},
		}},
		{"refills continuously", []call{
			{0, []Key{alice}, true, 0}, {0, []Key{alice}, true, 0}, {0, []Key{alice}, true, 0},
			{0, []Key{alice}, true, 0}, {0, []Key{alice}, true, 0},
			{11 * time.Minute, []Key{alice}, false, time.Minute},
			{12 * time.Minute, []Key{alice}, true, 0},
			{12 * time.Minute, []Key{alice}, false, 12 * time.Minute},
		}},
		{"all or nothing", []call{
			{0, []Key{alice, ip}, true, 0}, {0, []Key{alice, ip}, true, 0}, {0, []Key{alice, ip}, true, 0},
			{0, []Key{alice, ip}, true, 0}, {0, []Key{alice, ip}, true, 0},
			// alice is empty: the IP's bucket is not charged for the refusal.
			{0, []Key{alice, ip}, false, 12 * time.Minute},
			{0, []Key{alice, ip}, false, 12 * time.Minute},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New()
			for i, c := range tt.calls {
				ok, wait := l.Allow(t0.Add(c.at), c.keys...)
				if ok != c.want {
					t.Fatalf("call %d: allowed = %v, want %v", i, ok, c.want)
				}
				if !ok && wait.Round(time.Second) != c.wantWait {
					t.Errorf("call %d: wait %v, want %v", i, wait, c.wantWait)
				}
			}
		})
	}
	// The IP bucket above kept its 15 tokens: 15 more from other addresses pass, the 16th does not.
	l := New()
	for i := range 20 {
		if ok, _ := l.Allow(t0, Key{perIP, "192.0.2.1"}); !ok {
			t.Fatalf("request %d of 20 refused", i+1)
		}
	}
	if ok, wait := l.Allow(t0, Key{perIP, "192.0.2.1"}); ok || wait != 3*time.Minute {
		t.Errorf("21st request: allowed %v, wait %v; want refused for 3m", ok, wait)
	}
}

func TestSweepForgetsIdleBuckets(t *testing.T) {
	l := New()
	for _, s := range []string{"a", "b", "c"} {
		l.Allow(t0, Key{perAddr, s})
	}
	l.Allow(t0.Add(30*time.Minute), Key{perAddr, "d"})
	if l.Len() != 4 {
		t.Fatalf("%d buckets, want 4", l.Len())
	}
	l.Allow(t0.Add(61*time.Minute), Key{perAddr, "d"})
	if l.Len() != 1 {
		t.Errorf("%d buckets after an idle hour, want 1", l.Len())
	}
}
