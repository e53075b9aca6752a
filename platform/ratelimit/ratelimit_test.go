package ratelimit

import (
	"context"
	"testing"
	"time"
)

var (
	t0      = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	perAddr = Rule{Name: "address", Burst: 5, Every: 12 * time.Minute} // 5 an hour
	perIP   = Rule{Name: "ip", Burst: 20, Every: 3 * time.Minute}      // 20 an hour
)

// clock is a settable time for a Limiter.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func TestTakeInMemory(t *testing.T) {
	type call struct {
		at       time.Duration
		keys     []Key
		want     bool
		wantWait time.Duration // checked when not allowed, to the second
		refund   bool          // give the tokens back when allowed
	}
	alice := Key{perAddr, "alice@example.org"}
	bob := Key{perAddr, "bob@example.org"}
	ip := Key{perIP, "192.0.2.1"}
	five := func(keys ...Key) []call {
		var c []call
		for range 5 {
			c = append(c, call{0, keys, true, 0, false})
		}
		return c
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"burst then empty", append(five(alice),
			call{0, []Key{alice}, false, 12 * time.Minute, false},
			call{0, []Key{bob}, true, 0, false},
		)},
		{"refills continuously", append(five(alice),
			call{11 * time.Minute, []Key{alice}, false, time.Minute, false},
			call{12 * time.Minute, []Key{alice}, true, 0, false},
			call{12 * time.Minute, []Key{alice}, false, 12 * time.Minute, false},
		)},
		{"all or nothing", append(five(alice, ip),
			// alice is empty: the IP's bucket is not charged for the refusal.
			call{0, []Key{alice, ip}, false, 12 * time.Minute, false},
			call{0, []Key{alice, ip}, false, 12 * time.Minute, false},
		)},
		{"refunded tokens are not counted", []call{
			{0, []Key{alice}, true, 0, true}, {0, []Key{alice}, true, 0, true}, {0, []Key{alice}, true, 0, true},
			{0, []Key{alice}, true, 0, true}, {0, []Key{alice}, true, 0, true}, {0, []Key{alice}, true, 0, true},
			{0, []Key{alice}, true, 0, false}, {0, []Key{alice}, true, 0, false}, {0, []Key{alice}, true, 0, false},
			{0, []Key{alice}, true, 0, false}, {0, []Key{alice}, true, 0, false},
			{0, []Key{alice}, false, 12 * time.Minute, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t0}
			l := New(Options{Now: c.Now})
			for i, call := range tt.calls {
				c.now = t0.Add(call.at)
				d, err := l.Take(context.Background(), call.keys...)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allowed != call.want {
					t.Fatalf("call %d: allowed = %v, want %v", i, d.Allowed, call.want)
				}
				if !d.Allowed && d.RetryAfter.Round(time.Second) != call.wantWait {
					t.Errorf("call %d: wait %v, want %v", i, d.RetryAfter, call.wantWait)
				}
				if call.refund {
					l.Refund(context.Background(), d)
				}
			}
		})
	}
	// The IP bucket of "all or nothing" kept 15 tokens: with a fresh limiter,
	// 20 pass and the 21st waits one interval.
	c := &clock{t0}
	l := New(Options{Now: c.Now})
	for i := range 20 {
		if d, _ := l.Take(context.Background(), ip); !d.Allowed {
			t.Fatalf("request %d of 20 refused", i+1)
		}
	}
	if d, _ := l.Take(context.Background(), ip); d.Allowed || d.RetryAfter != 3*time.Minute {
		t.Errorf("21st request: %+v; want refused for 3m", d)
	}
}

func TestSpent(t *testing.T) {
	c := &clock{t0}
	l := New(Options{Now: c.Now})
	rule := Rule{Name: "login", Burst: 3, Every: 20 * time.Second}
	k := Key{rule, "192.0.2.1"}
	for want := range 4 {
		if got := l.Spent(context.Background(), k); got != want {
			t.Fatalf("spent %d, want %d", got, want)
		}
		l.Take(context.Background(), k)
	}
	c.now = t0.Add(25 * time.Second) // one refilled, and a bit
	if got := l.Spent(context.Background(), k); got != 2 {
		t.Errorf("after 25 s: spent %d, want 2", got)
	}
}

func TestSweepForgetsFullBuckets(t *testing.T) {
	c := &clock{t0}
	l := New(Options{Now: c.Now})
	for _, s := range []string{"a", "b", "c"} {
		l.Take(context.Background(), Key{perAddr, s})
	}
	c.now = t0.Add(5 * time.Minute)
	l.Take(context.Background(), Key{perAddr, "d"})
	if l.Len() != 4 {
		t.Fatalf("%d buckets, want 4", l.Len())
	}
	c.now = t0.Add(13 * time.Minute) // a, b, c are full again at 12 minutes, d at 17
	l.Take(context.Background(), Key{perAddr, "e"})
	if l.Len() != 2 {
		t.Errorf("%d buckets once a, b, c refilled, want 2 (d, e)", l.Len())
	}
}

func TestRuleValidate(t *testing.T) {
	for _, r := range []Rule{
		{Name: "", Burst: 1, Every: time.Second},
		{Name: "Login", Burst: 1, Every: time.Second},
		{Name: "login.ip", Burst: 1, Every: time.Second},
		{Name: "login", Burst: 0, Every: time.Second},
		{Name: "login", Burst: 1, Every: 0},
		{Name: "login", Burst: 1 << 20, Every: 1 << 50},
	} {
		if r.Validate() == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	if err := (Rule{Name: "login_per_ip", Burst: 3, Every: 20 * time.Second}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestDefaultRulesAreValid(t *testing.T) {
	r := DefaultRules()
	names := map[string]bool{}
	for _, rule := range []Rule{r.LoginPerIP, r.LoginPerAccount, r.Registration, r.RecoveryPerIP, r.RecoveryPerAddress,
		r.EmailPerIP, r.EmailPerAddress, r.EmailPerSession, r.DeviceCodeEntry, r.DeviceAuthorization, r.ClientRegistration, r.Authorization,
		r.BackchannelLogout} {
		if err := rule.Validate(); err != nil {
			t.Error(err)
		}
		if names[rule.Name] {
			t.Errorf("two rules are named %s", rule.Name)
		}
		names[rule.Name] = true
	}
	if r.LoginPerIP.Burst != 3 || r.LoginPerIP.Every != 20*time.Second {
		t.Errorf("login per IP %+v, want MAS's 3 then 3 a minute", r.LoginPerIP)
	}
}
