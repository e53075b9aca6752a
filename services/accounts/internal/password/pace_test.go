package password

import (
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fakeClock is a clock on which each verification takes what the test says:
// every second reading is cost later than the one before.
type fakeClock struct {
	at    time.Time
	cost  time.Duration
	reads int
	slept []time.Duration
}

func (c *fakeClock) now() time.Time {
	c.reads++
	if c.reads%2 == 0 {
		c.at = c.at.Add(c.cost)
	}
	return c.at
}

func (c *fakeClock) sleep(d time.Duration) {
	c.slept = append(c.slept, d)
	c.at = c.at.Add(d)
}

// lastSleep is how long the last verification slept (0 when it did not).
func (c *fakeClock) lastSleep(before int) time.Duration {
	if len(c.slept) == before {
		return 0
	}
	return c.slept[len(c.slept)-1]
}

// onFakeClock puts h's pacer on a fake clock.
func onFakeClock(h *Hasher) *fakeClock {
	c := &fakeClock{at: time.Unix(1_000_000, 0)}
	h.pace.now, h.pace.sleep = c.now, c.sleep
	return c
}

func TestPacerPadsToTheSlowestSchemesMedian(t *testing.T) {
	ms := time.Millisecond
	steps := []struct {
		name   string
		scheme string
		took   time.Duration
		want   time.Duration // slept
	}{
		{"the first verification has nothing to match", "argon2id", 40 * ms, 0},
		{"argon2id alone: its median", "argon2id", 30 * ms, 10 * ms},
		{"a slower scheme is not padded", "bcrypt cost 12", 250 * ms, 0},
		{"argon2id is padded to bcrypt", "argon2id", 40 * ms, 210 * ms},
		{"a malformed hash (no scheme) is padded too", "", 1 * ms, 249 * ms},
		{"bcrypt faster than its median is padded to it", "bcrypt cost 12", 200 * ms, 50 * ms},
		{"a third bcrypt sample moves the median", "bcrypt cost 12", 300 * ms, 0},
		{"the median of 200, 250, 300 is 250", "argon2id", 40 * ms, 210 * ms},
	}
	p := newPacer()
	c := &fakeClock{at: time.Unix(1_000_000, 0)}
	p.now, p.sleep = c.now, c.sleep
	for _, st := range steps {
		c.cost = st.took
		before := len(c.slept)
		started := p.now()
		got := p.finish(st.scheme, started)
		if got != st.want || c.lastSleep(before) != st.want {
			t.Errorf("%s: slept %v (finish says %v), want %v", st.name, c.lastSleep(before), got, st.want)
		}
	}
}

func TestPacerWindowForgetsOldCosts(t *testing.T) {
	p := newPacer()
	c := &fakeClock{at: time.Unix(1_000_000, 0)}
	p.now, p.sleep = c.now, c.sleep
	c.cost = time.Second
	p.finish("slow", p.now())
	c.cost = 10 * time.Millisecond
	for range paceWindow {
		p.finish("slow", p.now())
	}
	if got := p.target(); got != 10*time.Millisecond {
		t.Errorf("after %d fast samples the target is %v, want 10ms", paceWindow, got)
	}
}

// Whatever the scheme of the stored hash, and for the dummy (unknown users)
// and malformed hashes, Verify takes as long as the slowest scheme.
func TestVerifyTakesTheSameTimeWhateverTheScheme(t *testing.T) {
	const pw = "correct horse"
	h := New(fast).WithBcryptPepper("pepper")
	c := onFakeClock(h)
	argon := mustHash(t, h, pw)
	bc, err := bcrypt.GenerateFromPassword([]byte(pw+"pepper"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	const slow = 300 * time.Millisecond
	c.cost = slow // bcrypt at Synapse's cost: the slowest
	if ok, _, err := h.Verify(string(bc), pw); !ok || err != nil {
		t.Fatalf("Verify(bcrypt) = %v, %v", ok, err)
	}
	tests := []struct {
		name   string
		verify func()
	}{
		{"argon2id, right password", func() { h.Verify(argon, pw) }},
		{"argon2id, wrong password", func() { h.Verify(argon, "wrong") }},
		{"unknown user (dummy)", func() { h.VerifyDummy(pw) }},
		{"malformed hash", func() { h.Verify("$argon2id$nonsense", pw) }},
		{"bcrypt, wrong password", func() { h.Verify(string(bc), "wrong") }},
		{"another Hasher derived from the same", func() { h.WithBcryptPepper("").Verify(argon, pw) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.cost = 20 * time.Millisecond
			start := c.at
			tt.verify()
			if took := c.at.Sub(start); took != slow {
				t.Errorf("took %v, want %v (padded to bcrypt's cost)", took, slow)
			}
		})
	}
}

// On the real clock: once bcrypt was verified, an argon2id verification with
// cheap parameters takes at least bcrypt's median (a lower bound holds on a
// loaded machine too: padding only adds time).
func TestVerifyPaddedOnTheRealClock(t *testing.T) {
	h := New(fast)
	if err := h.Calibrate(bcrypt.MinCost + 2); err != nil {
		t.Fatal(err)
	}
	floor := h.PaddedTo()
	if floor <= 0 {
		t.Fatalf("after calibration the padding is %v", floor)
	}
	hash := mustHash(t, h, "pw")
	start := time.Now()
	if ok, _, err := h.Verify(hash, "pw"); !ok || err != nil {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
	if took := time.Since(start); took < floor {
		t.Errorf("argon2id verification took %v, less than bcrypt's %v", took, floor)
	}
}

func TestCalibrateRejectsCostsOutOfBounds(t *testing.T) {
	h := New(fast)
	for _, cost := range []int{bcrypt.MinCost - 1, MaxBcryptCost + 1} {
		if err := h.Calibrate(cost); err == nil {
			t.Errorf("Calibrate(%d) = nil", cost)
		}
	}
}
